import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Metric, Scope } from "effect"
import { TestClock } from "effect/testing"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as Metrics from "../src/Metrics.ts"
import * as ProcessMetrics from "../src/ProcessMetrics.ts"
import { CONTENT_TYPE, exposition, MetricsHttp } from "../src/Prometheus.ts"

/** Runs with a registry of its own, so that only the metrics the test touches are exposed. */
const isolated = <A, E>(effect: Effect.Effect<A, E>) => Effect.provideService(effect, Metric.MetricRegistry, new Map())

const linesOf = (text: string) => text.split("\n")

describe("the Prometheus text exposition (format 0.0.4)", () => {
  it.effect("a labelled counter: HELP and TYPE once per family, one line per series, label values escaped", () =>
    isolated(Effect.gen(function*() {
      const requests = Metrics.labelled(
        Metric.counter("test_requests_total", { description: "Requests \\ by path\nand method.", incremental: true }),
        ["path", "method"]
      )
      yield* Metrics.increment(requests({ path: "/a", method: "GET" }))
      yield* Metrics.increment(requests({ path: "/a", method: "GET" }), 2)
      yield* Metrics.increment(requests({ path: "say \"hi\"\\\nbye", method: "POST" }))
      const lines = linesOf(yield* exposition)
      // The process's own families (ProcessMetrics) follow; this test is about the counter's.
      assert.deepStrictEqual(lines.filter((line) => line.startsWith("#") && !line.includes(" im_")), [
        "# HELP test_requests_total Requests \\\\ by path\\nand method.",
        "# TYPE test_requests_total counter"
      ])
      assert.include(lines, "test_requests_total{path=\"/a\",method=\"GET\"} 3")
      assert.include(lines, "test_requests_total{path=\"say \\\"hi\\\"\\\\\\nbye\",method=\"POST\"} 1")
      assert.strictEqual(lines.at(-1), "", "the text ends with a newline")
    })))

  it.effect("a histogram: cumulative _bucket lines with le (and +Inf), _sum and _count", () =>
    isolated(Effect.gen(function*() {
      const latency = Metric.histogram("test_latency_seconds", { description: "Latency.", boundaries: [0.1, 1] })
      for (const value of [0.05, 0.1, 0.5, 5]) yield* Metric.update(latency, value)
      const lines = linesOf(yield* exposition)
      assert.deepStrictEqual(lines.slice(0, 7), [
        "# HELP test_latency_seconds Latency.",
        "# TYPE test_latency_seconds histogram",
        "test_latency_seconds_bucket{le=\"0.1\"} 2",
        "test_latency_seconds_bucket{le=\"1\"} 3",
        "test_latency_seconds_bucket{le=\"+Inf\"} 4",
        "test_latency_seconds_sum 5.65",
        "test_latency_seconds_count 4"
      ])
    })))

  it.effect("a gauge goes up and down; the service metrics carry their im_ names and labels", () =>
    isolated(Effect.gen(function*() {
      yield* Metric.modify(Metrics.gatewayConnections, 2)
      yield* Metric.modify(Metrics.gatewayConnections, -1)
      yield* Metrics.increment(Metrics.chatAccepted({ kind: "group" }))
      yield* Metric.update(Metrics.chatSendDuration, 0.003)
      yield* Metrics.error("db", "store_unavailable")
      const lines = linesOf(yield* exposition)
      assert.include(lines, "# TYPE im_gateway_connections gauge")
      assert.include(lines, "im_gateway_connections 1")
      assert.include(lines, "# TYPE im_chat_accepted_total counter")
      assert.include(lines, "im_chat_accepted_total{kind=\"group\"} 1")
      assert.include(lines, "# TYPE im_chat_send_duration_seconds histogram")
      assert.include(lines, "im_chat_send_duration_seconds_bucket{le=\"0.0025\"} 0")
      assert.include(lines, "im_chat_send_duration_seconds_bucket{le=\"0.005\"} 1")
      assert.include(lines, "im_chat_send_duration_seconds_count 1")
      assert.include(lines, "im_errors_total{service=\"db\",kind=\"store_unavailable\"} 1")
    })))

  it.effect("timed records each call's time in seconds, whether it succeeds, fails or is interrupted", () =>
    isolated(Effect.gen(function*() {
      const latency = Metric.histogram("test_timed_seconds", { boundaries: [0.01, 0.1, 1] })
      const waits = (millis: number) => Effect.sleep(`${millis} millis`).pipe(Metrics.timed(latency))
      const succeeded = yield* Effect.forkChild(waits(5))
      yield* TestClock.adjust("5 millis")
      yield* Fiber.join(succeeded)
      const failed = yield* Effect.forkChild(Effect.andThen(Effect.sleep("50 millis"), Effect.fail("no")).pipe(Metrics.timed(latency)))
      yield* TestClock.adjust("50 millis")
      assert.deepStrictEqual(yield* Fiber.await(failed), Exit.fail("no"))
      const interrupted = yield* Effect.forkChild(waits(10_000))
      yield* TestClock.adjust("500 millis")
      yield* Fiber.interrupt(interrupted)
      const lines = linesOf(yield* exposition)
      assert.includeMembers(lines, [
        "test_timed_seconds_bucket{le=\"0.01\"} 1",
        "test_timed_seconds_bucket{le=\"0.1\"} 2",
        "test_timed_seconds_bucket{le=\"1\"} 3",
        "test_timed_seconds_sum 0.555",
        "test_timed_seconds_count 3"
      ])
    })))

  it.effect("a labelled family makes each series once", () =>
    Effect.sync(() => {
      const family = Metrics.labelled(Metric.counter("test_once_total"), ["kind"])
      assert.strictEqual(family({ kind: "a" }), family({ kind: "a" }))
      assert.notStrictEqual(family({ kind: "a" }), family({ kind: "b" }))
    }))
})

