import { randomUUID } from "node:crypto"
import { describe, expect, it } from "vitest"
import { getJson, makeUser, openRaw, postJson, type RawSocket, sendFrame } from "./Raw.ts"
import { useTarget } from "./Target.ts"

/**
 * Login sessions (refresh, logout) and the private parts of a profile (email, avatar): what a
 * token is good for after a refresh or a logout, and what others may see of a user.
 */
const target = useTarget()

interface Login {
  readonly token: string
  readonly expires_at: number
  readonly refresh_token: string
  readonly refresh_expires_at: number
}

const login = async (user: { readonly account: string; readonly password: string }): Promise<Login> => {
  const answer = await postJson(target, "/auth/login", { account: user.account, password: user.password })
  if (answer.status !== 200) throw new Error(`login failed: ${JSON.stringify(answer)}`)
  return answer.body
}

const refresh = (refreshToken: unknown) => postJson(target, "/auth/refresh", { refresh_token: refreshToken })

const patch = async (path: string, body: unknown, token: string) => {
  const response = await fetch(target.baseUrl + path, {
    method: "PATCH",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body)
  })
  return { status: response.status, body: await response.json().catch(() => undefined) as any }
}

const welcomed = async (token: string): Promise<RawSocket> => {
  const socket = await openRaw(`${target.wsUrl}?token=${encodeURIComponent(token)}`)
  await socket.next((frame) => frame.type === "welcome")
  return socket
}

const freshEmail = () => `Ada.${randomUUID().slice(0, 13)}@Example.org`

