import { assert } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { FileStore } from "../src/FileStore.ts"
import { unique } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

interface Answer {
  readonly status: number
  readonly bytes: Uint8Array
  readonly contentType: string | null
}

/** A plain HTTP request, as a browser or mobile client would send to a presigned URL. */
const request = (url: string, init: RequestInit = {}) =>
  Effect.promise(async (signal): Promise<Answer> => {
    const response = await fetch(url, { ...init, signal })
    const bytes = new Uint8Array(await response.arrayBuffer())
    return { status: response.status, bytes, contentType: response.headers.get("content-type") }
  })

const upload = (url: string, bytes: Uint8Array, contentType: string) =>
  request(url, { method: "PUT", body: bytes as Uint8Array<ArrayBuffer>, headers: { "content-type": contentType } })

const digest = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

const text = (s: string) => new TextEncoder().encode(s)

/** Bytes that do not compress or repeat: a part boundary off by one would show. */
const randomFile = (size: number) => new Uint8Array(randomBytes(size))

/**
 * The URL with one character in the middle of its signature changed (not the last one: in
 * base64 its low bits may be padding that decoding ignores).
 */
const withForgedSignature = (url: string): string => {
  const parsed = new URL(url)
  const name = [...parsed.searchParams.keys()].find((key) => key.toLowerCase().endsWith("signature"))
  assert.isDefined(name, `no signature parameter in ${url}`)
  const signature = parsed.searchParams.get(name!)!
  const at = signature.length >> 1
  const forged = signature[at] === "a" ? "b" : "a"
  parsed.searchParams.set(name!, signature.slice(0, at) + forged + signature.slice(at + 1))
  return parsed.toString()
}

/** The URL signed for one key, pointed at another. */
const withOtherKey = (url: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `${parsed.pathname}-other`
  return parsed.toString()
}

const MiB = 1024 * 1024

/**
 * The FileStore contract: objects under keys, presigned PUT/GET URLs that a plain HTTP client
 * can use, refused when forged, pointed elsewhere, used for the other method, or expired.
 */
