import { assert, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { FileStore } from "../src/FileStore.ts"
import { fileStoreSuite } from "../testing/FileStoreSuite.ts"

fileStoreSuite("local, in memory", FileStore.layerLocal())

/** A fresh folder for the objects, removed when the suite's layer is released. */
const inTempFolder = Layer.unwrap(
  Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "im-files-"))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  ).pipe(Effect.map((dir) => FileStore.layerLocal({ dir })))
)

fileStoreSuite("local, in a folder", inTempFolder)

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

it.live("local: a signature that differs only in base64 padding bits is refused too", () =>
  Effect.gen(function*() {
    const files = yield* FileStore
    yield* files.put("k", new TextEncoder().encode("v"), "text/plain")
    const url = new URL(yield* files.presignedDownload("k", "1 minute"))
    const signature = url.searchParams.get("X-Signature")!
    // 32 bytes in 43 characters: the last character's two low bits carry nothing.
    const last = BASE64URL.indexOf(signature.at(-1)!)
    url.searchParams.set("X-Signature", signature.slice(0, -1) + BASE64URL[last ^ 1])
    assert.deepStrictEqual(Buffer.from(url.searchParams.get("X-Signature")!, "base64url"), Buffer.from(signature, "base64url"))
    const response = yield* Effect.promise(() => fetch(url))
    assert.strictEqual(response.status, 403)
  }).pipe(Effect.provide(FileStore.layerLocal())))

it.live("local: browsers on another origin may use the presigned URLs (CORS preflight and answers)", () =>
  Effect.gen(function*() {
    const files = yield* FileStore
    const put = yield* files.presignedUpload("cors", { contentType: "image/png", expiresIn: "1 minute" })
    const preflight = yield* Effect.promise(() =>
      fetch(put, {
        method: "OPTIONS",
        headers: { origin: "http://app.example", "access-control-request-method": "PUT", "access-control-request-headers": "content-type" }
      })
    )
    assert.strictEqual(preflight.status, 204)
    assert.strictEqual(preflight.headers.get("access-control-allow-origin"), "*")
    assert.include(preflight.headers.get("access-control-allow-methods") ?? "", "PUT")
    assert.include(preflight.headers.get("access-control-allow-headers") ?? "", "content-type")
    const uploaded = yield* Effect.promise(() =>
      fetch(put, { method: "PUT", headers: { origin: "http://app.example", "content-type": "image/png" }, body: new Uint8Array([1]) })
    )
    assert.strictEqual(uploaded.status, 200)
    assert.strictEqual(uploaded.headers.get("access-control-allow-origin"), "*")
  }).pipe(Effect.provide(FileStore.layerLocal())))
