import { describe, expect, it } from "vitest"
import { getJson, makeUser } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget()

const patch = async (path: string, body: unknown, token?: string) => {
  const response = await fetch(target.baseUrl + path, {
    method: "PATCH",
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body)
  })
  return { status: response.status, body: await response.json().catch(() => undefined) as any }
}

describe(`users against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("a user reads and renames themselves, finds others by account, and sees only public fields", async () => {
    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    expect((await getJson(target, "/users/me", alice.token)).body).toMatchObject({ id: alice.id, account: alice.account, name: "alice" })
    expect(await patch("/users/me", { name: "Alice Liddell" }, alice.token)).toMatchObject({ status: 200, body: { name: "Alice Liddell" } })
    expect((await patch("/users/me", { name: "" }, alice.token)).status).toBe(400)

    const found = await getJson(target, `/users?account=${encodeURIComponent(alice.account.toUpperCase())}`, bob.token)
    expect(found.body).toEqual([{ id: alice.id, account: alice.account, name: "Alice Liddell", created_at: expect.any(Number) }])
    expect((await getJson(target, "/users?account=nobody-here", bob.token)).body).toEqual([])
    const profile = await getJson(target, `/users/${alice.id}`, bob.token)
    expect(Object.keys(profile.body).sort()).toEqual(["account", "created_at", "id", "name"])
    expect((await getJson(target, "/users/u_nobody", bob.token)).status).toBe(404)
  })

  it("every users route needs a valid token, and nobody renames someone else", async () => {
    const alice = await makeUser(target, "alice")
    for (const path of ["/users/me", `/users/${alice.id}`, `/users?account=${alice.account}`]) {
      expect((await getJson(target, path)).status, path).toBe(401)
    }
    expect((await patch("/users/me", { name: "Mallory" })).status).toBe(401)
    expect((await patch(`/users/${alice.id}`, { name: "Mallory" }, (await makeUser(target, "mallory")).token)).status).toBe(404)
    expect((await getJson(target, "/users/me", alice.token)).body.name).toBe("alice")
  })
})
