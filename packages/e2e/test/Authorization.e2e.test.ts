import { describe, expect, it } from "vitest"
import { eventually, makeUser, newestSeq, openRaw, postJson, pullAll, sendFrame } from "./Raw.ts"
import { useTarget } from "./Target.ts"

/**
 * The authorization matrix of the routes and frames that exist: for each, a caller without the
 * right gets the documented error, and a check afterwards shows nothing changed.
 */
const target = useTarget()

const call = async (method: string, path: string, token?: string, body?: unknown) => {
  const response = await fetch(target.baseUrl + path, {
    method,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` })
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return { status: response.status, body: await response.json().catch(() => undefined) as any }
}

describe(`authorization matrix against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("every protected route refuses a missing, malformed or forged token with 401 Unauthorized", async () => {
    const owner = await makeUser(target, "owner")
    const group = (await postJson(target, "/groups", { name: "g", member_ids: [] }, owner.token)).body
    const routes: Array<[string, string, unknown?]> = [
      ["GET", "/inbox/newest"],
      ["GET", "/inbox?after=0"],
      ["GET", "/gateway"],
      ["GET", "/users/me"],
      ["PATCH", "/users/me", { name: "x" }],
      ["GET", `/users?account=${owner.account}`],
      ["GET", `/users/${owner.id}`],
      ["POST", "/groups", { name: "x", member_ids: [] }],
      ["GET", "/groups"],
      ["GET", `/groups/${group.id}`],
      ["GET", `/groups/${group.id}/members`],
      ["POST", `/groups/${group.id}/members`, { user_ids: [owner.id] }],
      ["DELETE", `/groups/${group.id}/members/${owner.id}`],
      ["POST", "/files", { name: "x.txt", content_type: "text/plain", size: 1 }],
      ["GET", "/files/f_any"],
      ["POST", "/auth/logout"],
      ["GET", "/users?email=someone%40example.org"],
      ["PATCH", "/users/me", { email: "x@example.org", avatar: "https://example.org/x.png" }],
      ["POST", "/friends/requests", { user_id: "u_someone" }],
      ["GET", "/friends/requests"],
      ["POST", "/friends/requests/fr_any/accept"],
      ["POST", "/friends/requests/fr_any/reject"],
      ["GET", "/friends?since=0"],
      ["DELETE", "/friends/u_someone"],
      ["POST", "/friends/u_someone/block"],
      ["DELETE", "/friends/u_someone/block"],
      ["PATCH", `/groups/${group.id}`, { name: "x" }],
      ["DELETE", `/groups/${group.id}`],
      ["PUT", `/groups/${group.id}/members/${owner.id}/role`, { role: "admin" }],
      ["POST", `/groups/${group.id}/transfer`, { user_id: owner.id }],
      ["POST", `/groups/${group.id}/join`, {}],
      ["GET", `/groups/${group.id}/join-requests`],
      ["POST", `/groups/${group.id}/join-requests/jr_any/accept`],
      ["POST", `/groups/${group.id}/join-requests/jr_any/reject`],
      ["GET", "/conversations"],
      ["POST", "/conversations/read", { user_id: owner.id, seq: 1 }],
      ["POST", "/messages/m_any/recall", {}]
    ]
    const forged = `${Buffer.from(JSON.stringify({ sub: owner.id, exp: 9e15 })).toString("base64url")}.AAAA`
    for (const [method, path, body] of routes) {
      for (const token of [undefined, "garbage", forged]) {
        const answer = await call(method, path, token, body)
        expect([answer.status, answer.body?._tag], `${method} ${path} with ${token ?? "no token"}`).toEqual([401, "Unauthorized"])
      }
    }
    expect((await call("GET", "/groups", owner.token)).body).toHaveLength(1)
    expect((await call("GET", "/users/me", owner.token)).body.name).toBe("owner")
  })

  it("so does every route the OpenAPI document marks as needing a token, and those are all but four", async () => {
    const spec = (await call("GET", "/openapi.json")).body
    const open: Array<string> = []
    let checked = 0
    for (const [path, methods] of Object.entries(spec.paths as Record<string, Record<string, any>>)) {
      for (const [method, operation] of Object.entries(methods)) {
        if (operation.security === undefined || operation.security.length === 0) {
          open.push(`${method.toUpperCase()} ${path}`)
          continue
        }
        const url = path.replace(/\{(\w+)\}/g, (_, name: string) => `${name}_x`)
        for (const token of [undefined, "garbage"]) {
          const answer = await call(method.toUpperCase(), url, token, method === "get" || method === "delete" ? undefined : {})
          expect([answer.status, answer.body?._tag], `${method.toUpperCase()} ${path} with ${token ?? "no token"}`).toEqual([401, "Unauthorized"])
        }
        checked++
      }
    }
    expect(checked).toBeGreaterThan(30)
    expect(open.sort()).toEqual(["GET /health", "POST /auth/login", "POST /auth/refresh", "POST /auth/register"])
  })

  it("a user reads only their own inbox: the token decides whose, never a parameter", async () => {
    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    const socket = await openRaw(`${target.wsUrl}?token=${alice.token}`)
    await socket.next((frame) => frame.type === "welcome")
    socket.send(sendFrame(bob.id, "for bob"))
    await socket.next((frame) => frame.type === "send_result")
    socket.close()
    const mallory = await makeUser(target, "mallory")
    // Extra parameters naming another user are ignored: Mallory sees her own (empty) inbox.
    expect((await call("GET", `/inbox?after=0&user_id=${bob.id}`, mallory.token)).body.entries).toEqual([])
    expect((await call("GET", `/inbox/newest?user_id=${bob.id}`, mallory.token)).body).toEqual({ seq: 0 })
    const deadline = Date.now() + 10_000
    while ((await newestSeq(target, bob)) < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
    expect((await pullAll(target, bob)).map((e) => e.message.content)).toEqual(["for bob"])
  })

  it("group routes: a non-member gets 404 and changes nothing; roles bound removals (403)", async () => {
    const [owner, admin, member, outsider] = await Promise.all(["owner", "admin", "member", "outsider"].map((n) => makeUser(target, n)))
    const group = (await postJson(target, "/groups", { name: "g", member_ids: [admin.id, member.id] }, owner.token)).body
    const before = (await call("GET", `/groups/${group.id}/members`, owner.token)).body
    const refusals: Array<[string, string, string, unknown, number]> = [
      ["outsider reads the group", "GET", `/groups/${group.id}`, undefined, 404],
      ["outsider lists members", "GET", `/groups/${group.id}/members`, undefined, 404],
      ["outsider invites", "POST", `/groups/${group.id}/members`, { user_ids: [outsider.id] }, 404],
      ["outsider removes a member", "DELETE", `/groups/${group.id}/members/${member.id}`, undefined, 404],
      ["member removes a member", "DELETE", `/groups/${group.id}/members/${admin.id}`, undefined, 403],
      ["member removes the owner", "DELETE", `/groups/${group.id}/members/${owner.id}`, undefined, 403],
      ["outsider updates the group", "PATCH", `/groups/${group.id}`, { name: "x" }, 404],
      ["outsider dismisses the group", "DELETE", `/groups/${group.id}`, undefined, 404],
      ["outsider changes a role", "PUT", `/groups/${group.id}/members/${member.id}/role`, { role: "admin" }, 404],
      ["outsider transfers the group", "POST", `/groups/${group.id}/transfer`, { user_id: outsider.id }, 404],
      ["outsider lists join requests", "GET", `/groups/${group.id}/join-requests`, undefined, 404],
      ["outsider accepts a join request", "POST", `/groups/${group.id}/join-requests/jr_any/accept`, undefined, 404],
      ["outsider rejects a join request", "POST", `/groups/${group.id}/join-requests/jr_any/reject`, undefined, 404],
      ["member updates the group", "PATCH", `/groups/${group.id}`, { name: "x" }, 403],
      ["member dismisses the group", "DELETE", `/groups/${group.id}`, undefined, 403],
      ["member changes a role", "PUT", `/groups/${group.id}/members/${admin.id}/role`, { role: "admin" }, 403],
      ["member transfers the group", "POST", `/groups/${group.id}/transfer`, { user_id: member.id }, 403],
      ["member lists join requests", "GET", `/groups/${group.id}/join-requests`, undefined, 403],
      ["member accepts a join request", "POST", `/groups/${group.id}/join-requests/jr_any/accept`, undefined, 403],
      ["member rejects a join request", "POST", `/groups/${group.id}/join-requests/jr_any/reject`, undefined, 403]
    ]
    const tokenOf: Record<string, string> = { outsider: outsider.token, member: member.token }
    for (const [what, method, path, body, status] of refusals) {
      const answer = await call(method, path, tokenOf[what.split(" ")[0]!], body)
      expect(answer.status, what).toBe(status)
    }
    expect((await call("GET", `/groups/${group.id}/members`, owner.token)).body).toEqual(before)
  })

  it("frames: the sender is the token's user, and only members send to a group", async () => {
    const [alice, bob, outsider] = await Promise.all(["alice", "bob", "outsider"].map((n) => makeUser(target, n)))
    const group = (await postJson(target, "/groups", { name: "g", member_ids: [bob.id] }, alice.token)).body
    const socket = await openRaw(`${target.wsUrl}?token=${outsider.token}`)
    await socket.next((frame) => frame.type === "welcome")
    socket.send({ ...sendFrame(bob.id, "as alice", "spoof"), sender_id: alice.id })
    expect(await socket.next((frame) => frame.local_id === "spoof")).toMatchObject({ ok: false, error: { code: "forbidden_sender" } })
    socket.send({ type: "send", local_id: "gate", group_id: group.id, content_type: "text", content: "let me in", create_time: 1 })
    expect(await socket.next((frame) => frame.local_id === "gate")).toMatchObject({ ok: false, error: { code: "not_group_member" } })
    // Typing is checked like a send: an outsider's reaches nobody.
    socket.send({ type: "typing", group_id: group.id })
    expect(await socket.next((frame) => frame.type === "error")).toMatchObject({ code: "not_group_member" })
    socket.close()
    // Their inboxes hold only the notice that the group was created.
    expect((await pullAll(target, bob)).filter((e) => e.message.kind !== "notice")).toEqual([])
    expect((await pullAll(target, alice)).filter((e) => e.message.kind !== "notice")).toEqual([])
  })

  it("friend routes: only the addressee answers a request (others 404), nobody ends what is not theirs; nothing changes", async () => {
    const [alice, bob, carol, mallory] = await Promise.all(["alice", "bob", "carol", "mallory"].map((n) => makeUser(target, n)))
    const request = (await call("POST", "/friends/requests", alice.token, { user_id: bob.id })).body
    const toCarol = (await call("POST", "/friends/requests", carol.token, { user_id: alice.id })).body
    expect((await call("POST", `/friends/requests/${toCarol.id}/accept`, alice.token)).status).toBe(200)
    const stateOf = async () =>
      Promise.all([alice, bob, carol, mallory].flatMap((user) => [
        call("GET", "/friends/requests", user.token).then((answer) => answer.body),
        call("GET", "/friends", user.token).then((answer) => answer.body)
      ]))
    const before = await stateOf()
    const refusals: Array<[string, string, string, string, number, string]> = [
      ["the requester accepts", alice.token, "POST", `/friends/requests/${request.id}/accept`, 404, "FriendRequestNotFound"],
      ["the requester rejects", alice.token, "POST", `/friends/requests/${request.id}/reject`, 404, "FriendRequestNotFound"],
      ["an outsider accepts", mallory.token, "POST", `/friends/requests/${request.id}/accept`, 404, "FriendRequestNotFound"],
      ["an outsider rejects", mallory.token, "POST", `/friends/requests/${request.id}/reject`, 404, "FriendRequestNotFound"],
      ["a friend of the requester accepts", carol.token, "POST", `/friends/requests/${request.id}/accept`, 404, "FriendRequestNotFound"],
      ["an outsider deletes a friend of others", mallory.token, "DELETE", `/friends/${alice.id}`, 404, "NotFriends"],
      ["an outsider unblocks for others", mallory.token, "DELETE", `/friends/${carol.id}/block`, 404, "NotBlocked"]
    ]
    for (const [what, token, method, path, status, tag] of refusals) {
      const answer = await call(method, path, token)
      expect([answer.status, answer.body?._tag], what).toEqual([status, tag])
    }
    expect(await stateOf()).toEqual(before)
    // The requester is the token's user: a `from_id` in the body is ignored.
    const spoofed = await call("POST", "/friends/requests", mallory.token, { user_id: bob.id, from_id: alice.id })
    expect([spoofed.status, spoofed.body.from_id]).toEqual([201, mallory.id])
    expect((await call("GET", "/friends/requests", alice.token)).body.outgoing.map((r: any) => r.id)).toEqual([request.id])
  })

  it("group admin routes: outsiders get 404 GroupNotFound, members and admins without the role 403 Forbidden; nothing changes", async () => {
    const [owner, admin, member, outsider, asker] = await Promise.all(
      ["owner", "admin", "member", "outsider", "asker"].map((n) => makeUser(target, n))
    )
    const g = (await postJson(target, "/groups", { name: "g", member_ids: [admin.id, member.id] }, owner.token)).body.id
    await call("PUT", `/groups/${g}/members/${admin.id}/role`, owner.token, { role: "admin" })
    await call("PATCH", `/groups/${g}`, owner.token, { join_approval: true })
    const request = (await call("POST", `/groups/${g}/join`, asker.token, {})).body.request
    const state = async () => [
      (await call("GET", `/groups/${g}`, owner.token)).body,
      (await call("GET", `/groups/${g}/members`, owner.token)).body,
      (await call("GET", `/groups/${g}/join-requests`, owner.token)).body
    ]
    const before = await state()
    const refusals: Array<[string, string, string, string, unknown, number, string]> = [
      ["outsider updates", outsider.token, "PATCH", `/groups/${g}`, { name: "x" }, 404, "GroupNotFound"],
      ["outsider dismisses", outsider.token, "DELETE", `/groups/${g}`, undefined, 404, "GroupNotFound"],
      ["outsider sets a role", outsider.token, "PUT", `/groups/${g}/members/${member.id}/role`, { role: "admin" }, 404, "GroupNotFound"],
      ["outsider transfers", outsider.token, "POST", `/groups/${g}/transfer`, { user_id: outsider.id }, 404, "GroupNotFound"],
      ["outsider lists requests", outsider.token, "GET", `/groups/${g}/join-requests`, undefined, 404, "GroupNotFound"],
      ["outsider accepts", outsider.token, "POST", `/groups/${g}/join-requests/${request.id}/accept`, undefined, 404, "GroupNotFound"],
      ["outsider rejects", outsider.token, "POST", `/groups/${g}/join-requests/${request.id}/reject`, undefined, 404, "GroupNotFound"],
      ["the asker accepts their own", asker.token, "POST", `/groups/${g}/join-requests/${request.id}/accept`, undefined, 404, "GroupNotFound"],
      ["member updates", member.token, "PATCH", `/groups/${g}`, { name: "x" }, 403, "Forbidden"],
      ["member dismisses", member.token, "DELETE", `/groups/${g}`, undefined, 403, "Forbidden"],
      ["member sets a role", member.token, "PUT", `/groups/${g}/members/${member.id}/role`, { role: "admin" }, 403, "Forbidden"],
      ["member transfers", member.token, "POST", `/groups/${g}/transfer`, { user_id: member.id }, 403, "Forbidden"],
      ["member lists requests", member.token, "GET", `/groups/${g}/join-requests`, undefined, 403, "Forbidden"],
      ["member accepts", member.token, "POST", `/groups/${g}/join-requests/${request.id}/accept`, undefined, 403, "Forbidden"],
      ["member rejects", member.token, "POST", `/groups/${g}/join-requests/${request.id}/reject`, undefined, 403, "Forbidden"],
      ["member invites while approval is on", member.token, "POST", `/groups/${g}/members`, { user_ids: [outsider.id] }, 403, "Forbidden"],
      ["admin dismisses", admin.token, "DELETE", `/groups/${g}`, undefined, 403, "Forbidden"],
      ["admin sets a role", admin.token, "PUT", `/groups/${g}/members/${member.id}/role`, { role: "admin" }, 403, "Forbidden"],
      ["admin transfers", admin.token, "POST", `/groups/${g}/transfer`, { user_id: admin.id }, 403, "Forbidden"],
      ["admin removes the owner", admin.token, "DELETE", `/groups/${g}/members/${owner.id}`, undefined, 403, "Forbidden"],
      ["owner sets their own role", owner.token, "PUT", `/groups/${g}/members/${owner.id}/role`, { role: "member" }, 403, "Forbidden"],
      ["a member joins again", member.token, "POST", `/groups/${g}/join`, {}, 409, "AlreadyMember"],
      ["owner accepts an unknown request", owner.token, "POST", `/groups/${g}/join-requests/jr_nothing/accept`, undefined, 404, "JoinRequestNotFound"]
    ]
    for (const [what, token, method, path, body, status, tag] of refusals) {
      const answer = await call(method, path, token, body)
      expect([answer.status, answer.body?._tag], what).toEqual([status, tag])
    }
    expect(await state()).toEqual(before)
  })

  it("conversations and recall: nobody reads for, or recalls as, someone else; nothing changes", async () => {
    const [alice, bob, mallory] = await Promise.all(["alice", "bob", "mallory"].map((n) => makeUser(target, n)))
    const socket = await openRaw(`${target.wsUrl}?token=${alice.token}`)
    await socket.next((frame) => frame.type === "welcome")
    socket.send(sendFrame(bob.id, "for bob", "m1"))
    const sent = await socket.next((frame) => frame.local_id === "m1")
    socket.close()
    await eventually(async () => (await call("GET", "/conversations", bob.token)).body.length === 1, "bob's conversation")
    // Mallory has no conversation with alice; she cannot mark bob's, nor recall alice's message.
    expect((await call("POST", "/conversations/read", mallory.token, { user_id: alice.id, seq: 1 })).body._tag).toBe("ConversationNotFound")
    expect((await call("POST", `/messages/${sent.server_id}/recall`, mallory.token, {})).body._tag).toBe("MessageNotFound")
    // The receiver cannot recall what they received.
    expect((await call("POST", `/messages/${sent.server_id}/recall`, bob.token, {})).body._tag).toBe("MessageNotFound")
    expect((await call("GET", "/conversations", bob.token)).body).toMatchObject([{ user_id: alice.id, unread: 1, read_seq: 0 }])
    expect((await call("GET", "/conversations", mallory.token)).body).toEqual([])
    const held = (await pullAll(target, bob)).find((entry) => entry.message.server_id === sent.server_id)
    expect(held.message.content).toBe("for bob")
    expect(held.message).not.toHaveProperty("recalled")
  })
})
