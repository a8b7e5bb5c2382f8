import type { InboxEntry } from "@im/client/Wire"
import { describe, expect, it } from "vitest"
import { devices } from "./Devices.ts"
import { eventually, makeUser, openRaw, pullAll, type RawSocket, type TestUser } from "./Raw.ts"
import { useTarget } from "./Target.ts"

/**
 * Running a group: info, roles, transfer, join by request, dismiss. Every change reaches the
 * members as a notice with the group's id, live on a connected socket and by pull for whoever
 * was offline, in order with the group's messages.
 */
const target = useTarget()

const online = devices(() => target)

const call = async (method: string, path: string, token: string, body?: unknown) => {
  const response = await fetch(target.baseUrl + path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" })
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return { status: response.status, body: await response.json().catch(() => undefined) as any }
}

const createGroup = async (owner: TestUser, members: ReadonlyArray<TestUser>, name = "club") => {
  const created = await call("POST", "/groups", owner.token, { name, member_ids: members.map((m) => m.id) })
  expect(created.status).toBe(201)
  return created.body as { readonly id: string; readonly owner_id: string; readonly join_approval: boolean }
}

/** A notice's event with who caused it and the group it is about; a message as `text:<content>`. */
const describeEntry = (entry: Pick<InboxEntry, "message">) =>
  entry.message.kind === "notice"
    ? { ...JSON.parse(entry.message.content), by: entry.message.sender_id, group_id: entry.message.group_id }
    : `text:${entry.message.content}`

const typeOf = (entry: Pick<InboxEntry, "message">) =>
  entry.message.kind === "notice" ? JSON.parse(entry.message.content).type as string : `text:${entry.message.content}`

/** A raw socket of the user, welcomed: every entry stored from now on is pushed to it. */
const connect = async (user: TestUser): Promise<RawSocket> => {
  const socket = await openRaw(`${target.wsUrl}?token=${user.token}`)
  await socket.next((frame) => frame.type === "welcome")
  return socket
}

/** The next pushed notice of that type (waits up to 5 s). */
const pushed = async (socket: RawSocket, type: string) =>
  describeEntry(await socket.next((frame) => frame.type === "message" && frame.message.kind === "notice" && typeOf(frame) === type))

/** The user's whole inbox, described, once it has `count` entries. */
const inboxOf = async (user: TestUser, count: number) => {
  await eventually(async () => (await pullAll(target, user)).length >= count, `${count} entries for ${user.account}`)
  return (await pullAll(target, user)).map(describeEntry)
}

const sendRaw = async (socket: RawSocket, group: string, content: string) => {
  const local_id = crypto.randomUUID()
  socket.send({ type: "send", local_id, group_id: group, content_type: "text", content, create_time: Date.now() })
  return socket.next((frame) => frame.type === "send_result" && frame.local_id === local_id)
}

describe(`running groups against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("each change reaches a connected member live and an offline one by pull, in order with the messages; the removed get nothing after", async () => {
    const [owner, bob, carol, dave] = await Promise.all(["owner", "bob", "carol", "dave"].map((n) => makeUser(target, n)))
    const bobLive = await connect(bob)
    const ownerDevice = await online(owner)
    const group = await createGroup(owner, [bob, carol], "trip")
    const g = group.id
    expect(await pushed(bobLive, "group_created")).toEqual({ type: "group_created", name: "trip", owner_id: owner.id, by: owner.id, group_id: g })
    await ownerDevice.client.send({ group_id: g, content: "hello" })

    expect((await call("POST", `/groups/${g}/members`, owner.token, { user_ids: [dave.id] })).body).toEqual({ added: [dave.id] })
    expect(await pushed(bobLive, "member_joined")).toEqual({ type: "member_joined", user_ids: [dave.id], how: "invited", by: owner.id, group_id: g })

    const updated = await call("PATCH", `/groups/${g}`, owner.token, { name: "trip 2026", announcement: "bring boots" })
    expect(updated).toMatchObject({ status: 200, body: { id: g, name: "trip 2026", announcement: "bring boots", join_approval: false } })
    expect(await pushed(bobLive, "group_updated")).toEqual({
      type: "group_updated",
      changes: { name: "trip 2026", announcement: "bring boots" },
      by: owner.id,
      group_id: g
    })

    expect(await call("PUT", `/groups/${g}/members/${bob.id}/role`, owner.token, { role: "admin" })).toMatchObject({
      status: 200,
      body: { user_id: bob.id, role: "admin" }
    })
    expect(await pushed(bobLive, "role_changed")).toEqual({ type: "role_changed", user_id: bob.id, role: "admin", by: owner.id, group_id: g })

    // Bob, an admin now, removes carol; dave leaves.
    expect((await call("DELETE", `/groups/${g}/members/${carol.id}`, bob.token)).status).toBe(204)
    expect(await pushed(bobLive, "member_removed")).toEqual({ type: "member_removed", user_id: carol.id, by: bob.id, group_id: g })
    expect((await call("DELETE", `/groups/${g}/members/${dave.id}`, dave.token)).status).toBe(204)
    expect(await pushed(bobLive, "member_left")).toEqual({ type: "member_left", user_id: dave.id, by: dave.id, group_id: g })
    await ownerDevice.client.send({ group_id: g, content: "bye" })
    bobLive.close()

    // Bob's inbox holds everything, in order.
    expect((await inboxOf(bob, 8)).map((e) => typeof e === "string" ? e : e.type)).toEqual([
      "group_created",
      "text:hello",
      "member_joined",
      "group_updated",
      "role_changed",
      "member_removed",
      "member_left",
      "text:bye"
    ])
    // Carol was offline throughout: she finds what happened up to her removal, and nothing after.
    const c = await online(carol)
    expect((await c.client.messages()).map(typeOf)).toEqual([
      "group_created",
      "text:hello",
      "member_joined",
      "group_updated",
      "role_changed",
      "member_removed"
    ])
    // Dave: from his joining to his leaving, never the messages sent outside that time.
    expect((await inboxOf(dave, 5)).map((e) => typeof e === "string" ? e : e.type)).toEqual([
      "member_joined",
      "group_updated",
      "role_changed",
      "member_removed",
      "member_left"
    ])
    // The owner's inbox ends with "bye" too: neither carol nor dave got it.
    await eventually(async () => (await pullAll(target, owner)).some((e) => e.message.content === "bye"), "bye stored")
    expect((await pullAll(target, carol)).some((e) => e.message.content === "bye")).toBe(false)
    expect((await pullAll(target, dave)).some((e) => e.message.content === "bye")).toBe(false)
  }, 60_000)

  it("joining: at once without approval; with approval, a request that an owner or admin decides", async () => {
    const [owner, admin, member, erin, frank, grace, heidi] = await Promise.all(
      ["owner", "admin", "member", "erin", "frank", "grace", "heidi"].map((n) => makeUser(target, n))
    )
    const g = (await createGroup(owner, [admin, member])).id
    await call("PUT", `/groups/${g}/members/${admin.id}/role`, owner.token, { role: "admin" })
    const ownerLive = await connect(owner)
    const adminLive = await connect(admin)
    const memberLive = await connect(member)

    // Open group: erin joins at once; everyone (erin too) is told.
    const erinLive = await connect(erin)
    expect(await call("POST", `/groups/${g}/join`, erin.token, {})).toEqual({ status: 200, body: { status: "joined" } })
    for (const socket of [ownerLive, memberLive, erinLive]) {
      expect(await pushed(socket, "member_joined")).toEqual({ type: "member_joined", user_ids: [erin.id], how: "joined", by: erin.id, group_id: g })
    }
    expect(await call("POST", `/groups/${g}/join`, erin.token, {})).toMatchObject({ status: 409, body: { _tag: "AlreadyMember" } })
    expect(await call("POST", "/groups/g_nosuchgroup/join", erin.token, {})).toMatchObject({ status: 404, body: { _tag: "GroupNotFound" } })

    // With approval: a plain member may no longer invite; frank's join is a request.
    expect((await call("PATCH", `/groups/${g}`, admin.token, { join_approval: true })).body.join_approval).toBe(true)
    expect(await call("POST", `/groups/${g}/members`, member.token, { user_ids: [heidi.id] })).toMatchObject({
      status: 403,
      body: { _tag: "Forbidden" }
    })
    const asked = await call("POST", `/groups/${g}/join`, frank.token, { message: "I know the way" })
    expect(asked).toMatchObject({
      status: 200,
      body: { status: "pending", request: { group_id: g, user_id: frank.id, message: "I know the way", status: "pending" } }
    })
    const request = asked.body.request
    // Owner and admins hear of it; plain members do not.
    for (const socket of [ownerLive, adminLive]) {
      expect(await pushed(socket, "join_requested")).toEqual({
        type: "join_requested",
        request_id: request.id,
        user_id: frank.id,
        message: "I know the way",
        by: frank.id,
        group_id: g
      })
    }
    // Asking again answers the same request and tells nobody again.
    expect((await call("POST", `/groups/${g}/join`, frank.token, {})).body.request.id).toBe(request.id)
    // Frank is not a member yet.
    expect((await call("GET", `/groups/${g}`, frank.token)).status).toBe(404)
    const frankLive = await connect(frank)
    expect(await sendRaw(frankLive, g, "early")).toMatchObject({ ok: false, error: { code: "not_group_member" } })

    expect(await call("GET", `/groups/${g}/join-requests`, member.token)).toMatchObject({ status: 403, body: { _tag: "Forbidden" } })
    expect(await call("POST", `/groups/${g}/join-requests/${request.id}/accept`, member.token)).toMatchObject({ status: 403 })
    expect(await call("GET", `/groups/${g}/join-requests`, frank.token)).toMatchObject({ status: 404, body: { _tag: "GroupNotFound" } })
    expect((await call("GET", `/groups/${g}/join-requests`, admin.token)).body.map((r: any) => r.id)).toEqual([request.id])

    expect(await call("POST", `/groups/${g}/join-requests/${request.id}/accept`, admin.token)).toMatchObject({
      status: 200,
      body: { id: request.id, status: "accepted" }
    })
    expect(await pushed(frankLive, "member_joined")).toEqual({ type: "member_joined", user_ids: [frank.id], how: "approved", by: admin.id, group_id: g })
    expect(await sendRaw(frankLive, g, "made it")).toMatchObject({ ok: true })
    expect(await call("POST", `/groups/${g}/join-requests/${request.id}/accept`, owner.token)).toMatchObject({
      status: 404,
      body: { _tag: "JoinRequestNotFound" }
    })
    expect((await call("GET", `/groups/${g}/join-requests`, owner.token)).body).toEqual([])

    // Grace asks while offline and is rejected: she finds out by pull.
    const graceRequest = (await call("POST", `/groups/${g}/join`, grace.token, {})).body.request
    expect(await call("POST", `/groups/${g}/join-requests/${graceRequest.id}/reject`, owner.token)).toMatchObject({
      status: 200,
      body: { id: graceRequest.id, status: "rejected" }
    })
    expect(await inboxOf(grace, 1)).toEqual([{ type: "join_rejected", request_id: graceRequest.id, by: owner.id, group_id: g }])
    expect((await call("GET", `/groups/${g}`, grace.token)).status).toBe(404)
    expect(await call("POST", `/groups/${g}/join-requests/${graceRequest.id}/accept`, owner.token)).toMatchObject({ status: 404 })

    // Admins still invite.
    expect((await call("POST", `/groups/${g}/members`, admin.token, { user_ids: [heidi.id] })).body).toEqual({ added: [heidi.id] })
    const members = (await call("GET", `/groups/${g}/members`, owner.token)).body.map((m: any) => m.user_id).sort()
    expect(members).toEqual([owner, admin, member, erin, frank, heidi].map((u) => u.id).sort())
    for (const socket of [ownerLive, adminLive, memberLive, erinLive, frankLive]) socket.close()
  }, 60_000)

  it("roles: an admin cannot remove an admin or the owner nor change roles; a member cannot update, dismiss or decide; nothing changes", async () => {
    const [owner, admin1, admin2, member, asker] = await Promise.all(
      ["owner", "admin1", "admin2", "member", "asker"].map((n) => makeUser(target, n))
    )
    const g = (await createGroup(owner, [admin1, admin2, member])).id
    for (const admin of [admin1, admin2]) await call("PUT", `/groups/${g}/members/${admin.id}/role`, owner.token, { role: "admin" })
    await call("PATCH", `/groups/${g}`, owner.token, { join_approval: true })
    const request = (await call("POST", `/groups/${g}/join`, asker.token, {})).body.request
    const state = async () => ({
      group: (await call("GET", `/groups/${g}`, owner.token)).body,
      members: (await call("GET", `/groups/${g}/members`, owner.token)).body,
      requests: (await call("GET", `/groups/${g}/join-requests`, owner.token)).body
    })
    const before = await state()
    const refusals: Array<[string, TestUser, string, string, unknown]> = [
      ["an admin removes an admin", admin1, "DELETE", `/groups/${g}/members/${admin2.id}`, undefined],
      ["an admin removes the owner", admin1, "DELETE", `/groups/${g}/members/${owner.id}`, undefined],
      ["an admin makes a member admin", admin1, "PUT", `/groups/${g}/members/${member.id}/role`, { role: "admin" }],
      ["an admin demotes an admin", admin1, "PUT", `/groups/${g}/members/${admin2.id}/role`, { role: "member" }],
      ["an admin transfers", admin1, "POST", `/groups/${g}/transfer`, { user_id: admin1.id }],
      ["an admin dismisses", admin1, "DELETE", `/groups/${g}`, undefined],
      ["a member updates", member, "PATCH", `/groups/${g}`, { name: "mine now" }],
      ["a member dismisses", member, "DELETE", `/groups/${g}`, undefined],
      ["a member lists requests", member, "GET", `/groups/${g}/join-requests`, undefined],
      ["a member accepts", member, "POST", `/groups/${g}/join-requests/${request.id}/accept`, undefined],
      ["a member rejects", member, "POST", `/groups/${g}/join-requests/${request.id}/reject`, undefined],
      ["a member invites (approval on)", member, "POST", `/groups/${g}/members`, { user_ids: [asker.id] }],
      ["the owner demotes themself", owner, "PUT", `/groups/${g}/members/${owner.id}/role`, { role: "member" }]
    ]
    for (const [what, who, method, path, body] of refusals) {
      const answer = await call(method, path, who.token, body)
      expect([answer.status, answer.body?._tag], what).toEqual([403, "Forbidden"])
    }
    expect(await state()).toEqual(before)
  }, 60_000)

  it("transfer makes the old owner an admin who may leave; dismiss tells every member and the group is gone", async () => {
    const [owner, bob, carol, dave, outsider] = await Promise.all(["owner", "bob", "carol", "dave", "outsider"].map((n) => makeUser(target, n)))
    const g = (await createGroup(owner, [bob, carol, dave])).id
    expect(await call("POST", `/groups/${g}/transfer`, owner.token, { user_id: outsider.id })).toMatchObject({
      status: 404,
      body: { _tag: "GroupNotFound" }
    })
    const carolLive = await connect(carol)
    const transferred = await call("POST", `/groups/${g}/transfer`, owner.token, { user_id: bob.id })
    expect(transferred).toMatchObject({ status: 200, body: { id: g, owner_id: bob.id } })
    expect(await pushed(carolLive, "owner_transferred")).toEqual({
      type: "owner_transferred",
      old_owner_id: owner.id,
      owner_id: bob.id,
      by: owner.id,
      group_id: g
    })
    const roles = Object.fromEntries((await call("GET", `/groups/${g}/members`, carol.token)).body.map((m: any) => [m.user_id, m.role]))
    expect(roles).toEqual({ [owner.id]: "admin", [bob.id]: "owner", [carol.id]: "member", [dave.id]: "member" })
    expect(await call("POST", `/groups/${g}/transfer`, owner.token, { user_id: carol.id })).toMatchObject({ status: 403 })
    expect((await call("DELETE", `/groups/${g}/members/${owner.id}`, owner.token)).status).toBe(204)
    expect(await pushed(carolLive, "member_left")).toMatchObject({ user_id: owner.id })

    // Dave is offline when bob dismisses the group.
    expect((await call("DELETE", `/groups/${g}`, bob.token)).status).toBe(204)
    expect(await pushed(carolLive, "group_dismissed")).toEqual({ type: "group_dismissed", by: bob.id, group_id: g })
    const daveInbox = await inboxOf(dave, 4)
    expect(daveInbox.map((e) => e.type)).toEqual(["group_created", "owner_transferred", "member_left", "group_dismissed"])
    // The old owner, gone before, is not told.
    expect((await pullAll(target, owner)).map((e) => typeOf(e))).toEqual(["group_created", "owner_transferred", "member_left"])
    for (const user of [bob, carol, dave]) {
      expect((await call("GET", `/groups/${g}`, user.token)).status).toBe(404)
      expect((await call("GET", `/groups/${g}/members`, user.token)).status).toBe(404)
      expect((await call("GET", "/groups", user.token)).body).toEqual([])
    }
    expect(await sendRaw(carolLive, g, "anyone?")).toMatchObject({ ok: false, error: { code: "not_group_member" } })
    expect(await call("DELETE", `/groups/${g}`, bob.token)).toMatchObject({ status: 404, body: { _tag: "GroupNotFound" } })
    expect(await call("POST", `/groups/${g}/join`, outsider.token, {})).toMatchObject({ status: 404, body: { _tag: "GroupNotFound" } })
    carolLive.close()
  }, 60_000)

  it("updates change only what they name, and null removes an avatar or announcement; bad input changes nothing", async () => {
    const owner = await makeUser(target, "owner")
    const g = (await createGroup(owner, [])).id
    const set = await call("PATCH", `/groups/${g}`, owner.token, { avatar: "https://example.org/g.png", announcement: "hi" })
    expect(set.body).toMatchObject({ name: "club", avatar: "https://example.org/g.png", announcement: "hi", join_approval: false })
    const cleared = await call("PATCH", `/groups/${g}`, owner.token, { avatar: null })
    expect(cleared.body.avatar).toBeUndefined()
    expect(cleared.body.announcement).toBe("hi")
    for (const bad of [{ name: "" }, { name: "x".repeat(65) }, { announcement: "x".repeat(2_001) }, { join_approval: "yes" }]) {
      expect((await call("PATCH", `/groups/${g}`, owner.token, bad)).status, JSON.stringify(bad).slice(0, 40)).toBe(400)
    }
    expect((await call("PUT", `/groups/${g}/members/${owner.id}/role`, owner.token, { role: "owner" })).status).toBe(400)
    expect((await call("GET", `/groups/${g}`, owner.token)).body).toEqual(cleared.body)
    // An update that changes nothing tells nobody: between the two around it, no notice.
    expect((await call("PATCH", `/groups/${g}`, owner.token, { announcement: "hi" })).status).toBe(200)
    await call("PATCH", `/groups/${g}`, owner.token, { name: "club 2" })
    const inbox = await inboxOf(owner, 4)
    expect(inbox.map((e) => e.changes ?? e.type)).toEqual([
      "group_created",
      { avatar: "https://example.org/g.png", announcement: "hi" },
      { avatar: null },
      { name: "club 2" }
    ])
  }, 60_000)

  it("the SDK's group calls drive every route", async () => {
    const [owner, bob, carol] = await Promise.all(["owner", "bob", "carol"].map((n) => makeUser(target, n)))
    const [o, b, c] = [await online(owner, { connect: false }), await online(bob, { connect: false }), await online(carol, { connect: false })]
    const group = await o.client.createGroup("sdk", [bob.id])
    expect(group).toMatchObject({ name: "sdk", owner_id: owner.id, join_approval: false })
    expect((await b.client.groups()).map((x) => x.id)).toEqual([group.id])
    expect(await o.client.setGroupRole(group.id, bob.id, "admin")).toMatchObject({ user_id: bob.id, role: "admin" })
    expect(await b.client.updateGroup(group.id, { join_approval: true, announcement: "hi" })).toMatchObject({ join_approval: true, announcement: "hi" })
    const asked = await c.client.joinGroup(group.id, "me too")
    expect(asked.status).toBe("pending")
    const requests = await b.client.groupJoinRequests(group.id)
    expect(requests.map((r) => r.user_id)).toEqual([carol.id])
    expect((await b.client.acceptJoinRequest(group.id, requests[0]!.id)).status).toBe("accepted")
    await expect(b.client.rejectJoinRequest(group.id, requests[0]!.id)).rejects.toMatchObject({ tag: "JoinRequestNotFound" })
    expect((await c.client.group(group.id)).announcement).toBe("hi")
    await expect(c.client.joinGroup(group.id)).rejects.toMatchObject({ status: 409, tag: "AlreadyMember" })
    expect((await o.client.transferGroup(group.id, carol.id)).owner_id).toBe(carol.id)
    await o.client.leaveGroup(group.id)
    await c.client.removeGroupMember(group.id, bob.id)
    expect((await c.client.groupMembers(group.id)).map((m) => [m.user_id, m.role])).toEqual([[carol.id, "owner"]])
    expect(await c.client.inviteToGroup(group.id, [owner.id])).toEqual([owner.id])
    await c.client.dismissGroup(group.id)
    await expect(o.client.group(group.id)).rejects.toMatchObject({ status: 404, tag: "GroupNotFound" })
  }, 60_000)
})
