import { describe, expect, it } from "vitest"
import { devices } from "./Devices.ts"
import { eventually, getJson, makeUser, postJson, pullAll } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget()

const device = devices(() => target)

const notices = (entries: ReadonlyArray<any>, type: string) =>
  entries.filter((entry) => entry.message.kind === "notice" && JSON.parse(entry.message.content).type === type)

describe(`read receipts, unread counts and recall against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("counts unread per conversation; marking read tells the sender, live and on sync; a reply reads everything", async () => {
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((name) => makeUser(target, name)))
    const a = await device(alice)
    const c = await device(carol)
    const sent = []
    for (const text of ["one", "two", "three"]) sent.push(await a.client.send({ receiver_id: bob.id, content: text }))
    await c.client.send({ receiver_id: bob.id, content: "from carol" })
    const unreadOf = async (user: typeof bob) =>
      Object.fromEntries((await getJson(target, "/conversations", user.token)).body.map((c: any) => [c.user_id, c.unread]))
    // Stored asynchronously (in a cluster, by several consumers): wait for the four entries.
    await eventually(async () => {
      const unread = await unreadOf(bob)
      return unread[alice.id] === 3 && unread[carol.id] === 1
    }, "bob's two conversations")

    const listed = (await getJson(target, "/conversations", bob.token)).body
    expect(listed.map((c: any) => [c.user_id, c.unread, c.read_seq]).sort()).toEqual([[alice.id, 3, 0], [carol.id, 1, 0]].sort())
    // Newest first.
    expect(listed.map((c: any) => c.last_seq)).toEqual(listed.map((c: any) => c.last_seq).sort((x: number, y: number) => y - x))
    expect((await getJson(target, "/conversations", alice.token)).body).toMatchObject([{ user_id: bob.id, unread: 0 }])

    // Bob reads alice's first two messages: one left; alice's device hears of it live.
    const bobInbox = await pullAll(target, bob)
    const seqOf = (serverId: string) => bobInbox.find((entry) => entry.message.server_id === serverId)!.seq
    const read = await postJson(target, "/conversations/read", { user_id: alice.id, seq: seqOf(sent[1]!.server_id) }, bob.token)
    expect(read).toMatchObject({ status: 200, body: { user_id: alice.id, unread: 1, read_seq: seqOf(sent[1]!.server_id) } })
    await eventually(() => notices(a.received, "read").length === 1, "alice's read receipt")
    expect(JSON.parse(notices(a.received, "read")[0].message.content)).toEqual({
      type: "read",
      reader_id: bob.id,
      through_server_id: sent[1]!.server_id,
      through_send_time: sent[1]!.send_time
    })
    // Carol was offline for it and is not concerned: she gets nothing; alice finds it on sync too.
    expect(notices(await pullAll(target, carol), "read")).toEqual([])
    expect(notices(await pullAll(target, alice), "read")).toHaveLength(1)
    // Reading backwards changes nothing and tells nobody.
    const backwards = await postJson(target, "/conversations/read", { user_id: alice.id, seq: 1 }, bob.token)
    expect(backwards.body).toMatchObject({ unread: 1, read_seq: seqOf(sent[1]!.server_id) })

    // Bob answers alice: his own message reads everything before it.
    const b = await device(bob)
    await b.client.send({ receiver_id: alice.id, content: "got them" })
    await eventually(async () => {
      const list = (await getJson(target, "/conversations", bob.token)).body
      return list.find((c: any) => c.user_id === alice.id)?.unread === 0
    }, "bob's conversation with alice read")
    const alices = (await getJson(target, "/conversations", alice.token)).body
    expect(alices).toMatchObject([{ user_id: bob.id, unread: 1 }])
  })

  it("group conversations count too; a read receipt goes to each sender of what was read", async () => {
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((name) => makeUser(target, name)))
    const group = (await postJson(target, "/groups", { name: "readers", member_ids: [bob.id, carol.id] }, alice.token)).body
    const [a, b] = [await device(alice), await device(bob)]
    await a.client.send({ group_id: group.id, content: "from alice" })
    const last = await b.client.send({ group_id: group.id, content: "from bob" })
    await eventually(async () => (await getJson(target, "/conversations", carol.token)).body[0]?.unread === 2, "carol's unread")
    const newest = (await getJson(target, "/inbox/newest", carol.token)).body.seq
    const read = await postJson(target, "/conversations/read", { group_id: group.id, seq: newest }, carol.token)
    expect(read).toMatchObject({ status: 200, body: { group_id: group.id, unread: 0 } })
    await eventually(() => notices(a.received, "read").length === 1 && notices(b.received, "read").length === 1, "both senders told")
    expect(JSON.parse(notices(b.received, "read")[0].message.content)).toMatchObject({ reader_id: carol.id, through_server_id: last.server_id })
    expect(notices(b.received, "read")[0].message.group_id).toBe(group.id)
  })

  it("marking read needs a conversation of one's own and exactly one of user_id and group_id; nothing changes otherwise", async () => {
    const [alice, bob, mallory] = await Promise.all(["alice", "bob", "mallory"].map((name) => makeUser(target, name)))
    const a = await device(alice)
    await a.client.send({ receiver_id: bob.id, content: "private" })
    await eventually(async () => (await getJson(target, "/conversations", bob.token)).body.length === 1, "bob's conversation")
    expect((await postJson(target, "/conversations/read", { user_id: alice.id, seq: 5 }, mallory.token)).status).toBe(404)
    expect((await postJson(target, "/conversations/read", { user_id: alice.id, group_id: "g_x", seq: 5 }, bob.token)).status).toBe(400)
    expect((await postJson(target, "/conversations/read", { seq: 5 }, bob.token)).status).toBe(400)
    expect((await postJson(target, "/conversations/read", { user_id: alice.id, seq: -1 }, bob.token)).status).toBe(400)
    expect((await postJson(target, "/conversations/read", { user_id: alice.id, seq: 5 })).status).toBe(401)
    expect((await getJson(target, "/conversations", bob.token)).body).toMatchObject([{ user_id: alice.id, unread: 1, read_seq: 0 }])
    expect(notices(a.received, "read")).toEqual([])
  })

  it("the sender recalls within the window: pulls show it recalled, participants are told; nobody else can, and not later", async () => {
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((name) => makeUser(target, name)))
    const a = await device(alice)
    const b = await device(bob)
    const oops = await a.client.send({ receiver_id: bob.id, content: "oops" })
    const fine = await a.client.send({ receiver_id: bob.id, content: "fine" })
    expect((await postJson(target, `/messages/${oops.server_id}/recall`, {}, bob.token)).status).toBe(404)
    expect((await postJson(target, `/messages/${oops.server_id}/recall`, {}, carol.token)).status).toBe(404)
    expect((await postJson(target, `/messages/${oops.server_id}/recall`, {})).status).toBe(401)
    expect(await postJson(target, `/messages/${oops.server_id}/recall`, {}, alice.token)).toEqual({
      status: 200,
      body: { server_id: oops.server_id, recalled: true }
    })
    expect((await postJson(target, `/messages/${oops.server_id}/recall`, {}, alice.token)).status).toBe(200)
    await eventually(() => notices(b.received, "message_recalled").length === 1, "bob told live")
    expect(JSON.parse(notices(b.received, "message_recalled")[0].message.content)).toEqual({ type: "message_recalled", server_id: oops.server_id })
    await eventually(() => notices(a.received, "message_recalled").length === 1, "alice's device told")

    const pulled = await pullAll(target, bob)
    expect(pulled.find((entry) => entry.message.server_id === oops.server_id).message).toMatchObject({ content: "", recalled: true })
    expect(pulled.find((entry) => entry.message.server_id === fine.server_id).message).toMatchObject({ content: "fine" })
    expect(pulled.find((entry) => entry.message.server_id === fine.server_id).message).not.toHaveProperty("recalled")
    expect(notices(await pullAll(target, carol), "message_recalled")).toEqual([])

    // The tests run with RECALL_WINDOW=2 seconds.
    await new Promise((resolve) => setTimeout(resolve, 2_200))
    const late = await postJson(target, `/messages/${fine.server_id}/recall`, {}, alice.token)
    expect(late).toMatchObject({ status: 409, body: { _tag: "RecallWindowPassed" } })
    expect((await pullAll(target, bob)).find((entry) => entry.message.server_id === fine.server_id).message.content).toBe("fine")
  })
})
