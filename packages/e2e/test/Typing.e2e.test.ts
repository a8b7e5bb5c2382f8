import { describe, expect, it } from "vitest"
import { devices } from "./Devices.ts"
import { eventually, makeUser, newestSeq, openRaw, postJson } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget()

const device = devices(() => target)

describe(`typing against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("reaches the peer live, or the group's other members, and stores nothing", async () => {
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((name) => makeUser(target, name)))
    const group = await postJson(target, "/groups", { name: "typists", member_ids: [bob.id, carol.id] }, alice.token)
    expect(group.status).toBe(201)
    const [a, b, c] = await Promise.all([alice, bob, carol].map((user) => device(user)))
    const seen = new Map<string, Array<unknown>>([["alice", []], ["bob", []], ["carol", []]])
    a!.client.on("typing", (signal) => seen.get("alice")!.push(signal))
    b!.client.on("typing", (signal) => seen.get("bob")!.push(signal))
    c!.client.on("typing", (signal) => seen.get("carol")!.push(signal))
    // Creating the group put a group_created notice in each inbox.
    await eventually(async () => (await Promise.all([alice, bob, carol].map((user) => newestSeq(target, user)))).every((seq) => seq === 1), "group_created")
    const before = await Promise.all([alice, bob, carol].map((user) => newestSeq(target, user)))

    expect(a!.client.typing({ receiver_id: bob.id })).toBe(true)
    await eventually(() => seen.get("bob")!.length === 1, "bob sees alice typing")
    expect(seen.get("bob")).toEqual([{ type: "typing", sender_id: alice.id, receiver_id: bob.id }])

    expect(a!.client.typing({ group_id: group.body.id })).toBe(true)
    await eventually(() => seen.get("carol")!.length === 1 && seen.get("bob")!.length === 2, "the members see alice typing")
    expect(seen.get("carol")).toEqual([{ type: "typing", sender_id: alice.id, group_id: group.body.id }])

    // A message afterwards is everyone's next seq: typing spent none, and the typist got no signal.
    await a!.client.send({ group_id: group.body.id, content: "done typing" })
    const newest = () => Promise.all([alice, bob, carol].map((user) => newestSeq(target, user)))
    await eventually(async () => (await newest()).every((seq, i) => seq > before[i]!), "the message stored")
    expect(await newest()).toEqual(before.map((seq) => seq + 1))
    expect(seen.get("alice")).toEqual([])
  })

  it("a typing frame the sender has no right to send is refused with an error frame and reaches nobody", async () => {
    const [alice, bob, mallory] = await Promise.all(["alice", "bob", "mallory"].map((name) => makeUser(target, name)))
    const group = await postJson(target, "/groups", { name: "closed", member_ids: [bob.id] }, alice.token)
    const b = await device(bob)
    const signals: Array<unknown> = []
    b.client.on("typing", (signal) => signals.push(signal))
    const raw = await openRaw(`${target.wsUrl}?token=${mallory.token}`)
    await raw.next((frame) => frame.type === "welcome")
    raw.send({ type: "typing", group_id: group.body.id })
    expect(await raw.next((frame) => frame.type === "error")).toMatchObject({ code: "not_group_member" })
    raw.send({ type: "typing", receiver_id: "u_nobody" })
    expect(await raw.next((frame) => frame.type === "error")).toMatchObject({ code: "receiver_not_found" })
    raw.send({ type: "typing", receiver_id: bob.id, group_id: group.body.id })
    expect(await raw.next((frame) => frame.type === "error")).toMatchObject({ code: "invalid_frame" })
    raw.send({ type: "typing", receiver_id: 42 })
    expect(await raw.next((frame) => frame.type === "error")).toMatchObject({ code: "invalid_frame" })
    // The connection still works: a ping is answered after the refusals.
    raw.send({ type: "ping" })
    await raw.next((frame) => frame.type === "pong")
    raw.close()
    expect(signals).toEqual([])
  })
})
