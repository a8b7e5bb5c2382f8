import { describe, expect, it } from "vitest"
import { type Fetch, HttpError, ImClient } from "../src/Client.ts"
import { friendEventOf, type FriendRequest, type Message } from "../src/Wire.ts"

const request: FriendRequest = {
  id: "fr_1",
  from_id: "u_alice",
  to_id: "u_bob",
  message: "hi",
  status: "pending",
  created_at: 1,
  updated_at: 1
}

/** A server double: answers each call from `answers` in turn and records what was asked. */
const serverOf = (answers: Array<{ readonly status: number; readonly body?: unknown }>) => {
  const calls: Array<{ readonly method: string; readonly url: string; readonly body?: unknown; readonly auth?: string }> = []
  const fetch: Fetch = async (url, init) => {
    calls.push({
      method: init.method,
      url,
      ...(typeof init.body === "string" ? { body: JSON.parse(init.body) } : {}),
      ...(init.headers["authorization"] === undefined ? {} : { auth: init.headers["authorization"] })
    })
    const answer = answers.shift() ?? { status: 500 }
    return {
      ok: answer.status < 300,
      status: answer.status,
      json: async () => {
        if (answer.body === undefined) throw new SyntaxError("no body")
        return answer.body
      }
    }
  }
  return { calls, client: new ImClient({ baseUrl: "http://server/", token: "t", fetch }) }
}

describe("ImClient friends", () => {
  it("calls each friend route with the token, and returns the decoded answer", async () => {
    const accepted = { ...request, status: "accepted" }
    const changes = { version: 3, full: false, friends: [{ user_id: "u_bob", state: "friend", updated_version: 3, created_at: 1, updated_at: 1 }] }
    const { calls, client } = serverOf([
      { status: 201, body: request },
      { status: 200, body: { incoming: [], outgoing: [request] } },
      { status: 200, body: accepted },
      { status: 200, body: { ...request, status: "rejected" } },
      { status: 204 },
      { status: 204 },
      { status: 204 },
      { status: 200, body: changes }
    ])
    expect(await client.sendFriendRequest("u_bob", "hi")).toEqual(request)
    expect(await client.friendRequests()).toEqual({ incoming: [], outgoing: [request] })
    expect(await client.acceptFriendRequest("fr_1")).toEqual(accepted)
    expect((await client.rejectFriendRequest("fr_1")).status).toBe("rejected")
    await client.deleteFriend("u_bob")
    await client.blockUser("u_bob")
    await client.unblockUser("u_bob")
    expect(await client.contacts(2)).toEqual(changes)
    expect(calls.map((c) => `${c.method} ${c.url.replace("http://server", "")}`)).toEqual([
      "POST /friends/requests",
      "GET /friends/requests",
      "POST /friends/requests/fr_1/accept",
      "POST /friends/requests/fr_1/reject",
      "DELETE /friends/u_bob",
      "POST /friends/u_bob/block",
      "DELETE /friends/u_bob/block",
      "GET /friends?since=2"
    ])
    expect(calls[0]!.body).toEqual({ user_id: "u_bob", message: "hi" })
    expect(calls.every((c) => c.auth === "Bearer t")).toBe(true)
  })

  it("rejects with the server's error, and refuses a malformed answer", async () => {
    const { client } = serverOf([
      { status: 409, body: { _tag: "AlreadyFriends", message: "friends already" } },
      { status: 200, body: { version: "3", friends: [] } }
    ])
    await expect(client.sendFriendRequest("u_bob")).rejects.toMatchObject({ status: 409, tag: "AlreadyFriends" })
    await expect(client.contacts()).rejects.toBeInstanceOf(HttpError)
  })

  it("friendEventOf reads a friend notice and nothing else", () => {
    const notice = (content: string, kind: Message["kind"] = "notice"): Message => ({
      server_id: "m_1",
      local_id: "n:1",
      sender_id: "u_alice",
      kind,
      content_type: kind === "notice" ? "notice" : "text",
      content,
      create_time: 1,
      send_time: 1
    })
    const deleted = { type: "friend_deleted", user_id: "u_alice", friend_id: "u_bob" }
    expect(friendEventOf(notice(JSON.stringify(deleted)))).toEqual(deleted)
    expect(friendEventOf(notice(JSON.stringify({ type: "read" })))).toBeUndefined()
    expect(friendEventOf(notice("not json"))).toBeUndefined()
    expect(friendEventOf(notice(JSON.stringify(deleted), "single"))).toBeUndefined()
  })
})
