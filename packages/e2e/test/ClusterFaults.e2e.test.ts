import { randomBytes } from "node:crypto"
import { describe, expect, it, type TestContext } from "vitest"
import { type Device, devices } from "./Devices.ts"
import { clusterControl, logLines, pauseProcess, restartPart, SKIP_REASON, startProcess, stopProcess } from "./Cluster.ts"
import { digest, eventually, makeUser, pullAll, type TestUser } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget({ skip: clusterControl === undefined })

const online = devices(() => target)

/** The whole stored inbox of a user, checked: one entry per message, each seq above the one before (none twice). */
const storedInbox = async (user: TestUser) => {
  const entries = await pullAll(target, user)
  expect(new Set(entries.map((e) => e.message.server_id)).size).toBe(entries.length)
  const notAbove = entries.filter((e, i) => i > 0 && e.seq <= entries[i - 1]!.seq).map((e) => e.seq)
  expect(notAbove, "seqs not above the one before").toEqual([])
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
const CHAT = "http://127.0.0.1:8101/metrics"

/**
 * Six senders, each sending to a receiver of its own, all at once, each waiting for a message's
 * result before the next (a send the fault answers `unavailable`, or whose result it loses, is
 * sent again by the SDK with the same local_id). `fault` starts once `faultAfter` messages are
 * sent; each sender goes on until it has sent `atLeast` and one of its sends began after the
 * fault was over, so the flow spans the fault, and a device learns from that last push of any
 * push it missed. Then every receiver's device, and the stored inboxes of both sides, hold each
 * pair's messages exactly once, in the order sent.
 */
const sendThrough = async (
  fault: () => Promise<{ readonly skipped?: string } | unknown>,
  options: {
    readonly atLeast?: number
    readonly faultAfter?: number
    /** Between a send's result and the next send of the same sender. */
    readonly pauseMs?: number
    readonly maxSendAttempts?: number
    /** A counter the fault must raise (so the test shows it was felt): `series` summed over `urls`. */
    readonly felt?: { readonly urls: ReadonlyArray<string>; readonly series: string }
    /** A line the fault must make a process log: `text` in a line of a process whose name starts with `process`. */
    readonly logged?: { readonly process: string; readonly text: string }
    /** The fault must make some devices connect again. */
    readonly reconnects?: boolean
    /** What sender `i` (on `device`) sends as its `n`-th message: a text `p<i>-<n>` by default. */
    readonly messages?: (device: Device, i: number) => Promise<(n: number) => { readonly content_type: "image"; readonly content: string }>
  } = {}
): Promise<{ readonly skipped?: string }> => {
  const atLeast = options.atLeast ?? 30
  const faultAfter = options.faultAfter ?? 60
  const felt = options.felt
  const feltBefore = felt === undefined ? 0 : await counter(felt.urls, felt.series)
  const logFrom = logLines().length
  const connect = (user: TestUser) => online(user, options.maxSendAttempts === undefined ? {} : { maxSendAttempts: options.maxSendAttempts })
  const pairs = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
    const sender = await makeUser(target, `s${i}`)
    const receiver = await makeUser(target, `r${i}`)
    const from = await connect(sender)
    const message = options.messages === undefined
      ? (n: number) => ({ content: `p${i}-${n}` })
      : await options.messages(from, i)
    return { sender, receiver, from, to: await connect(receiver), contents: [] as Array<string>, message }
  }))
  let reconnects = 0
  for (const { from, to } of pairs) {
    for (const device of [from, to]) device.client.on("status", (status) => void (status === "connecting" && reconnects++))
  }
  let sent = 0
  let faulted: Promise<{ readonly skipped?: string } | unknown> | undefined
  let over = false
  /** A sender failed: the others stop, and a fault not begun yet never begins. */
  let aborted = false
  const flows = await Promise.allSettled(pairs.map(async ({ contents, from, message, receiver }) => {
    try {
      for (let n = 0; !aborted; n++) {
        const afterFault = over
        const next = message(n)
        contents.push(next.content)
        await from.client.send({ receiver_id: receiver.id, ...next })
        if (++sent === faultAfter && !aborted) {
          faulted = fault().finally(() => void (over = true))
          // Its failure is reported where it is awaited, below.
          faulted.catch(() => undefined)
        }
        if (afterFault && n + 1 >= atLeast) break
        if (options.pauseMs !== undefined) await new Promise((resolve) => setTimeout(resolve, options.pauseMs))
        // A fault that has not begun yet (a slow sender) is waited for, not passed by.
        if (faulted === undefined && n + 1 >= atLeast) await eventually(() => faulted !== undefined || aborted, "the fault to begin", 60_000)
      }
    } catch (error) {
      aborted = true
      throw error
    }
  }))
  // A flow that failed still waits for the fault to end: a part left stopped would fail the tests after it.
  const failed = flows.find((flow) => flow.status === "rejected")
  if (failed !== undefined) {
    await faulted?.catch(() => undefined)
    throw failed.reason
  }
  const outcome = await faulted
  const skipped = typeof outcome === "object" && outcome !== null && "skipped" in outcome ? String(outcome.skipped) : undefined
  for (const [i, { contents, receiver, sender, to }] of pairs.entries()) {
    await eventually(() => to.received.length >= contents.length, `${contents.length} messages at receiver ${i}`, 60_000)
    expect((await to.client.messages()).map((e) => e.message.content)).toEqual(contents)
    expect(to.received).toHaveLength(contents.length)
    expect((await storedInbox(receiver)).map((e) => e.message.content)).toEqual(contents)
    expect((await storedInbox(sender)).map((e) => e.message.content)).toEqual(contents)
  }
  if (skipped !== undefined) return { skipped }
  if (options.reconnects === true) expect(reconnects, "devices that connected again").toBeGreaterThan(0)
  if (felt !== undefined) expect(await counter(felt.urls, felt.series), felt.series).toBeGreaterThan(feltBefore)
  const logged = options.logged
  if (logged !== undefined) {
    const lines = logLines().slice(logFrom).filter((l) => l.process.startsWith(logged.process) && l.line.includes(logged.text))
    expect(lines.length, `"${logged.text}" in the log of ${logged.process}`).toBeGreaterThan(0)
  }
  return {}
}

