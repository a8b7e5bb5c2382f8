import { Tokens } from "@im/auth/Tokens"
import { ConversationStore } from "@im/ports/ConversationStore"
import { FileRecords } from "@im/ports/FileRecords"
import { FriendStore } from "@im/ports/FriendStore"
import { GroupStore } from "@im/ports/GroupStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { InboxStore } from "@im/ports/InboxStore"
import { SeqStore } from "@im/ports/SeqStore"
import { SessionStore } from "@im/ports/SessionStore"
import { UserStore } from "@im/ports/UserStore"
import { ConfigProvider, Duration, Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeStandalone } from "../src/Standalone.ts"

/** A standalone server whose web client is the folder `webDir`. */
const start = async (webDir: string) => {
  const app = makeStandalone({
    storage: Layer.mergeAll(UserStore.layerMemory, GroupStore.layerMemory, HistoryStore.layerMemory, ConversationStore.layerMemory, InboxStore.layerMemory, SeqStore.layerMemory, SessionStore.layerMemory, FileRecords.layerMemory, FriendStore.layerMemory),
    tokens: Layer.succeed(Tokens, Tokens.make(Redacted.make("x".repeat(32)), Duration.hours(1))),
    listen: { port: 0, host: "127.0.0.1", maxFrameBytes: 65536 }
  }).pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ WEB_DIR: webDir }))))
  const runtime = ManagedRuntime.make(app)
  const server = await runtime.runPromise(Effect.service(HttpServer.HttpServer))
  return { runtime, base: `http://127.0.0.1:${(server.address as { port: number }).port}` }
}

let folder = ""
let built: Awaited<ReturnType<typeof start>>
let unbuilt: Awaited<ReturnType<typeof start>>

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), "im-web-"))
  await mkdir(join(folder, "dist", "assets"), { recursive: true })
  await mkdir(join(folder, "empty"))
  await writeFile(join(folder, "dist", "index.html"), "<!doctype html><title>IM</title><script src=\"./assets/app-1.js\"></script>")
  await writeFile(join(folder, "dist", "assets", "app-1.js"), "console.log('hi')")
  await writeFile(join(folder, "dist", "assets", "app-1.css"), "body{}")
  await writeFile(join(folder, "secret.txt"), "not served")
  built = await start(join(folder, "dist"))
  unbuilt = await start(join(folder, "empty"))
}, 30_000)

afterAll(async () => {
  await built?.runtime.dispose()
  await unbuilt?.runtime.dispose()
  await rm(folder, { recursive: true, force: true })
})

const get = async (base: string, path: string) => {
  const response = await fetch(base + path)
  return { status: response.status, type: response.headers.get("content-type") ?? "", body: await response.text() }
}

const rawGet = (base: string, path: string) =>
  new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    const { hostname, port } = new URL(base)
    request({ host: hostname, port, path }, (response) => {
      let body = ""
      response.setEncoding("utf8").on("data", (chunk: string) => (body += chunk)).on("end", () =>
        resolve({ status: response.statusCode ?? 0, type: response.headers["content-type"] ?? "", body }))
    }).on("error", reject).end()
  })

describe("the web client at /", () => {
  it("serves index.html at / and the built assets with their content types", async () => {
    const index = await get(built.base, "/")
    expect(index).toMatchObject({ status: 200, type: "text/html; charset=utf-8" })
    expect(index.body).toContain("<title>IM</title>")
    expect(await get(built.base, "/assets/app-1.js")).toEqual({ status: 200, type: "text/javascript; charset=utf-8", body: "console.log('hi')" })
    expect((await get(built.base, "/assets/app-1.css")).type).toBe("text/css; charset=utf-8")
  })

  it("leaves the API, the OpenAPI document and the docs page as they were", async () => {
    const openapi = await get(built.base, "/openapi.json")
    expect(openapi.status).toBe(200)
    expect(JSON.parse(openapi.body).openapi).toMatch(/^3\./)
    expect(await get(built.base, "/docs")).toMatchObject({ status: 200, type: expect.stringContaining("text/html") })
    expect(await get(built.base, "/health")).toMatchObject({ status: 200, body: "{\"status\":\"ok\"}" })
    // A route that needs a token still says so, in JSON.
    const me = await get(built.base, "/users/me")
    expect(me.status).toBe(401)
    expect(JSON.parse(me.body)).toEqual({ _tag: "Unauthorized", message: "missing token" })
  })

  it("answers an unknown path, or one outside the folder, with a JSON 404, never the page", async () => {
    // Sent as written (fetch would normalize the dots away): the file outside the folder stays out.
    for (const path of ["/nope", "/users/u_1/unknown", "/assets/missing.js", "/../secret.txt", "/..%2fsecret.txt", "/assets/..%2f..%2fsecret.txt"]) {
      const answer = await rawGet(built.base, path)
      expect(answer.status, path).toBe(404)
      expect(answer.type, path).toContain("application/json")
      expect(JSON.parse(answer.body)._tag, path).toBe("RouteNotFound")
    }
  })

  it("says how to build the client when the folder has none, and serves the API all the same", async () => {
    const page = await get(unbuilt.base, "/")
    expect(page.status).toBe(503)
    expect(page.type).toContain("text/html")
    expect(page.body).toContain("npm run build")
    expect((await get(unbuilt.base, "/health")).status).toBe(200)
    expect((await get(unbuilt.base, "/assets/app-1.js")).status).toBe(404)
  })
})
