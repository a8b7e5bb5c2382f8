import type { ReceivedSpan } from "@im/observability/testing/OtlpReceiver"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { clusterLog, logLines, SKIP_REASON } from "./Cluster.ts"
import { deliverOne, devices } from "./Devices.ts"
import { pullAll } from "./Raw.ts"
import { useTarget } from "./Target.ts"
import { awaitMessageTrace, checkMessageTrace } from "./TraceCheck.ts"

/** The spans the cluster's services exported (OTLP, one JSON span a line), when test:cluster runs. */
const clusterTraces = process.env["IM_CLUSTER_TRACES"]

const target = useTarget({ skip: clusterLog === undefined })

const device = devices(() => target)

describe.skipIf(clusterLog === undefined)(`following one message through the cluster's logs${clusterLog === undefined ? ` (${SKIP_REASON})` : ""}`, () => {
  it("its server_id shows in the logs of all six processes: ws, chat, consumer, db, pusher and api", async () => {
    const { bob, a, b, server_id } = await deliverOne(target, device, "trace me")
    expect((await pullAll(target, bob)).map((entry) => entry.message.server_id)).toEqual([server_id])
    a.client.close()
    b.client.close()

    let seenBy = new Set<string>()
    const deadline = Date.now() + 5_000
    const services = ["ws", "chat", "consumer", "db", "pusher", "api"]
    while (Date.now() < deadline) {
      seenBy = new Set(logLines().filter((l) => l.line.includes(server_id)).map((l) => l.process.replace(/-\d+$/, "")))
      if (services.every((service) => seenBy.has(service))) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect([...seenBy].sort()).toEqual([...services].sort())
  })

  it.skipIf(clusterTraces === undefined)("its spans make one trace from the ws frame to the delivering gateways, across the processes (OTLP export)", async () => {
    const { a, b, server_id } = await deliverOne(target, device, "trace me too")
    a.client.close()
    b.client.close()

    const search = (text: string) =>
      readFileSync(clusterTraces!, "utf8").split("\n").filter((line) => line.includes(text)).map((line): ReceivedSpan => JSON.parse(line))
    checkMessageTrace(await awaitMessageTrace(search, server_id))
  }, 30_000)
})