/** kill -9 of one of the cluster's processes, then the same process started again. */
const killedAndStarted = (name: string) => async () => {
  await stopProcess(name, "kill")
  await startProcess(name)
}

/**
 * `sendThrough` a restart of a part of the stack, which then has a new process; reported skipped
 * where the part is not the stack's to restart.
 */
const throughRestart = async (context: TestContext, part: string, options: Parameters<typeof sendThrough>[1]) => {
  const { skipped } = await sendThrough(async () => {
    const result = await restartPart(part)
    if (result.skipped === undefined) expect(result.pids[1], `${part}'s new process`).not.toBe(result.pids[0])
    return result
  }, options)
  if (skipped !== undefined) context.skip(skipped)
}

describe.skipIf(clusterControl === undefined)(`faults in the cluster${clusterControl === undefined ? ` (${SKIP_REASON})` : ""}`, () => {
  it("kill -9 of a consumer while messages flow, and a new one: every message reaches every recipient exactly once, in order", async () => {
    // One consumer dies without a chance to commit; the other takes its partitions, and shares
    // them again with the new one.
    await sendThrough(killedAndStarted("consumer-1"), { logged: { process: "consumer-2", text: "The group is rebalancing" } })
  }, 120_000)

  it("kill -9 of chat while messages are sent, and a new chat: every send goes through once, in order", async () => {
    // Sends in flight lose their result, those after it are answered unavailable until the new
    // chat is up: the SDK sends them again, by local_id, and each is stored once.
    await sendThrough(killedAndStarted("chat"), {
      maxSendAttempts: 40,
      felt: { urls: GATEWAYS, series: `im_errors_total{service="ws",kind="chat_unreachable"}` }
    })
  }, 120_000)

  it("kill -9 of db while messages flow, and a new db: the consumers wait for it, and store each message once, in order", async () => {
    await sendThrough(killedAndStarted("db"), {
      felt: { urls: CONSUMERS, series: `im_errors_total{service="consumer",kind="batch_failed"}` }
    })
  }, 120_000)

  it("kill -9 of the pusher while messages flow, and a new pusher: the pushes lost meanwhile are pulled, nothing twice", async () => {
    await sendThrough(killedAndStarted("pusher"), {
      felt: { urls: CONSUMERS, series: `im_errors_total{service="consumer",kind="push_failed"}` }
    })
  }, 120_000)

  it("kill -9 of a gateway while its clients send and receive, and a new one: they reconnect, resend by local_id and pull, nothing lost or twice", async () => {
    await sendThrough(killedAndStarted("ws-1"), { maxSendAttempts: 40, reconnects: true })
  }, 120_000)

  it("a consumer paused past its session timeout while messages flow, then going on: the other takes its partitions, and every message is still stored and delivered once, in order", async () => {
    // The test cluster's KAFKA_SESSION_TIMEOUT is 6 s. Whatever step the paused consumer was in
    // (seqs taken, a save sent) may go on after the pause, beside the other consumer storing the
    // same batch again; its commits then fail (it left the group).
    await sendThrough(() => pauseProcess("consumer-1", 9_000), {
      logged: { process: "consumer-2", text: "The group is rebalancing" }
    })
  }, 120_000)

  it("db paused while messages flow, then going on: the consumers' batches fail and are handed over again, and every message is still stored once, in order", async () => {
    // 12 s: past the registry's 3 s TTL (the consumers find no db) and a call's 10 s deadline;
    // the saves db had read before the pause may run after it, beside the batches sent again.
    await sendThrough(() => pauseProcess("db", 12_000), {
      felt: { urls: CONSUMERS, series: `im_errors_total{service="consumer",kind="batch_failed"}` }
    })
  }, 120_000)

  it("chat paused while messages are sent, then going on: the sends answered unavailable are sent again, and each is kept once, in order", async () => {
    // 8 s: past a gateway call's 5 s deadline (the sends chat holds are answered `unavailable`
    // and sent again, same local_id, while chat, going on, may still handle the first copies)
    // and the registry's 3 s TTL (the gateways find no chat until it is back).
    await sendThrough(() => pauseProcess("chat", 8_000), {
      maxSendAttempts: 40,
      felt: { urls: GATEWAYS, series: `im_errors_total{service="ws",kind="chat_unreachable"}` }
    })
  }, 120_000)

  it("Redis restarted empty while messages flow: seqs go on above what was handed out, and each gateway registers its sessions again, so pushes resume", async (context) => {
    await throughRestart(context, "redis", {
      maxSendAttempts: 40,
      logged: { process: "ws-", text: "presence did not know this gateway's sessions" }
    })
  }, 120_000)

  it("PostgreSQL restarted while messages flow: db and the inbox store reconnect, and every message is stored once, in order", async (context) => {
    await throughRestart(context, "postgres", { maxSendAttempts: 40 })
  }, 120_000)

  it("the MongoDB-wire inbox store restarted while messages flow: every message is stored once, in order", async (context) => {
    await throughRestart(context, "mongo", { maxSendAttempts: 40, pauseMs: 20 })
  }, 120_000)

  it("Kafka restarted while messages are sent: sends wait for it, or are sent again, and each is kept once, in order", async (context) => {
    await throughRestart(context, "kafka", { maxSendAttempts: 60, pauseMs: 20 })
  }, 180_000)

  it("the S3 server restarted while files are sent: a send that cannot check its file is sent again, never refused; each once, in order; the files download after", async (context) => {
    const uploaded = new Map<string, { readonly device: Device; readonly digest: string }>()
    // Each sender uploads an image and sends it again and again, each time with other dimensions.
    const messages = async (device: Device, i: number) => {
      const bytes = new Uint8Array(randomBytes(4096 + i))
      const reference = await device.client.uploadFile(bytes, `p${i}.png`, "image/png")
      uploaded.set(reference.file_id, { device, digest: digest(bytes) })
      return (n: number) => ({ content_type: "image" as const, content: JSON.stringify({ ...reference, width: n + 1, height: i + 1 }) })
    }
    await throughRestart(context, "s3", {
      maxSendAttempts: 40,
      messages,
      felt: { urls: [CHAT], series: `im_errors_total{service="chat",kind="dependency_unavailable"}` },
      logged: { process: "chat", text: "chat could not reach the file stores" }
    })
    for (const [fileId, { device, digest: expected }] of uploaded) {
      const response = await fetch(await device.client.fileUrl(fileId))
      expect(response.status).toBe(200)
      expect(digest(new Uint8Array(await response.arrayBuffer()))).toBe(expected)
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
