import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeUser, newestSeq, openRaw, postJson, pullAll, sendFrame } from "./Raw.ts"
import { startTarget, type Target } from "./Target.ts"

/**
 * The authorization matrix of the routes and frames that exist: for each, a caller without the
 * right gets the documented error, and a check afterwards shows nothing changed.
 */
let target: Target
beforeAll(async () => {
  target = await startTarget()
}, 60_000)
afterAll(() => target?.stop(), 30_000)

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
      ["DELETE", `/groups/${group.id}/members/${owner.id}`]
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
      ["member removes the owner", "DELETE", `/groups/${group.id}/members/${owner.id}`, undefined, 403]
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
    socket.close()
    expect(await newestSeq(target, bob)).toBe(0)
    expect(await newestSeq(target, alice)).toBe(0)
  })
})
