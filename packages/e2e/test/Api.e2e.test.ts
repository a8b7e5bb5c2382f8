import { describe, expect, it } from "vitest"
import { getJson, makeUser, openRaw, postJson } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget()

describe(`HTTP API against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("GET /health answers 200 when ready", async () => {
    expect(await getJson(target, "/health")).toEqual({ status: 200, body: { status: "ok" } })
  })

  it("register validates its input with a readable error and keeps accounts unique, case-insensitively", async () => {
    const bad = await postJson(target, "/auth/register", { account: "a", password: "short", name: "" })
    expect(bad.status).toBe(400)
    expect(bad.body._tag).toBe("HttpApiSchemaError")
    expect(bad.body.message).toContain("account")
    const notJson = await fetch(`${target.baseUrl}/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{oops"
    })
    expect(notJson.status).toBe(400)

    const user = await makeUser(target, "carol")
    const again = await postJson(target, "/auth/register", { account: user.account.toUpperCase(), password: "another-password", name: "C" })
    expect(again).toMatchObject({ status: 409, body: { _tag: "AccountTaken" } })
  })

  it("login refuses a wrong password and an unknown account alike", async () => {
    const user = await makeUser(target, "dave")
    const wrong = await postJson(target, "/auth/login", { account: user.account, password: "not-the-password" })
    const unknown = await postJson(target, "/auth/login", { account: `${user.account}-x`, password: user.password })
    expect(wrong).toEqual({ status: 401, body: { _tag: "InvalidCredentials", message: "unknown account or wrong password" } })
    expect(unknown).toEqual(wrong)
    const ok = await postJson(target, "/auth/login", { account: user.account.toUpperCase(), password: user.password })
    expect(ok.status).toBe(200)
    expect(ok.body.user).toEqual({ id: user.id, account: user.account, name: "dave", created_at: expect.any(Number) })
    expect(ok.body.user.password_hash).toBeUndefined()
    expect(ok.body).toMatchObject({ token: expect.any(String), refresh_token: expect.any(String) })
    expect(ok.body.refresh_expires_at).toBeGreaterThan(ok.body.expires_at)
  })

  it("inbox routes need a valid token, and check their query", async () => {
    const user = await makeUser(target, "erin")
    expect(await getJson(target, "/inbox/newest")).toEqual({ status: 401, body: { _tag: "Unauthorized", message: "missing token" } })
    expect((await getJson(target, "/inbox?after=0", "forged.token")).status).toBe(401)
    if (target.expiredToken !== undefined) {
      const expired = await target.expiredToken(user.id)
      expect(await getJson(target, "/inbox/newest", expired)).toEqual({ status: 401, body: { _tag: "Unauthorized", message: "expired token" } })
      const socket = await openRaw(`${target.wsUrl}?token=${encodeURIComponent(expired)}`)
      expect(await socket.closed).toEqual({ code: 4001, reason: "expired token" })
    }
    expect(await getJson(target, "/inbox/newest", user.token)).toEqual({ status: 200, body: { seq: 0 } })
    for (const query of ["after=-1", "after=abc", "", "after=0&limit=0", "after=0&limit=1001", "after=5&until=2"]) {
      const answer = await getJson(target, `/inbox?${query}`, user.token)
      expect(answer.status, query).toBe(400)
      expect(answer.body.message, query).toBeTruthy()
    }
    expect(await getJson(target, "/inbox?after=0", user.token)).toEqual({
      status: 200,
      body: { entries: [], through: 0, has_more: false }
    })
  })

  it("serves the OpenAPI document describing every route, and a docs page", async () => {
    const { body, status } = await getJson(target, "/openapi.json")
    expect(status).toBe(200)
    expect(Object.keys(body.paths).sort()).toEqual([
      "/auth/login",
      "/auth/logout",
      "/auth/refresh",
      "/auth/register",
      "/conversations",
      "/conversations/read",
      "/files",
      "/files/{file_id}",
      "/friends",
      "/friends/requests",
      "/friends/requests/{request_id}/accept",
      "/friends/requests/{request_id}/reject",
      "/friends/{user_id}",
      "/friends/{user_id}/block",
      "/gateway",
      "/groups",
      "/groups/{group_id}",
      "/groups/{group_id}/join",
      "/groups/{group_id}/join-requests",
      "/groups/{group_id}/join-requests/{request_id}/accept",
      "/groups/{group_id}/join-requests/{request_id}/reject",
      "/groups/{group_id}/members",
      "/groups/{group_id}/members/{user_id}",
      "/groups/{group_id}/members/{user_id}/role",
      "/groups/{group_id}/transfer",
      "/health",
      "/inbox",
      "/inbox/newest",
      "/messages/{server_id}/recall",
      "/users",
      "/users/me",
      "/users/{user_id}"
    ])
    expect(body.paths["/inbox"].get.parameters.map((p: any) => p.name).sort()).toEqual(["after", "limit", "until"])
    expect(body.paths["/auth/register"].post.requestBody).toBeDefined()
    expect(body.components.securitySchemes).toBeDefined()
    const docs = await fetch(`${target.baseUrl}/docs`)
    expect(docs.status).toBe(200)
    expect(docs.headers.get("content-type")).toContain("text/html")
  })
})
