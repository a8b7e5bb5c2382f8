import { ImClient } from "@im/client/Client"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { clusterLog, logLines, SKIP_REASON } from "./Cluster.ts"
import { makeUser, pullAll } from "./Raw.ts"
import { startTarget, type Target } from "./Target.ts"

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
})
