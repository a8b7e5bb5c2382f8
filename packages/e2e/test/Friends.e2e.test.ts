import { HttpError } from "@im/client/Client"
import { type FriendEvent, friendEventOf, type InboxEntry } from "@im/client/Wire"
import { describe, expect, it } from "vitest"
import { devices } from "./Devices.ts"
import { eventually, makeUser, newestSeq, pullAll, type TestUser } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget()

const online = devices(() => target)

const call = async (method: string, path: string, token: string, body?: unknown) => {
  const response = await fetch(target.baseUrl + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return { status: response.status, body: await response.json().catch(() => undefined) as any }
}

/** The friend events among inbox entries, in inbox order. */
const events = (entries: ReadonlyArray<InboxEntry>): Array<FriendEvent> =>
  entries.flatMap((entry) => {
    const event = friendEventOf(entry.message)
    return event === undefined ? [] : [event]
  })
const types = (entries: ReadonlyArray<InboxEntry>) => events(entries).map((event) => event.type)

/** Friends through a request and its acceptance, over plain HTTP. */
const befriend = async (a: TestUser, b: TestUser) => {
  const request = await call("POST", "/friends/requests", a.token, { user_id: b.id })
  expect(request.status).toBe(201)
  expect((await call("POST", `/friends/requests/${request.body.id}/accept`, b.token)).status).toBe(200)
}

const listOf = async (user: TestUser, since = 0) => (await call("GET", `/friends?since=${since}`, user.token)).body

/** [user, state, "removed"?] of a contact list answer. */
const entriesOf = (answer: any) =>
  answer.friends.map((c: any) => [c.user_id, c.state, ...(c.removed === true ? ["removed"] : [])])

describe(`friends against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("online: a request and its acceptance reach the connected devices live; both lists show the friendship", async () => {
    const [alice, bob] = await Promise.all(["alice", "bob"].map((n) => makeUser(target, n)))
    const a = await online(alice!)
    const b = await online(bob!)

    const request = await a.client.sendFriendRequest(bob!.id, "hi bob, it's alice 👋")
    expect(request).toMatchObject({ from_id: alice!.id, to_id: bob!.id, status: "pending", message: "hi bob, it's alice 👋" })
    await eventually(() => types(b.received).includes("friend_request"), "bob's live friend_request")
    const notice = b.received.find((entry) => friendEventOf(entry.message)?.type === "friend_request")!
    expect(notice.message).toMatchObject({ kind: "notice", content_type: "notice", sender_id: alice!.id })
    expect(friendEventOf(notice.message)).toEqual({
      type: "friend_request",
      request,
      user: expect.objectContaining({ id: alice!.id, account: alice!.account, name: "alice" })
    })
    // The requester's own devices hear of it too.
    await eventually(() => types(a.received).includes("friend_request"), "alice's own friend_request")
    expect(await b.client.friendRequests()).toEqual({ incoming: [request], outgoing: [] })
    expect(await a.client.friendRequests()).toEqual({ incoming: [], outgoing: [request] })

    const accepted = await b.client.acceptFriendRequest(request.id)
    expect(accepted).toMatchObject({ id: request.id, status: "accepted" })
    await eventually(() => types(a.received).includes("friend_accepted"), "alice's live friend_accepted")
    await eventually(() => types(b.received).includes("friend_accepted"), "bob's own devices learn it too")
    expect(events(a.received).find((e) => e.type === "friend_accepted")).toEqual({ type: "friend_accepted", request: accepted })
    expect(await b.client.friendRequests()).toEqual({ incoming: [], outgoing: [] })
    expect(entriesOf(await a.client.contacts())).toEqual([[bob!.id, "friend"]])
    expect(entriesOf(await b.client.contacts())).toEqual([[alice!.id, "friend"]])
    expect(await a.client.contacts()).toMatchObject({ version: 1, full: true })
  })

  it("offline: the other party connects later and finds each event by sync", async () => {
    const [alice, bob] = await Promise.all(["alice", "bob"].map((n) => makeUser(target, n)))
    const a = await online(alice!, { connect: false })
    const request = await a.client.sendFriendRequest(bob!.id, "are you there?")
    await eventually(async () => (await newestSeq(target, bob!)) === 1, "bob's stored friend_request")
    const b = await online(bob!)
    expect(events(await b.client.messages())).toEqual([
      { type: "friend_request", request, user: expect.objectContaining({ id: alice!.id }) }
    ])

    await b.client.acceptFriendRequest(request.id)
    // Alice was offline throughout: her own request's notice, then the acceptance.
    await eventually(async () => (await newestSeq(target, alice!)) === 2, "alice's stored friend_accepted")
    await a.client.connect()
    expect(types(await a.client.messages())).toEqual(["friend_request", "friend_accepted"])

    // A deletion while Bob is offline: he finds it on his next sync.
    b.client.close()
    await a.client.deleteFriend(bob!.id)
    await eventually(async () => (await newestSeq(target, bob!)) === 3, "bob's stored friend_deleted")
    const later = await online(bob!)
    expect(events(await later.client.messages()).at(-1)).toEqual({ type: "friend_deleted", user_id: alice!.id, friend_id: bob!.id })
    expect(await later.client.contacts()).toEqual({ version: 2, full: true, friends: [] })
  })

  it("reject: the requester learns it, nothing is friends, and a new request may follow", async () => {
    const [alice, bob] = await Promise.all(["alice", "bob"].map((n) => makeUser(target, n)))
    const a = await online(alice!)
    const b = await online(bob!)
    const request = await a.client.sendFriendRequest(bob!.id)
    expect(request.message).toBe("")
    const rejected = await b.client.rejectFriendRequest(request.id)
    expect(rejected).toMatchObject({ id: request.id, status: "rejected" })
    await eventually(() => types(a.received).includes("friend_rejected"), "alice's live friend_rejected")
    expect(events(a.received).find((e) => e.type === "friend_rejected")).toEqual({ type: "friend_rejected", request: rejected })
    expect(await a.client.friendRequests()).toEqual({ incoming: [], outgoing: [] })
    expect(await a.client.contacts()).toEqual({ version: 0, full: true, friends: [] })
    await expect(b.client.acceptFriendRequest(request.id)).rejects.toMatchObject({ status: 409, tag: "FriendRequestNotPending" })

    const again = await a.client.sendFriendRequest(bob!.id, "please?")
    expect(again.id).not.toBe(request.id)
    await eventually(() => types(b.received).filter((t) => t === "friend_request").length === 2, "bob's second friend_request")
    await b.client.acceptFriendRequest(again.id)
    expect(entriesOf(await a.client.contacts())).toEqual([[bob!.id, "friend"]])
  })

  it("only the addressee answers: the requester and others get 404 and nothing changes", async () => {
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((n) => makeUser(target, n)))
    const a = await online(alice!, { connect: false })
    const request = await a.client.sendFriendRequest(bob!.id)
    for (const [who, token] of [["alice", alice!.token], ["carol", carol!.token]] as const) {
      for (const answer of ["accept", "reject"]) {
        const refused = await call("POST", `/friends/requests/${request.id}/${answer}`, token)
        expect([refused.status, refused.body?._tag], `${who} ${answer}s`).toEqual([404, "FriendRequestNotFound"])
      }
    }
    expect((await call("POST", "/friends/requests/fr_nothing/accept", bob!.token)).status).toBe(404)
    expect((await call("GET", "/friends/requests", bob!.token)).body).toEqual({ incoming: [request], outgoing: [] })
    for (const user of [alice!, bob!, carol!]) expect(await listOf(user)).toEqual({ version: 0, full: true, friends: [] })

    expect((await call("POST", `/friends/requests/${request.id}/accept`, bob!.token)).status).toBe(200)
    expect(await call("POST", `/friends/requests/${request.id}/accept`, bob!.token)).toMatchObject({
      status: 409,
      body: { _tag: "FriendRequestNotPending", status: "accepted" }
    })
    await eventually(async () => (await newestSeq(target, alice!)) === 2, "alice's friend_accepted")
    expect(types(await pullAll(target, alice!))).toEqual(["friend_request", "friend_accepted"])
    expect(await pullAll(target, carol!)).toEqual([])
  })

  it("incremental sync: only the changes after a version, a tombstone for a deletion", async () => {
    const [alice, bob, carol, dave] = await Promise.all(["alice", "bob", "carol", "dave"].map((n) => makeUser(target, n)))
    await befriend(alice!, bob!)
    await befriend(carol!, alice!)
    const seen = await listOf(alice!)
    expect(seen.version).toBe(2)
    const bobSeen = (await listOf(bob!)).version

    expect((await call("DELETE", `/friends/${bob!.id}`, alice!.token)).status).toBe(204)
    expect(await call("DELETE", `/friends/${bob!.id}`, alice!.token)).toMatchObject({ status: 404, body: { _tag: "NotFriends" } })
    await befriend(alice!, dave!)

    const changes = await listOf(alice!, seen.version)
    expect({ ...changes, friends: entriesOf(changes) }).toEqual({
      version: 4,
      full: false,
      friends: [[bob!.id, "friend", "removed"], [dave!.id, "friend"]]
    })
    expect(changes.friends.map((c: any) => c.updated_version)).toEqual([3, 4])
    expect(entriesOf(await listOf(alice!))).toEqual([[carol!.id, "friend"], [dave!.id, "friend"]])
    expect(await listOf(alice!, 4)).toEqual({ version: 4, full: false, friends: [] })
    // Bob's list changed too: the deletion is a tombstone after the version he had.
    expect(entriesOf(await listOf(bob!, bobSeen))).toEqual([[alice!.id, "friend", "removed"]])

    const d = await online(dave!, { connect: false })
    expect((await d.client.contacts(0)).friends.map((c) => c.user_id)).toEqual([alice!.id])
    expect((await call("GET", "/friends?since=-1", alice!.token)).status).toBe(400)
  })

  it("block: the blocked user hears only of a deletion, their messages fail with `blocked` and store nothing, their request is not delivered", async () => {
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((n) => makeUser(target, n)))
    await befriend(bob!, alice!)
    const a = await online(alice!)
    const b = await online(bob!)
    await b.client.send({ receiver_id: alice!.id, content: "before the block" })
    await eventually(() => a.received.some((e) => e.message.content === "before the block"), "the message before the block")
    // Everything before the block is stored: request, acceptance and message, for both.
    await eventually(async () => (await newestSeq(target, alice!)) === 3 && (await newestSeq(target, bob!)) === 3, "the entries before the block")

    await a.client.blockUser(bob!.id)
    await eventually(() => types(b.received).includes("friend_deleted"), "bob's live friend_deleted")
    await eventually(() => types(a.received).includes("friend_blocked"), "alice's own friend_blocked")
    // Exactly what a deletion tells: nothing names the block.
    expect(events(b.received)).toEqual([
      expect.objectContaining({ type: "friend_request" }),
      expect.objectContaining({ type: "friend_accepted" }),
      { type: "friend_deleted", user_id: alice!.id, friend_id: bob!.id }
    ])
    const bobsNotices = (await pullAll(target, bob!)).filter((e) => e.message.kind === "notice").map((e) => e.message.content)
    expect(bobsNotices.join("\n")).not.toMatch(/block/)
    expect(entriesOf(await a.client.contacts())).toEqual([[bob!.id, "blocked"]])
    expect(entriesOf(await b.client.contacts(1))).toEqual([[alice!.id, "friend", "removed"]])
    await a.client.blockUser(bob!.id) // again: nothing changes
    expect((await a.client.contacts()).version).toBe(2)

    const aliceSeq = await newestSeq(target, alice!)
    expect(aliceSeq).toBe(4)
    await expect(b.client.send({ receiver_id: alice!.id, content: "are you there?" })).rejects.toMatchObject({ code: "blocked" })
    // Bob's request looks sent to him (and to his own devices), but Alice never sees it.
    const hidden = await b.client.sendFriendRequest(alice!.id, "let's talk")
    expect(hidden).toMatchObject({ from_id: bob!.id, to_id: alice!.id, status: "pending" })
    expect(await b.client.sendFriendRequest(alice!.id)).toEqual(hidden)
    expect((await b.client.friendRequests()).outgoing).toEqual([hidden])
    await eventually(() => types(b.received).filter((t) => t === "friend_request").length === 2, "bob's own notice of his request")
    expect((await a.client.friendRequests()).incoming).toEqual([])
    await expect(a.client.acceptFriendRequest(hidden.id)).rejects.toMatchObject({ status: 404 })
    await expect(a.client.sendFriendRequest(bob!.id)).rejects.toMatchObject({ status: 409, tag: "UserBlocked" })
    await expect(a.client.sendFriendRequest(bob!.id)).rejects.toBeInstanceOf(HttpError)

    // Nothing was stored for Alice: the next entry she gets has her next seq.
    const c = await online(carol!, { connect: false })
    await c.client.connect()
    await c.client.send({ receiver_id: alice!.id, content: "from carol" })
    await eventually(() => a.received.some((e) => e.message.content === "from carol"), "carol's message at alice")
    expect(a.received.find((e) => e.message.content === "from carol")!.seq).toBe(aliceSeq + 1)
    // From Bob, Alice holds only what came before the block: his first request and his message.
    const fromBob = (await pullAll(target, alice!)).filter((e) => e.message.sender_id === bob!.id)
    expect(fromBob.map((e) => friendEventOf(e.message)?.type ?? e.message.content)).toEqual(["friend_request", "before the block"])

    // Unblocking: Bob leaves Alice's list, his request from the block is dropped, he may write again.
    await a.client.unblockUser(bob!.id)
    await expect(a.client.unblockUser(bob!.id)).rejects.toMatchObject({ status: 404, tag: "NotBlocked" })
    expect(entriesOf(await a.client.contacts(2))).toEqual([[bob!.id, "blocked", "removed"]])
    expect(await a.client.contacts()).toEqual({ version: 3, full: true, friends: [] })
    expect(await b.client.friendRequests()).toEqual({ incoming: [], outgoing: [] })
    await b.client.send({ receiver_id: alice!.id, content: "after the unblock" })
    await eventually(() => a.received.some((e) => e.message.content === "after the unblock"), "bob's message after the unblock")
  })

  it("refuses requests to oneself, to unknown users, between friends, against a pending request, or too long", async () => {
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((n) => makeUser(target, n)))
    const refusals: Array<[string, unknown, number, string]> = [
      ["to oneself", { user_id: alice!.id }, 400, "CannotFriendSelf"],
      ["to nobody", { user_id: "u_nobody" }, 404, "UserNotFound"],
      ["a message too long", { user_id: bob!.id, message: "x".repeat(257) }, 400, "HttpApiSchemaError"],
      ["without a user", {}, 400, "HttpApiSchemaError"]
    ]
    for (const [what, body, status, tag] of refusals) {
      const answer = await call("POST", "/friends/requests", alice!.token, body)
      expect([answer.status, answer.body?._tag], what).toEqual([status, tag])
    }
    expect((await call("GET", "/friends/requests", alice!.token)).body).toEqual({ incoming: [], outgoing: [] })

    const fromBob = await call("POST", "/friends/requests", bob!.token, { user_id: alice!.id, message: "x".repeat(256) })
    expect(fromBob.status).toBe(201)
    const repeated = await call("POST", "/friends/requests", bob!.token, { user_id: alice!.id, message: "again" })
    expect(repeated).toEqual({ status: 201, body: fromBob.body })
    expect(await call("POST", "/friends/requests", alice!.token, { user_id: bob!.id })).toMatchObject({
      status: 409,
      body: { _tag: "FriendRequestPending", request_id: fromBob.body.id }
    })
    await befriend(carol!, alice!)
    expect(await call("POST", "/friends/requests", carol!.token, { user_id: alice!.id })).toMatchObject({
      status: 409,
      body: { _tag: "AlreadyFriends" }
    })
    expect(await call("POST", `/friends/${alice!.id}/block`, alice!.token)).toMatchObject({ status: 400, body: { _tag: "CannotFriendSelf" } })
    expect(await call("POST", "/friends/u_nobody/block", alice!.token)).toMatchObject({ status: 404, body: { _tag: "UserNotFound" } })
    expect(await call("DELETE", `/friends/${bob!.id}/block`, alice!.token)).toMatchObject({ status: 404, body: { _tag: "NotBlocked" } })
    expect(await call("DELETE", `/friends/${bob!.id}`, alice!.token)).toMatchObject({ status: 404, body: { _tag: "NotFriends" } })
    expect((await call("GET", "/friends/requests", alice!.token)).body.incoming).toEqual([fromBob.body])
    expect(entriesOf(await listOf(alice!))).toEqual([[carol!.id, "friend"]])
  })
})
