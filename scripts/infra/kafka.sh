#!/usr/bin/env bash
# Apache Kafka (KRaft combined mode) from Maven Central jars: clients on 127.0.0.1:9092,
# controller on 127.0.0.1:9093 (not for clients).
# Usage: kafka.sh up|down|status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_VERSION=4.1.2          # keep in step with kafka/pom.xml
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1   # pinned: unpinned resolution on Maven 3.8 is noisy
PORT=9092
CONTROLLER_PORT=9093
LIB="$CACHE/kafka/lib-$KAFKA_VERSION"
DIR="$STATE/kafka"
DATA="$DIR/data"
LOGF="$DIR/kafka.log"
PIDF="$DIR/kafka.pid"
PROPS="$DIR/server.properties"

ready() { NODE_NO_WARNINGS=1 "$NODE" "$INFRA_DIR/kafka/ready.mjs" "127.0.0.1:$PORT" "$1"; }

# Broker jars: kafka_2.13 and its runtime closure + a Log4j2 binding, copied once into the cache.
fetch_jars() {
  [[ -f "$LIB/.complete" ]] && return 0
  command -v java >/dev/null || apt_ensure openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_ensure maven
  log "kafka: fetching kafka_2.13:$KAFKA_VERSION jars from Maven Central into $LIB"
  rm -rf "$LIB.tmp"
  mkdir -p "$CACHE/kafka"
  mvn -B -Dstyle.color=never -f "$INFRA_DIR/kafka/pom.xml" "$DEP_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -Dmdep.prependGroupId=true -DoutputDirectory="$LIB.tmp" >"$CACHE/kafka/mvn.log" 2>&1 ||
    fail_with_log "kafka (mvn copy-dependencies)" "$CACHE/kafka/mvn.log"
  touch "$LIB.tmp/.complete"
  rm -rf "$LIB" && mv "$LIB.tmp" "$LIB"
}

JAVA_OPTS=(-Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=file:$INFRA_DIR/kafka/log4j2.properties")

up() {
  if pid_alive "$PIDF"; then
    log "kafka: already running (pid $(<"$PIDF")), leaving it"
    return 0
  fi
  # Obtain first (cached after the first run), then look at the port.
  fetch_jars
  if port_open "$PORT"; then
    ready 10 >/dev/null && { log "kafka: something else already serves 127.0.0.1:$PORT; reusing it (infra:down will not stop it)"; return 0; }
    die "kafka: 127.0.0.1:$PORT is taken by something that is not a Kafka broker"
  fi
  port_open "$CONTROLLER_PORT" && die "kafka: controller port 127.0.0.1:$CONTROLLER_PORT is taken"

  mkdir -p "$DIR"
  sed "s|@DATA_DIR@|$DATA|" "$INFRA_DIR/kafka/server.properties" >"$PROPS"
  # KRaft needs the log dir formatted with a cluster id once; later starts reuse it.
  if [[ ! -f "$DATA/meta.properties" ]]; then
    rm -rf "$DATA"
    local cid
    cid="$(java -cp "$LIB/*" kafka.tools.StorageTool random-uuid)"
    log "kafka: formatting $DATA (cluster id $cid)"
    java "${JAVA_OPTS[@]}" -cp "$LIB/*" kafka.tools.StorageTool format -t "$cid" -c "$PROPS" >"$DIR/format.log" 2>&1 ||
      fail_with_log kafka "$DIR/format.log"
  fi

  log "kafka: starting $KAFKA_VERSION on 127.0.0.1:$PORT (controller 127.0.0.1:$CONTROLLER_PORT)"
  spawn "$PIDF" "$LOGF" java "${JAVA_OPTS[@]}" -cp "$LIB/*" kafka.Kafka "$PROPS"

  wait_port kafka "$PIDF" "$PORT" 90 "$LOGF"
  ready 60 >&2 || fail_with_log kafka "$LOGF"
  log "kafka: ready on 127.0.0.1:$PORT (pid $(<"$PIDF"), data $DATA)"
}

down() { stop_pid kafka "$PIDF"; }

status() {
  if pid_alive "$PIDF" && port_open "$PORT"; then
    status_line kafka up "127.0.0.1:$PORT" "pid $(<"$PIDF") (controller :$CONTROLLER_PORT)"
  elif port_open "$PORT"; then
    status_line kafka up "127.0.0.1:$PORT" "(not started by infra:up)"
  else
    status_line kafka down "127.0.0.1:$PORT" "-"
    return 1
  fi
}

"${1:?usage: kafka.sh up|down|status}"
