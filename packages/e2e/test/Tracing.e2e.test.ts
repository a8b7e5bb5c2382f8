import { ImClient } from "@im/client/Client"
import type { ReceivedSpan } from "@im/observability/testing/OtlpReceiver"
import { readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { clusterLog, logLines, SKIP_REASON } from "./Cluster.ts"
import { makeUser, pullAll } from "./Raw.ts"
import { startTarget, type Target } from "./Target.ts"
import { awaitMessageTrace, checkMessageTrace } from "./TraceCheck.ts"

/** The spans the cluster's services exported (OTLP, one JSON span a line), when test:cluster runs. */
const clusterTraces = process.env["IM_CLUSTER_TRACES"]

let target: Target
beforeAll(async () => {
  if (clusterLog !== undefined) target = await startTarget()
}, 60_000)
afterAll(() => target?.stop(), 30_000)

describe.skipIf(clusterLog === undefined)(`following one message through the cluster's logs${clusterLog === undefined ? ` (${SKIP_REASON})` : ""}`, () => {
  it("its server_id shows in the logs of all six processes: ws, chat, consumer, db, pusher and api", async () => {
    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    const a = new ImClient({ baseUrl: target.baseUrl })
    const b = new ImClient({ baseUrl: target.baseUrl })
    await a.login(alice.account, alice.password)
    await b.login(bob.account, bob.password)
    await Promise.all([a.connect(), b.connect()])
    const delivered = new Promise<void>((resolve) => b.on("message", () => resolve()))
    const { server_id } = await a.send({ receiver_id: bob.id, content: "trace me" })
    await delivered
    expect((await pullAll(target, bob)).map((entry) => entry.message.server_id)).toEqual([server_id])
    a.close()
    b.close()

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
    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    const a = new ImClient({ baseUrl: target.baseUrl })
    const b = new ImClient({ baseUrl: target.baseUrl })
    await a.login(alice.account, alice.password)
    await b.login(bob.account, bob.password)
    await Promise.all([a.connect(), b.connect()])
    const delivered = new Promise<void>((resolve) => b.on("message", () => resolve()))
    const { server_id } = await a.send({ receiver_id: bob.id, content: "trace me too" })
    await delivered
    a.close()
    b.close()

    const search = (text: string) =>
      readFileSync(clusterTraces!, "utf8").split("\n").filter((line) => line.includes(text)).map((line): ReceivedSpan => JSON.parse(line))
    checkMessageTrace(await awaitMessageTrace(search, server_id))
  }, 30_000)
})
