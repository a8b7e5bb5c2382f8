import { describe, expect, it } from "vitest"
import { devices } from "./Devices.ts"
import { clusterControl, logLines, SKIP_REASON, startProcess, stopProcess } from "./Cluster.ts"
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

/** A counter summed over the processes serving `urls` (Prometheus text; 0 where it is not shown yet). */
const counter = async (urls: ReadonlyArray<string>, series: string) => {
  let sum = 0
  for (const url of urls) {
    const text = await (await fetch(url)).text()
    const line = text.split("\n").find((line) => line.startsWith(`${series} `))
    sum += line === undefined ? 0 : Number(line.slice(series.length + 1))
  }
  return sum
}
const GATEWAYS = ["http://127.0.0.1:8081/metrics", "http://127.0.0.1:8082/metrics"]
const CONSUMERS = ["http://127.0.0.1:8110/metrics", "http://127.0.0.1:8111/metrics"]

/**
 * Six senders, each sending `perPair` messages to a receiver of its own, all at once, each
 * waiting for a message's result before the next; `fault` starts once a third are sent, and the
 * sending goes on meanwhile (a send the fault answers `unavailable`, or whose result it loses, is
 * sent again by the SDK with the same local_id), and once it is over each sender sends one more.
 * Then every receiver's device, and the stored inboxes of both sides, hold each pair's messages
 * exactly once, in the order sent.
 */
const sendThrough = async (
  fault: () => Promise<unknown>,
  options: {
    readonly perPair?: number
    readonly maxSendAttempts?: number
    /** A counter the fault must raise (so the test shows it was felt): `series` summed over `urls`. */
    readonly felt?: { readonly urls: ReadonlyArray<string>; readonly series: string }
  } = {}
) => {
  const perPair = options.perPair ?? 30
  const felt = options.felt
  const feltBefore = felt === undefined ? 0 : await counter(felt.urls, felt.series)
  const connect = (user: TestUser) => online(user, options.maxSendAttempts === undefined ? {} : { maxSendAttempts: options.maxSendAttempts })
  const pairs = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
    const sender = await makeUser(target, `s${i}`)
    const receiver = await makeUser(target, `r${i}`)
    return { sender, receiver, from: await connect(sender), to: await connect(receiver) }
  }))
  let sent = 0
  let faulted: Promise<unknown> | undefined
  await Promise.all(pairs.map(async ({ from, receiver }, i) => {
    for (let n = 0; n < perPair; n++) {
      await from.client.send({ receiver_id: receiver.id, content: `p${i}-${n}` })
      if (++sent === Math.floor((pairs.length * perPair) / 3)) faulted = fault()
    }
  }))
  await faulted
  // One more each once the fault is over: a device learns of a push it missed from the next one.
  await Promise.all(pairs.map(({ from, receiver }, i) => from.client.send({ receiver_id: receiver.id, content: `p${i}-after` })))
  for (const [i, { receiver, sender, to }] of pairs.entries()) {
    const expected = [...Array.from({ length: perPair }, (_, n) => `p${i}-${n}`), `p${i}-after`]
    await eventually(() => to.received.length >= expected.length, `${expected.length} messages at receiver ${i}`, 60_000)
    expect((await to.client.messages()).map((e) => e.message.content)).toEqual(expected)
    expect(to.received).toHaveLength(expected.length)
    expect((await storedInbox(receiver)).map((e) => e.message.content)).toEqual(expected)
    expect((await storedInbox(sender)).map((e) => e.message.content)).toEqual(expected)
  }
  if (felt !== undefined) expect(await counter(felt.urls, felt.series), felt.series).toBeGreaterThan(feltBefore)
}

describe.skipIf(clusterControl === undefined)(`faults in the cluster${clusterControl === undefined ? ` (${SKIP_REASON})` : ""}`, () => {
  it("kill -9 of a consumer while messages flow, and a new one: every message reaches every recipient exactly once, in order", async () => {
    // One consumer dies without a chance to commit; the other takes its partitions, and shares
    // them again with the new one.
    await sendThrough(async () => {
      await stopProcess("consumer-1", "kill")
      await startProcess("consumer-1")
    })
  }, 120_000)

  it("kill -9 of chat while messages are sent, and a new chat: every send goes through once, in order", async () => {
    // Sends in flight lose their result, those after it are answered unavailable until the new
    // chat is up: the SDK sends them again, by local_id, and each is stored once.
    await sendThrough(async () => {
      await stopProcess("chat", "kill")
      await startProcess("chat")
    }, { maxSendAttempts: 40, felt: { urls: GATEWAYS, series: `im_errors_total{service="ws",kind="chat_unreachable"}` } })
  }, 120_000)

  it("kill -9 of db while messages flow, and a new db: the consumers wait for it, and store each message once, in order", async () => {
    await sendThrough(async () => {
      await stopProcess("db", "kill")
      await startProcess("db")
    }, { felt: { urls: CONSUMERS, series: `im_errors_total{service="consumer",kind="batch_failed"}` } })
  }, 120_000)

  it("kill -9 of the pusher while messages flow, and a new pusher: the pushes lost meanwhile are pulled, nothing twice", async () => {
    await sendThrough(async () => {
      await stopProcess("pusher", "kill")
      await startProcess("pusher")
    }, { felt: { urls: CONSUMERS, series: `im_errors_total{service="consumer",kind="push_failed"}` } })
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
