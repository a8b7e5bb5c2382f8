import { describe, expect, it } from "vitest"
import { type Fetch, HttpError, ImClient } from "../src/Client.ts"

const alice = { id: "u_alice", account: "alice", name: "Alice", created_at: 1 }

/** A server double: answers each call from `answers` in turn and records what was asked. */
const serverOf = (answers: Array<{ readonly status: number; readonly body?: unknown }>) => {
  const calls: Array<{ readonly method: string; readonly url: string; readonly auth?: string }> = []
  const fetch: Fetch = async (url, init) => {
    calls.push({ method: init.method, url, ...(init.headers["authorization"] === undefined ? {} : { auth: init.headers["authorization"] }) })
    const answer = answers.shift() ?? { status: 500 }
    return { ok: answer.status < 300, status: answer.status, json: async () => answer.body }
  }
  return { calls, client: new ImClient({ baseUrl: "http://server", token: "t", fetch }) }
}

describe("ImClient users", () => {
  it("gets the own profile, a user by id and a user by account or email", async () => {
    const { calls, client } = serverOf([
      { status: 200, body: { ...alice, email: "a@example.org" } },
      { status: 200, body: alice },
      { status: 200, body: [alice] },
      { status: 200, body: [] }
    ])
    expect(await client.me()).toEqual({ ...alice, email: "a@example.org" })
    expect(await client.user("u_alice")).toEqual(alice)
    expect(await client.findUser({ account: "alice" })).toEqual(alice)
    expect(await client.findUser({ email: "b c@example.org" })).toBeUndefined()
    expect(calls.map((c) => `${c.method} ${c.url.replace("http://server", "")}`)).toEqual([
      "GET /users/me",
      "GET /users/u_alice",
      "GET /users?account=alice",
      "GET /users?email=b+c%40example.org"
    ])
    expect(calls.every((c) => c.auth === "Bearer t")).toBe(true)
  })

  it("rejects with the server's error, and refuses a malformed answer", async () => {
    const { client } = serverOf([
      { status: 404, body: { _tag: "UserNotFound", message: "no user u_x" } },
      { status: 200, body: { id: "u_x" } },
      { status: 200, body: [{ id: 1 }] }
    ])
    await expect(client.user("u_x")).rejects.toMatchObject({ status: 404, tag: "UserNotFound" })
    await expect(client.user("u_x")).rejects.toBeInstanceOf(HttpError)
    await expect(client.findUser({ account: "x" })).rejects.toMatchObject({ tag: "MalformedAnswer" })
  })
})
