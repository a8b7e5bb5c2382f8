import { describe, expect, it } from "vitest"
import { devices } from "./Devices.ts"
import { clusterControl, logLines, SKIP_REASON, stopProcess } from "./Cluster.ts"
import { eventually, makeUser, pullAll, type TestUser } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget({ skip: clusterControl === undefined })

const online = devices(() => target)

/** The whole stored inbox of a user, checked: one entry per message, seqs ascending. */
const storedInbox = async (user: TestUser) => {
  const entries = await pullAll(target, user)
  expect(new Set(entries.map((e) => e.message.server_id)).size).toBe(entries.length)
  expect(entries.map((e) => e.seq)).toEqual([...entries.map((e) => e.seq)].sort((x, y) => x - y))
  return entries
}

describe.skipIf(clusterControl === undefined)(`faults in the cluster${clusterControl === undefined ? ` (${SKIP_REASON})` : ""}`, () => {
  it("kill -9 of a consumer while messages flow: every message reaches every recipient exactly once, in order", async () => {
    const pairs = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
      const sender = await makeUser(target, `s${i}`)
      const receiver = await makeUser(target, `r${i}`)
      return { sender, receiver, from: await online(sender), to: await online(receiver) }
    }))
    const perPair = 30
    let sent = 0
    let killed: Promise<unknown> | undefined
    await Promise.all(pairs.map(async ({ from, receiver }, i) => {
      for (let n = 0; n < perPair; n++) {
        await from.client.send({ receiver_id: receiver.id, content: `p${i}-${n}` })
        // A third of the way in, one consumer dies without a chance to commit.
        if (++sent === (pairs.length * perPair) / 3) killed = stopProcess("consumer-1", "kill")
      }
    }))
    await killed
    for (const [i, { receiver, sender, to }] of pairs.entries()) {
      const expected = Array.from({ length: perPair }, (_, n) => `p${i}-${n}`)
      await eventually(() => to.received.length >= perPair, `${perPair} messages at receiver ${i}`, 60_000)
      expect((await to.client.messages()).map((e) => e.message.content)).toEqual(expected)
      expect(to.received).toHaveLength(perPair)
      expect((await storedInbox(receiver)).map((e) => e.message.content)).toEqual(expected)
      expect((await storedInbox(sender)).map((e) => e.message.content)).toEqual(expected)
    }
  }, 120_000)

  it("stopping a gateway: its clients reconnect to the other one and sync with nothing lost; the pusher stops calling it", async () => {
    // Login names the gateways round-robin: log in until it names the one wanted.
    const onGateway = async (port: number, name: string) => {
      const user = await makeUser(target, name)
      for (let attempt = 0; attempt < 6; attempt++) {
        const device = await online(user, { connect: false })
        if (device.wsUrl?.includes(`:${port}/`)) {
          await device.client.connect()
          return { user, device }
        }
      }
      throw new Error(`no login named the gateway at port ${port}`)
    }
    const x = await onGateway(8081, "x") // on ws-1, which stops
    const y = await onGateway(8082, "y") // on ws-2, which stays

    const stopped = stopProcess("ws-1", "stop")
    for (let n = 0; n < 5; n++) await y.device.client.send({ receiver_id: x.user.id, content: `during-${n}` })
    expect(await stopped).toBe(0)

    await eventually(() => x.device.received.length >= 5, "x to get the messages sent while its gateway stopped", 60_000)
    expect((await x.device.client.messages()).map((e) => e.message.content)).toEqual([0, 1, 2, 3, 4].map((n) => `during-${n}`))

    // Within the health-check interval (3 s here) the pusher no longer calls the stopped gateway.
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    const from = logLines().length
    for (let n = 0; n < 5; n++) await y.device.client.send({ receiver_id: x.user.id, content: `after-${n}` })
    await eventually(() => x.device.received.length >= 10, "the messages sent after the stop", 60_000)
    expect((await storedInbox(x.user)).map((e) => e.message.content)).toEqual([
      ...[0, 1, 2, 3, 4].map((n) => `during-${n}`),
      ...[0, 1, 2, 3, 4].map((n) => `after-${n}`)
    ])
    await new Promise((resolve) => setTimeout(resolve, 500))
    const pusherLines = logLines().slice(from).filter((l) => l.process === "pusher")
    expect(pusherLines.some((l) => l.line.includes("pushed"))).toBe(true)
    expect(pusherLines.filter((l) => l.line.includes("ws-1"))).toEqual([])
  }, 120_000)
})