describe("GET /metrics and the request counts", () => {
  it.live("serves the exposition as text/plain 0.0.4, and counts requests by route pattern and status", () =>
    Effect.gen(function*() {
      const app = Layer.mergeAll(
        MetricsHttp,
        HttpRouter.add("GET", "/things/:id", HttpServerResponse.text("thing")),
        HttpRouter.add("POST", "/broken", Effect.die("boom"))
      )
      const { dispose, handler } = HttpRouter.toWebHandler(app, { disableLogger: true })
      yield* Effect.addFinalizer(() => Effect.promise(dispose))
      const call = (path: string, method = "GET") =>
        Effect.promise(() => handler(new Request(`http://localhost${path}`, { method })))
      assert.strictEqual((yield* call("/things/1")).status, 200)
      assert.strictEqual((yield* call("/things/2")).status, 200)
      assert.strictEqual((yield* call("/nowhere")).status, 404)
      assert.strictEqual((yield* call("/broken", "POST")).status, 500)
      const response = yield* call("/metrics")
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers.get("content-type"), CONTENT_TYPE)
      const lines = linesOf(yield* Effect.promise(() => response.text()))
      assert.include(lines, "im_http_requests_total{method=\"GET\",route=\"/things/:id\",status=\"200\"} 2")
      assert.include(lines, "im_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1")
      assert.include(lines, "im_http_requests_total{method=\"POST\",route=\"/broken\",status=\"500\"} 1")
    }).pipe(Effect.scoped))
})

describe("the process's own figures", () => {
  it.live("memory always; event-loop delay and GC pauses while ProcessMetrics.layer is alive", () =>
    isolated(Effect.gen(function*() {
      const before = linesOf(yield* exposition)
      assert.isTrue(before.some((line) => /^im_process_resident_memory_bytes \d+$/.test(line)))
      const space = (of: string) => Number(before.find((line) => line.startsWith(`im_process_heap_space_bytes{space="old_space",of="${of}"} `))?.split(" ")[1])
      assert.isAbove(space("used"), 0)
      assert.isAtLeast(space("committed"), space("used"), "a space's objects fit in what is committed to it")
      assert.isAbove(space("resident"), 0)
      assert.isFalse(before.some((line) => line.startsWith("im_event_loop_delay")))
      const during = yield* Effect.gen(function*() {
        // Let the 10 ms sampler run, and make garbage enough for a collection.
        yield* Effect.sleep("60 millis")
        for (let i = 0; i < 2_000; i++) new Array(10_000).fill(i)
        yield* Effect.sleep("20 millis")
        return linesOf(yield* exposition)
      }).pipe(Effect.provide(ProcessMetrics.layer))
      assert.include(during, "# TYPE im_event_loop_delay_seconds summary")
      const count = Number(during.find((line) => line.startsWith("im_event_loop_delay_seconds_count "))?.split(" ")[1])
      assert.isAbove(count, 0, "the delay was sampled")
      assert.isTrue(during.some((line) => /^im_event_loop_delay_seconds\{quantile="0.99"\} [0-9.e-]+$/.test(line)))
      assert.isTrue(during.some((line) => /^im_gc_pauses_total\{kind="(minor|major|incremental)"\} [1-9]\d*$/.test(line)), "a collection was seen")
      assert.isFalse(linesOf(yield* exposition).some((line) => line.startsWith("im_event_loop_delay")), "stopped with the layer")
    })))

  it.live("sampling goes on while any layer lives, whichever is released first", () =>
    isolated(Effect.gen(function*() {
      const sampling = () => Effect.map(exposition, (text) => text.includes("im_event_loop_delay_seconds_count"))
      const first = yield* Scope.make()
      const second = yield* Scope.make()
      yield* Layer.buildWithScope(ProcessMetrics.layer, first)
      yield* Layer.buildWithScope(ProcessMetrics.layer, second)
      // The layer that started the monitor goes first.
      yield* Scope.close(first, Exit.void)
      assert.isTrue(yield* sampling(), "still sampling while the second layer lives")
      yield* Scope.close(second, Exit.void)
      assert.isFalse(yield* sampling(), "stopped once both are released")
    })))
})