describe(`sessions against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("refresh answers a new pair and rotates: the old refresh token is refused, the new one works", async () => {
    const alice = await makeUser(target, "alice")
    const first = await login(alice)
    expect(first.refresh_expires_at).toBeGreaterThan(first.expires_at)

    const second = await refresh(first.refresh_token)
    expect(second.status).toBe(200)
    expect(Object.keys(second.body).sort()).toEqual(["expires_at", "refresh_expires_at", "refresh_token", "token"])
    expect(second.body.refresh_token).not.toBe(first.refresh_token)
    expect((await getJson(target, "/users/me", second.body.token)).body.id).toBe(alice.id)

    expect(await refresh(first.refresh_token)).toEqual({ status: 401, body: { _tag: "Unauthorized", message: "revoked token" } })
    const third = await refresh(second.body.refresh_token)
    expect(third.status).toBe(200)
    expect((await getJson(target, "/users/me", third.body.token)).status).toBe(200)
    // The one refused use did not end the session: only that token is spent.
    expect((await refresh(third.body.refresh_token)).status).toBe(200)
  })

  it("an access token is no refresh token, and a refresh token no access token", async () => {
    const alice = await makeUser(target, "alice")
    const session = await login(alice)
    expect(await refresh(session.token)).toEqual({ status: 401, body: { _tag: "Unauthorized", message: "invalid token" } })
    expect(await getJson(target, "/users/me", session.refresh_token)).toEqual({
      status: 401,
      body: { _tag: "Unauthorized", message: "invalid token" }
    })
    const socket = await openRaw(`${target.wsUrl}?token=${encodeURIComponent(session.refresh_token)}`)
    expect(await socket.closed).toEqual({ code: 4001, reason: "invalid token" })
    for (const body of [{}, { refresh_token: 42 }]) {
      expect((await postJson(target, "/auth/refresh", body)).status, JSON.stringify(body)).toBe(400)
    }
    expect(await refresh("garbage")).toMatchObject({ status: 401, body: { _tag: "Unauthorized" } })
    // None of that spent the refresh token.
    expect((await refresh(session.refresh_token)).status).toBe(200)
  })

  it("logout ends one session everywhere: routes, refresh, sockets; the user's other session goes on", async () => {
    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    const phone = await login(alice)
    const laptop = await login(alice)
    const phoneSocket = await welcomed(phone.token)
    const laptopSocket = await welcomed(laptop.token)

    const out = await postJson(target, "/auth/logout", undefined, phone.token)
    expect(out.status).toBe(204)
    expect(await phoneSocket.closed).toEqual({ code: 4009, reason: "logged out" })

    expect(await getJson(target, "/users/me", phone.token)).toEqual({ status: 401, body: { _tag: "Unauthorized", message: "revoked token" } })
    expect((await getJson(target, "/inbox/newest", phone.token)).status).toBe(401)
    expect((await postJson(target, "/auth/logout", undefined, phone.token)).status).toBe(401)
    expect(await refresh(phone.refresh_token)).toEqual({ status: 401, body: { _tag: "Unauthorized", message: "revoked token" } })
    const late = await openRaw(`${target.wsUrl}?token=${encodeURIComponent(phone.token)}`)
    expect(await late.closed).toEqual({ code: 4001, reason: "revoked token" })

    // The laptop's session is untouched: its routes, its refresh and its open socket.
    expect((await getJson(target, "/users/me", laptop.token)).body.id).toBe(alice.id)
    const bobSocket = await welcomed((await login(bob)).token)
    bobSocket.send(sendFrame(alice.id, "still there?"))
    expect(await bobSocket.next((frame) => frame.type === "send_result")).toMatchObject({ ok: true })
    expect(await laptopSocket.next((frame) => frame.type === "message")).toMatchObject({
      message: { sender_id: bob.id, content: "still there?" }
    })
    expect((await refresh(laptop.refresh_token)).status).toBe(200)
    laptopSocket.close()
    bobSocket.close()
  }, 30_000)

  it("an email is given at register, found case-insensitively, and never shown to others", async () => {
    const email = freshEmail()
    const account = `ada-${randomUUID().slice(0, 8)}`
    const password = `pw-${randomUUID()}`
    const registered = await postJson(target, "/auth/register", { account, password, name: "Ada", email })
    expect(registered).toMatchObject({ status: 201, body: { account, email } })
    const ada = { id: registered.body.id as string, token: (await login({ account, password })).token }
    expect((await getJson(target, "/users/me", ada.token)).body).toMatchObject({ id: ada.id, email })

    const other = await makeUser(target, "other")
    const publicKeys = ["account", "created_at", "id", "name"]
    const found = await getJson(target, `/users?email=${encodeURIComponent(email.toUpperCase())}`, other.token)
    expect(found.status).toBe(200)
    expect(found.body).toHaveLength(1)
    expect(found.body[0].id).toBe(ada.id)
    expect(Object.keys(found.body[0]).sort()).toEqual(publicKeys)
    expect(Object.keys((await getJson(target, `/users/${ada.id}`, other.token)).body).sort()).toEqual(publicKeys)
    expect(Object.keys((await getJson(target, `/users?account=${account}`, other.token)).body[0]).sort()).toEqual(publicKeys)
    expect((await getJson(target, `/users?email=${encodeURIComponent(freshEmail())}`, other.token)).body).toEqual([])

    for (const query of ["", `?account=${account}&email=${encodeURIComponent(email)}`]) {
      const answer = await getJson(target, `/users${query}`, other.token)
      expect(answer.status, query).toBe(400)
      expect(answer.body.message, query).toContain("exactly one")
    }
  })

  it("a taken email is 409 EmailTaken, at register and at PATCH, and nothing changes", async () => {
    const email = freshEmail()
    const owner = await postJson(target, "/auth/register", { account: `own-${randomUUID().slice(0, 8)}`, password: "password-1", name: "Owner", email })
    expect(owner.status).toBe(201)

    const account = `dup-${randomUUID().slice(0, 8)}`
    const duplicate = await postJson(target, "/auth/register", { account, password: "password-2", name: "Dup", email: email.toLowerCase() })
    expect(duplicate).toMatchObject({ status: 409, body: { _tag: "EmailTaken" } })
    expect((await postJson(target, "/auth/login", { account, password: "password-2" })).status).toBe(401)

    const other = await makeUser(target, "other")
    const before = (await getJson(target, "/users/me", other.token)).body
    const taken = await patch("/users/me", { name: "Renamed", email: email.toUpperCase() }, other.token)
    expect(taken).toMatchObject({ status: 409, body: { _tag: "EmailTaken" } })
    expect((await getJson(target, "/users/me", other.token)).body).toEqual(before)
    const search = await getJson(target, `/users?email=${encodeURIComponent(email)}`, other.token)
    expect(search.body.map((user: any) => user.id)).toEqual([owner.body.id])
  })

  it("PATCH /users/me changes name, avatar and email at once; bad values are 400 and change nothing", async () => {
    const user = await makeUser(target, "pat")
    const other = await makeUser(target, "other")
    const email = freshEmail()
    const changed = await patch("/users/me", { name: "Pat", avatar: "https://example.org/pat.png", email }, user.token)
    expect(changed).toMatchObject({ status: 200, body: { id: user.id, name: "Pat", avatar: "https://example.org/pat.png", email } })
    const seen = (await getJson(target, `/users/${user.id}`, other.token)).body
    expect(seen).toMatchObject({ name: "Pat", avatar: "https://example.org/pat.png" })
    expect(seen.email).toBeUndefined()

    const before = (await getJson(target, "/users/me", user.token)).body
    const bad = [
      {},
      { name: "" },
      { name: "x".repeat(65) },
      { avatar: "has a space" },
      { avatar: "x".repeat(513) },
      { avatar: 7 },
      { email: "not-an-email" },
      { name: "Fine", email: "still@not" },
      { name: "Fine", avatar: "" }
    ]
    for (const body of bad) {
      const answer = await patch("/users/me", body, user.token)
      expect(answer.status, JSON.stringify(body)).toBe(400)
      expect(answer.body.message, JSON.stringify(body)).toBeTruthy()
    }
    expect((await getJson(target, "/users/me", user.token)).body).toEqual(before)
    expect((await postJson(target, "/auth/register", { account: `bad-${randomUUID().slice(0, 8)}`, password: "password-1", name: "B", email: "nope" })).status).toBe(400)

    // null removes the avatar and the email; the freed email is anyone's again.
    const cleared = await patch("/users/me", { avatar: null, email: null }, user.token)
    expect(cleared.status).toBe(200)
    expect(Object.keys(cleared.body).sort()).toEqual(["account", "created_at", "id", "name"])
    expect((await patch("/users/me", { email }, other.token)).status).toBe(200)
  })
})