export const fileStoreSuite = (name: string, adapter: Layer.Layer<FileStore, unknown>, options: SuiteOptions = {}) =>
  describeAdapter(`FileStore conformance: ${name}`, adapter, options, (it) => {
    it.effect("put then get gives the bytes and the content type back; put again replaces", () =>
      Effect.gen(function*() {
        const files = yield* FileStore
        const key = unique("chat/images/a b ü")
        yield* files.put(key, text("first"), "text/plain")
        const first = yield* files.get(key)
        assert.deepStrictEqual([...first.bytes], [...text("first")])
        assert.strictEqual(first.contentType, "text/plain")
        yield* files.put(key, randomFile(1000), "image/png")
        yield* files.put(key, text("second, longer"), "application/json")
        const second = yield* files.get(key)
        assert.deepStrictEqual([...second.bytes], [...text("second, longer")])
        assert.strictEqual(second.contentType, "application/json")
        const empty = unique("empty")
        yield* files.put(empty, new Uint8Array(0), "application/octet-stream")
        assert.strictEqual((yield* files.get(empty)).bytes.byteLength, 0)
      }))

    it.effect("an unknown key is not found; remove makes a key unknown; removing twice succeeds", () =>
      Effect.gen(function*() {
        const files = yield* FileStore
        const missing = yield* Effect.flip(files.get(unique("never-written")))
        assert.strictEqual(missing._tag, "FileNotFound")
        const key = unique("voice/clip")
        yield* files.put(key, text("hello"), "audio/ogg")
        yield* files.remove(key)
        const removed = yield* Effect.flip(files.get(key))
        assert.strictEqual(removed._tag, "FileNotFound")
        yield* files.remove(key)
        const url = yield* files.presignedDownload(key, "1 minute")
        assert.strictEqual((yield* request(url)).status, 404)
      }))

    it.effect("stat tells the size and content type of what was put or uploaded; an unknown key is not found", () =>
      Effect.gen(function*() {
        const files = yield* FileStore
        const key = unique("stat/put")
        yield* files.put(key, randomFile(1234), "image/png")
        assert.deepStrictEqual(yield* files.stat(key), { size: 1234, contentType: "image/png" })
        yield* files.put(key, text("shorter"), "text/plain")
        assert.deepStrictEqual(yield* files.stat(key), { size: 7, contentType: "text/plain" })

        // The upload URL limits neither size nor type: stat shows what the uploader really sent.
        const uploaded = unique("stat/uploaded")
        const put = yield* files.presignedUpload(uploaded, { contentType: "image/jpeg", expiresIn: "5 minutes" })
        assert.strictEqual((yield* upload(put, randomFile(3000), "application/zip")).status, 200)
        assert.deepStrictEqual(yield* files.stat(uploaded), { size: 3000, contentType: "application/zip" })

        const missing = yield* Effect.flip(files.stat(unique("stat/never-written")))
        assert.strictEqual(missing._tag, "FileNotFound")
        yield* files.remove(key)
        assert.strictEqual((yield* Effect.flip(files.stat(key)))._tag, "FileNotFound")
      }))

    it.effect("a presigned upload, then a presigned download, gives the same bytes", () =>
      Effect.gen(function*() {
        const files = yield* FileStore
        const key = unique("attachments/report (final).pdf")
        const bytes = randomFile(64 * 1024)
        const put = yield* files.presignedUpload(key, { contentType: "application/pdf", expiresIn: "5 minutes" })
        assert.strictEqual((yield* upload(put, bytes, "application/pdf")).status, 200)

        const stored = yield* files.get(key)
        assert.strictEqual(digest(stored.bytes), digest(bytes))
        assert.strictEqual(stored.contentType, "application/pdf")

        const got = yield* request(yield* files.presignedDownload(key, "5 minutes"))
        assert.strictEqual(got.status, 200)
        assert.strictEqual(got.bytes.byteLength, bytes.byteLength)
        assert.strictEqual(digest(got.bytes), digest(bytes))
        assert.strictEqual(got.contentType, "application/pdf")

        // A file put by a service downloads the same way.
        const other = unique("avatars/u1")
        yield* files.put(other, text("avatar"), "image/webp")
        const avatar = yield* request(yield* files.presignedDownload(other, "1 minute"))
        assert.strictEqual(avatar.status, 200)
        assert.deepStrictEqual([...avatar.bytes], [...text("avatar")])
      }))

    it.effect("12 MiB, more than one multipart part: put/get and presigned upload/download round trips", () =>
      Effect.gen(function*() {
        const files = yield* FileStore
        const bytes = randomFile(12 * MiB + 17)

        const key = unique("video/put")
        yield* files.put(key, bytes, "video/mp4")
        const stored = yield* files.get(key)
        assert.strictEqual(stored.bytes.byteLength, bytes.byteLength)
        assert.strictEqual(digest(stored.bytes), digest(bytes))
        assert.strictEqual(stored.contentType, "video/mp4")

        const presigned = unique("video/presigned")
        const put = yield* files.presignedUpload(presigned, { contentType: "video/mp4", expiresIn: "5 minutes" })
        assert.strictEqual((yield* upload(put, bytes, "video/mp4")).status, 200)
        const got = yield* request(yield* files.presignedDownload(presigned, "5 minutes"))
        assert.strictEqual(got.status, 200)
        assert.strictEqual(got.bytes.byteLength, bytes.byteLength)
        assert.strictEqual(digest(got.bytes), digest(bytes))
      }), 120_000)

    it.effect("a forged, redirected or wrong-method URL is refused (403) and changes nothing", () =>
      Effect.gen(function*() {
        const files = yield* FileStore
        const key = unique("docs/contract")
        yield* files.put(key, text("original"), "text/plain")

        const put = yield* files.presignedUpload(key, { contentType: "text/plain", expiresIn: "5 minutes" })
        assert.strictEqual((yield* upload(withForgedSignature(put), text("forged"), "text/plain")).status, 403)
        assert.strictEqual((yield* upload(withOtherKey(put), text("elsewhere"), "text/plain")).status, 403)
        const missing = yield* Effect.flip(files.get(`${key}-other`))
        assert.strictEqual(missing._tag, "FileNotFound")

        const get = yield* files.presignedDownload(key, "5 minutes")
        assert.strictEqual((yield* request(withForgedSignature(get))).status, 403)
        assert.strictEqual((yield* request(withOtherKey(get))).status, 403)
        // A download URL is no upload URL, and the other way round.
        assert.strictEqual((yield* upload(get, text("via GET url"), "text/plain")).status, 403)
        assert.strictEqual((yield* request(put)).status, 403)

        assert.deepStrictEqual([...(yield* files.get(key)).bytes], [...text("original")])
        const genuine = yield* request(get)
        assert.strictEqual(genuine.status, 200)
        assert.deepStrictEqual([...genuine.bytes], [...text("original")])
      }))

    it.effect("an expired URL is refused (403)", () =>
      Effect.gen(function*() {
        const files = yield* FileStore
        const key = unique("expiring")
        yield* files.put(key, text("short-lived"), "text/plain")
        const get = yield* files.presignedDownload(key, "1 second")
        const put = yield* files.presignedUpload(unique("expiring-upload"), { contentType: "text/plain", expiresIn: "1 second" })
        // S3 dates have whole seconds: wait well past the end of the second the URL was made in.
        yield* Effect.sleep("2500 millis")
        assert.strictEqual((yield* request(get)).status, 403)
        assert.strictEqual((yield* upload(put, text("late"), "text/plain")).status, 403)
        const fresh = yield* request(yield* files.presignedDownload(key, "1 minute"))
        assert.strictEqual(fresh.status, 200)
      }), 30_000)
  })
