import { randomUUID } from "node:crypto"
import { describe, expect, it } from "vitest"
import { eventually, makeUser, newestSeq, openRaw, pullAll, sendFrame } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget()

const connect = async (token: string, options: { readonly keepAlive?: boolean } = {}) => {
  const socket = await openRaw(`${target.wsUrl}?token=${encodeURIComponent(token)}`, options)
  const welcome = await socket.next((frame) => frame.type === "welcome")
  return { socket, welcome }
}


describe(`protocol over raw sockets against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("(d) a resend after a lost result gets the same server_id and stores one message", async () => {
    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    const localId = randomUUID()

    const first = await connect(alice.token)
    first.socket.send(sendFrame(bob.id, "only once", localId))
    const lost = await first.socket.next((frame) => frame.type === "send_result")
    first.socket.close() // the client never saw `lost`

    const second = await connect(alice.token)
    second.socket.send(sendFrame(bob.id, "only once", localId))
    const retried = await second.socket.next((frame) => frame.type === "send_result")
    second.socket.send(sendFrame(bob.id, "only once", localId))
    const again = await second.socket.next((frame) => frame.type === "send_result")

    expect(lost.ok).toBe(true)
    expect(retried).toMatchObject({ ok: true, local_id: localId, server_id: lost.server_id })
    expect(again.server_id).toBe(lost.server_id)

    // A later message proves the retries were processed before it: one entry each, then it.
    second.socket.send(sendFrame(bob.id, "after"))
    await second.socket.next((frame) => frame.type === "send_result")
    await eventually(async () => (await newestSeq(target, bob)) >= 2, "bob's second entry")
    for (const user of [alice, bob]) {
      const inbox = await pullAll(target, user)
      expect(inbox.map((entry) => [entry.seq, entry.message.content])).toEqual([[1, "only once"], [2, "after"]])
      expect(inbox[0].message.server_id).toBe(lost.server_id)
    }
    second.socket.close()
  })

  it("(e) forged sender, malformed and invalid frames get their documented errors and store nothing", async () => {
    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    const { socket } = await connect(alice.token)

    socket.send({ ...sendFrame(bob.id, "spoofed", "forged-1"), sender_id: bob.id })
    expect(await socket.next((frame) => frame.local_id === "forged-1")).toMatchObject({
      type: "send_result",
      ok: false,
      error: { code: "forbidden_sender" }
    })

    socket.send("this is not json")
    expect(await socket.next((frame) => frame.type === "error")).toMatchObject({ code: "invalid_frame" })

    socket.send({ type: "teleport", to: bob.id })
    expect(await socket.next((frame) => frame.type === "error")).toMatchObject({ code: "invalid_frame" })

    socket.send({ ...sendFrame(bob.id, "bad type", "bad-1"), content_type: "hologram" })
    expect(await socket.next((frame) => frame.local_id === "bad-1")).toMatchObject({ ok: false, error: { code: "invalid_frame" } })

    socket.send({ ...sendFrame(bob.id, "x".repeat(20_000), "long-1") })
    expect(await socket.next((frame) => frame.local_id === "long-1")).toMatchObject({ ok: false, error: { code: "invalid_frame" } })

    socket.send(sendFrame("u_nobody", "to no one", "nobody-1"))
    expect(await socket.next((frame) => frame.local_id === "nobody-1")).toMatchObject({
      ok: false,
      error: { code: "receiver_not_found" }
    })

    socket.send({ ...sendFrame(bob.id, "both", "both-1"), group_id: "g_1" })
    expect(await socket.next((frame) => frame.local_id === "both-1")).toMatchObject({ ok: false, error: { code: "invalid_frame" } })

    // Nothing above was stored: the next valid message is everyone's first entry.
    socket.send(sendFrame(bob.id, "valid"))
    expect(await socket.next((frame) => frame.type === "send_result")).toMatchObject({ ok: true })
    await eventually(async () => (await newestSeq(target, bob)) >= 1, "bob's entry")
    expect((await pullAll(target, bob)).map((entry) => entry.message.content)).toEqual(["valid"])
    expect((await pullAll(target, alice)).map((entry) => entry.message.content)).toEqual(["valid"])

    // An oversized frame closes the socket with 1009 and stores nothing either.
    socket.send(JSON.stringify(sendFrame(bob.id, "y".repeat(70_000))))
    expect((await socket.closed).code).toBe(1009)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(await newestSeq(target, bob)).toBe(1)
  })

  it("(e) a missing, invalid or tampered token closes with 4001 and registers nothing", async () => {
    const alice = await makeUser(target, "alice")
    const tampered = alice.token.slice(0, -2) + (alice.token.endsWith("A") ? "BB" : "AA")
    const cases: Array<[string, string]> = [
      [target.wsUrl, "missing token"],
      [`${target.wsUrl}?token=garbage`, "invalid token"],
      [`${target.wsUrl}?token=${encodeURIComponent(tampered)}`, "invalid token"]
    ]
    for (const [url, reason] of cases) {
      const socket = await openRaw(url)
      expect(await socket.closed).toEqual({ code: 4001, reason })
    }
    if (target.presenceOf !== undefined) expect(await target.presenceOf(alice.id)).toBe(0)
  })

  it("answers a ping in any JSON form, each after the answers of the frames sent before it (and counts it)", async () => {
    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    const { socket } = await connect(alice.token, { keepAlive: false })
    // Counted only against the standalone server this file starts: a running target's gateways
    // are pinged by other tests' sockets, and its /metrics may be elsewhere.
    const counted = process.env["IM_E2E_URL"] === undefined
    const pings = async () => {
      const text = await (await fetch(`${target.baseUrl}/metrics`)).text()
      return Number(/^im_gateway_frames_received_total\{type="ping"\} (\d+)$/m.exec(text)?.[1] ?? 0)
    }
    const before = counted ? await pings() : 0
    const answers = (count: number) => Promise.all(Array.from({ length: count }, () => socket.next((frame) => frame.type !== "message")))

    // The send's result waits on chat; the pings behind it are answered after it, in order.
    socket.send(sendFrame(bob.id, "before the pings", "ordered-1"))
    socket.send(`{"type":"ping"}`)
    socket.send(` { "type" : "ping" } `)
    expect((await answers(3)).map((frame) => frame.type)).toEqual(["send_result", "pong", "pong"])

    // With nothing before them: the form clients send, and another.
    socket.send(`{"type":"ping"}`)
    expect(await answers(1)).toEqual([{ type: "pong" }])
    socket.send(`{"type":"ping","note":"extra fields are ignored"}`)
    expect(await answers(1)).toEqual([{ type: "pong" }])
    if (counted) expect(await pings()).toBe(before + 4)
    socket.close()
  })

  it("answers ping with pong, and closes a silent peer with 4008 and removes its presence", async () => {
    const alice = await makeUser(target, "alice")
    const { socket, welcome } = await connect(alice.token, { keepAlive: false })
    expect(welcome).toMatchObject({ user_id: alice.id, heartbeat_timeout_ms: 2000 })
    socket.send({ type: "ping" })
    expect(await socket.next()).toEqual({ type: "pong" })
    if (target.presenceOf !== undefined) expect(await target.presenceOf(alice.id)).toBe(1)
    const started = Date.now()
    expect(await socket.closed).toEqual({ code: 4008, reason: "heartbeat timeout" })
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500)
    if (target.presenceOf !== undefined) {
      await eventually(async () => (await target.presenceOf!(alice.id)) === 0, "presence removed")
    }
  })
})
