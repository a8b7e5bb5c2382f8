import { SendError } from "@im/client/Client"
import type { InboxEntry } from "@im/client/Wire"
import { describe, expect, it } from "vitest"
import { devices } from "./Devices.ts"
import { eventually, getJson, makeUser, newestSeq, postJson, pullAll } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget()

const online = devices(() => target)

const del = async (path: string, token: string) => {
  const response = await fetch(target.baseUrl + path, { method: "DELETE", headers: { authorization: `Bearer ${token}` } })
  return { status: response.status, body: await response.json().catch(() => undefined) as any }
}


/** The chat messages' contents, without the notices about the group (see GroupAdmin.e2e.test.ts). */
const contents = (entries: ReadonlyArray<InboxEntry>) =>
  entries.filter((e) => e.message.kind !== "notice").map((e) => e.message.content)

describe(`groups against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("members send and receive, live and by sync; a non-member can neither send, read nor list", async () => {
    const [alice, bob, carol, dave] = await Promise.all(["alice", "bob", "carol", "dave"].map((n) => makeUser(target, n)))
    const created = await postJson(target, "/groups", { name: "trip", member_ids: [bob!.id, carol!.id] }, alice!.token)
    expect(created.status).toBe(201)
    const group = created.body
    expect(group).toMatchObject({ name: "trip", owner_id: alice!.id })
    const members = await getJson(target, `/groups/${group.id}/members`, bob!.token)
    expect(members.body.map((m: any) => [m.user_id, m.role])).toEqual([
      [alice!.id, "owner"],
      ...[bob!.id, carol!.id].sort().map((id) => [id, "member"])
    ])

    const a = await online(alice!)
    const b = await online(bob!)
    await a.client.send({ group_id: group.id, content: "hello all" })
    await b.client.send({ group_id: group.id, content: "hi alice" })
    await eventually(() => contents(a.received).length === 2 && contents(b.received).length === 2, "both messages at alice and bob")
    expect(contents(a.received)).toEqual(["hello all", "hi alice"])
    expect(contents(b.received)).toEqual(["hello all", "hi alice"])
    // Carol was offline: she syncs both, in order (after the notice that the group was created).
    await eventually(async () => (await newestSeq(target, carol!)) === 3, "carol's entries")
    const c = await online(carol!)
    expect(contents(await c.client.messages())).toEqual(["hello all", "hi alice"])

    // Dave is not a member.
    const d = await online(dave!)
    await expect(d.client.send({ group_id: group.id, content: "let me in" })).rejects.toMatchObject({ code: "not_group_member" })
    expect((await getJson(target, `/groups/${group.id}`, dave!.token)).status).toBe(404)
    expect((await getJson(target, `/groups/${group.id}/members`, dave!.token)).status).toBe(404)
    expect((await postJson(target, `/groups/${group.id}/members`, { user_ids: [dave!.id] }, dave!.token)).status).toBe(404)
    expect(await pullAll(target, dave!)).toEqual([])
    expect((await getJson(target, "/groups", dave!.token)).body).toEqual([])
    expect((await getJson(target, "/groups", bob!.token)).body.map((g: any) => g.id)).toEqual([group.id])
  })

  it("invited members get what is sent after they join; removed members stop getting it; roles are enforced", async () => {
    const [owner, bob, carol, dave] = await Promise.all(["owner", "bob", "carol", "dave"].map((n) => makeUser(target, n)))
    const group = (await postJson(target, "/groups", { name: "club", member_ids: [bob!.id, carol!.id] }, owner!.token)).body
    const o = await online(owner!)
    await o.client.send({ group_id: group.id, content: "before dave" })

    expect(await postJson(target, `/groups/${group.id}/members`, { user_ids: [dave!.id, bob!.id] }, bob!.token)).toEqual({
      status: 200,
      body: { added: [dave!.id] }
    })
    await o.client.send({ group_id: group.id, content: "after dave" })
    await eventually(async () => contents(await pullAll(target, dave!)).length === 1, "dave's entry")
    expect(contents(await pullAll(target, dave!))).toEqual(["after dave"])

    // A member cannot remove another; the owner cannot leave; the owner removes; a member leaves.
    expect(await del(`/groups/${group.id}/members/${bob!.id}`, carol!.token)).toMatchObject({ status: 403, body: { _tag: "Forbidden" } })
    expect(await del(`/groups/${group.id}/members/${owner!.id}`, owner!.token)).toMatchObject({ status: 403 })
    expect((await del(`/groups/${group.id}/members/${carol!.id}`, owner!.token)).status).toBe(204)
    expect((await del(`/groups/${group.id}/members/${dave!.id}`, dave!.token)).status).toBe(204)
    await o.client.send({ group_id: group.id, content: "without carol and dave" })
    await eventually(async () => contents(await pullAll(target, bob!)).length === 3, "bob's third message")
    expect(contents(await pullAll(target, carol!))).toEqual(["before dave", "after dave"])
    expect(contents(await pullAll(target, dave!))).toEqual(["after dave"])
    const d = await online(dave!)
    await expect(d.client.send({ group_id: group.id, content: "still here?" })).rejects.toBeInstanceOf(SendError)
  })

  it("refuses unknown members and bad names, and creates nothing", async () => {
    const alice = await makeUser(target, "alice")
    const unknown = await postJson(target, "/groups", { name: "x", member_ids: ["u_nobody"] }, alice.token)
    expect(unknown).toMatchObject({ status: 400, body: { _tag: "UnknownUsers", user_ids: ["u_nobody"] } })
    expect((await postJson(target, "/groups", { name: "", member_ids: [] }, alice.token)).status).toBe(400)
    expect((await postJson(target, "/groups", { name: "x", member_ids: [] })).status).toBe(401)
    expect((await getJson(target, "/groups", alice.token)).body).toEqual([])
  })

  it("a message to a 40-member group lands once in every member's inbox, with consecutive seqs", async () => {
    const users = await Promise.all(Array.from({ length: 40 }, (_, i) => makeUser(target, `m${i}`)))
    const [owner, ...rest] = users
    const group = (await postJson(target, "/groups", { name: "big", member_ids: rest.map((u) => u.id) }, owner!.token)).body
    const o = await online(owner!)
    for (const n of [1, 2, 3]) await o.client.send({ group_id: group.id, content: `#${n}` })
    for (const user of users) {
      // Seq 1 is the notice that the group was created.
      await eventually(async () => (await newestSeq(target, user)) === 4, `4 entries for ${user.account}`)
      const inbox = await pullAll(target, user)
      expect(inbox.map((e) => [e.seq, e.message.kind === "notice" ? JSON.parse(e.message.content).type : e.message.content])).toEqual([
        [1, "group_created"],
        [2, "#1"],
        [3, "#2"],
        [4, "#3"]
      ])
    }
  }, 60_000)
})
