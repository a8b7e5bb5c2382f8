import { HttpError, SendError } from "@im/client/Client"
import type { FileReference } from "@im/client/Wire"
import { randomBytes } from "node:crypto"
import { describe, expect, it } from "vitest"
import { devices } from "./Devices.ts"
import { digest, eventually, getJson, makeUser, newestSeq, postJson, pullAll, type TestUser } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget()

const online = devices(() => target)

const MiB = 1024 * 1024

/** Bytes that do not repeat: a truncated or shifted download would show. */
const randomFile = (size: number) => new Uint8Array(randomBytes(size))

const announce = (user: TestUser, body: unknown) => postJson(target, "/files", body, user.token)

/** One HTTP PUT of the bytes to a presigned upload URL, as a browser would send it. */
const put = async (url: string, bytes: Uint8Array, contentType: string) =>
  (await fetch(url, { method: "PUT", headers: { "content-type": contentType }, body: bytes as Uint8Array<ArrayBuffer> })).status

const download = async (url: string) => {
  const response = await fetch(url)
  return { status: response.status, bytes: new Uint8Array(await response.arrayBuffer()), contentType: response.headers.get("content-type") }
}

/** Announces and uploads through the raw protocol; the reference to put in a message. */
const uploadRaw = async (user: TestUser, bytes: Uint8Array, name: string, mime: string): Promise<FileReference> => {
  const ticket = await announce(user, { name, content_type: mime, size: bytes.byteLength })
  expect(ticket.status, JSON.stringify(ticket.body)).toBe(201)
  expect(await put(ticket.body.upload_url, bytes, ticket.body.headers["content-type"])).toBe(200)
  return { file_id: ticket.body.file_id, name, size: bytes.byteLength, mime }
}

/** The URL with one character of its signature changed (the store's or S3's). */
const withForgedSignature = (url: string): string => {
  const parsed = new URL(url)
  const name = [...parsed.searchParams.keys()].find((key) => key.toLowerCase().endsWith("signature"))
  expect(name, `no signature parameter in ${url}`).toBeDefined()
  const signature = parsed.searchParams.get(name!)!
  const at = signature.length >> 1
  parsed.searchParams.set(name!, signature.slice(0, at) + (signature[at] === "a" ? "b" : "a") + signature.slice(at + 1))
  return parsed.toString()
}

describe(`files against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("A uploads an image and sends it to B: B gets the reference and downloads the same bytes", async () => {
    const [alice, bob] = await Promise.all([makeUser(target, "alice"), makeUser(target, "bob")])
    const a = await online(alice)
    const b = await online(bob)
    const bytes = randomFile(300 * 1024 + 7)

    const reference = await a.client.uploadFile(bytes, "beach (1).png", "image/png")
    expect(reference).toEqual({ file_id: expect.stringMatching(/^f_/), name: "beach (1).png", size: bytes.byteLength, mime: "image/png" })
    await a.client.send({ receiver_id: bob.id, content_type: "image", content: JSON.stringify({ ...reference, width: 640, height: 480 }) })

    await eventually(() => b.received.length === 1, "the image message at bob")
    const message = b.received[0]!.message
    expect(message.content_type).toBe("image")
    const received = JSON.parse(message.content)
    expect(received).toEqual({ ...reference, width: 640, height: 480 })

    const info = await b.client.fileInfo(received.file_id)
    expect(info).toMatchObject({ file_id: reference.file_id, name: "beach (1).png", content_type: "image/png", size: bytes.byteLength })
    expect(info.expires_at).toBeGreaterThan(Date.now())
    const got = await download(info.download_url)
    expect(got.status).toBe(200)
    expect(got.bytes.byteLength).toBe(bytes.byteLength)
    expect(digest(got.bytes)).toBe(digest(bytes))
    expect(got.contentType).toBe("image/png")

    // The owner may fetch it too; the SDK's fileUrl is the same kind of URL.
    expect(digest((await download(await a.client.fileUrl(reference.file_id))).bytes)).toBe(digest(bytes))
  }, 30_000)

  it("a file sent to a group is downloadable by its members, not by a non-member nor a removed member (404)", async () => {
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((n) => makeUser(target, n)))
    const created = await postJson(target, "/groups", { name: "docs", member_ids: [bob.id] }, alice.token)
    expect(created.status, JSON.stringify(created.body)).toBe(201)
    const group = created.body
    const a = await online(alice)
    const bytes = randomFile(64 * 1024)
    const reference = await a.client.uploadFile(new Blob([bytes]), "minutes.pdf", "application/pdf")
    await a.client.send({ group_id: group.id, content_type: "file", content: JSON.stringify(reference) })
    // Bob's inbox may also hold notices about the group: find the file message.
    const fileMessages = async () => (await pullAll(target, bob)).filter((e) => e.message.content_type === "file")
    await eventually(async () => (await fileMessages()).length === 1, "the file message at bob")
    const [entry] = await fileMessages()
    expect(JSON.parse(entry.message.content).file_id).toBe(reference.file_id)

    const forBob = await getJson(target, `/files/${reference.file_id}`, bob.token)
    expect(forBob.status).toBe(200)
    expect(digest((await download(forBob.body.download_url)).bytes)).toBe(digest(bytes))

    const forCarol = await getJson(target, `/files/${reference.file_id}`, carol.token)
    expect([forCarol.status, forCarol.body?._tag]).toEqual([404, "FileNotFound"])
    expect(forCarol.body.download_url).toBeUndefined()

    // Membership is checked now, not when the file was sent.
    const removed = await fetch(`${target.baseUrl}/groups/${group.id}/members/${bob.id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${alice.token}` }
    })
    expect(removed.status).toBe(204)
    const afterRemoval = await getJson(target, `/files/${reference.file_id}`, bob.token)
    expect([afterRemoval.status, afterRemoval.body?._tag]).toEqual([404, "FileNotFound"])
  }, 30_000)

  it("a stranger gets the same 404 as for a file that does not exist; the receiver only once it was sent", async () => {
    const [alice, bob, mallory] = await Promise.all(["alice", "bob", "mallory"].map((n) => makeUser(target, n)))
    const reference = await uploadRaw(alice, randomFile(1000), "notes.txt", "text/plain")

    // Uploaded but not sent yet: only the owner sees it.
    expect((await getJson(target, `/files/${reference.file_id}`, alice.token)).status).toBe(200)
    expect((await getJson(target, `/files/${reference.file_id}`, bob.token)).status).toBe(404)

    const a = await online(alice)
    await a.client.send({ receiver_id: bob.id, content_type: "file", content: JSON.stringify(reference) })
    expect((await getJson(target, `/files/${reference.file_id}`, bob.token)).status).toBe(200)

    const stranger = await getJson(target, `/files/${reference.file_id}`, mallory.token)
    const unknown = await getJson(target, "/files/f_no_such_file", mallory.token)
    expect([stranger.status, stranger.body?._tag]).toEqual([404, "FileNotFound"])
    expect([unknown.status, unknown.body?._tag]).toEqual([404, "FileNotFound"])
    expect(Object.keys(stranger.body).sort()).toEqual(Object.keys(unknown.body).sort())
    expect((await getJson(target, `/files/${reference.file_id}`)).status).toBe(401)
  }, 30_000)

  it("refuses an oversized, empty or badly typed or named file (400) and records nothing", async () => {
    const alice = await makeUser(target, "alice")
    const refused: Array<[string, unknown, string]> = [
      ["above FILE_MAX_BYTES (50 MiB)", { name: "big.zip", content_type: "application/zip", size: 50 * MiB + 1 }, "FileTooLarge"],
      ["zero bytes", { name: "empty.txt", content_type: "text/plain", size: 0 }, "HttpApiSchemaError"],
      ["negative size", { name: "neg.txt", content_type: "text/plain", size: -1 }, "HttpApiSchemaError"],
      ["fractional size", { name: "half.txt", content_type: "text/plain", size: 1.5 }, "HttpApiSchemaError"],
      ["HTML", { name: "page.html", content_type: "text/html", size: 10 }, "HttpApiSchemaError"],
      ["SVG", { name: "logo.svg", content_type: "image/svg+xml", size: 10 }, "HttpApiSchemaError"],
      ["a type with parameters", { name: "a.txt", content_type: "text/plain; charset=utf-8", size: 10 }, "HttpApiSchemaError"],
      ["empty name", { name: "", content_type: "image/png", size: 10 }, "HttpApiSchemaError"],
      ["256-character name", { name: `${"n".repeat(252)}.png`, content_type: "image/png", size: 10 }, "HttpApiSchemaError"],
      ["control character in the name", { name: "a\nb.png", content_type: "image/png", size: 10 }, "HttpApiSchemaError"],
      ["no size", { name: "a.png", content_type: "image/png" }, "HttpApiSchemaError"]
    ]
    for (const [what, body, tag] of refused) {
      const answer = await announce(alice, body)
      expect([answer.status, answer.body?._tag], what).toEqual([400, tag])
      expect(answer.body.message, what).toEqual(expect.any(String))
      expect(answer.body.file_id, what).toBeUndefined()
    }
    const tooLarge = await announce(alice, refused[0]![1])
    expect(tooLarge.body.max_bytes).toBe(50 * MiB)
    if (target.filesOf !== undefined) expect(await target.filesOf(alice.id)).toBe(0)

    // At the limits: 255 characters, exactly FILE_MAX_BYTES.
    const accepted = await announce(alice, { name: `${"n".repeat(251)}.zip`, content_type: "application/zip", size: 50 * MiB })
    expect(accepted.status).toBe(201)
    expect(accepted.body).toEqual({
      file_id: expect.stringMatching(/^f_/),
      upload_url: expect.stringMatching(/^https?:\/\//),
      method: "PUT",
      headers: { "content-type": "application/zip" },
      expires_at: expect.any(Number)
    })
    expect(accepted.body.expires_at).toBeGreaterThan(Date.now())
    expect(accepted.body.expires_at).toBeLessThanOrEqual(Date.now() + 60 * 60 * 1000)
    if (target.filesOf !== undefined) expect(await target.filesOf(alice.id)).toBe(1)
  }, 30_000)

  it("a send naming someone else's file, an unknown or never-uploaded file, or a wrong upload is invalid_file; nothing is stored", async () => {
    const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((n) => makeUser(target, n)))
    const a = await online(alice)
    const refused = async (content_type: "image" | "file", content: unknown) => {
      const error = await a.client.send({ receiver_id: bob.id, content_type, content: JSON.stringify(content) }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(SendError)
      expect((error as SendError).code, JSON.stringify(content)).toBe("invalid_file")
    }

    const carols = await uploadRaw(carol, randomFile(100), "carol.png", "image/png")
    await refused("image", carols)
    await refused("image", { ...carols, file_id: "f_no_such_file" })

    const announcedOnly = (await announce(alice, { name: "later.png", content_type: "image/png", size: 100 })).body
    await refused("image", { file_id: announcedOnly.file_id, name: "later.png", size: 100, mime: "image/png" })

    // What was really uploaded must be what was announced.
    const retyped = (await announce(alice, { name: "x.png", content_type: "image/png", size: 100 })).body
    expect(await put(retyped.upload_url, randomFile(100), "text/plain")).toBe(200)
    await refused("image", { file_id: retyped.file_id, name: "x.png", size: 100, mime: "image/png" })
    const larger = (await announce(alice, { name: "y.png", content_type: "image/png", size: 100 })).body
    expect(await put(larger.upload_url, randomFile(5000), "image/png")).toBe(200)
    await refused("image", { file_id: larger.file_id, name: "y.png", size: 100, mime: "image/png" })

    // A good file, described wrongly or in the wrong kind of message.
    const mine = await uploadRaw(alice, randomFile(100), "mine.pdf", "application/pdf")
    await refused("image", mine)
    await refused("file", { ...mine, size: 99 })
    await refused("file", { ...mine, name: "other.pdf" })
    const notJson = await a.client.send({ receiver_id: bob.id, content_type: "file", content: "mine.pdf" }).catch((e: unknown) => e)
    expect((notJson as SendError).code).toBe("invalid_file")

    // Nothing was stored: the next message is everyone's first entry, and Bob may not read the files.
    await a.client.send({ receiver_id: bob.id, content: "after the refusals" })
    await eventually(async () => (await newestSeq(target, bob)) >= 1, "bob's entry")
    expect((await pullAll(target, bob)).map((e) => [e.seq, e.message.content])).toEqual([[1, "after the refusals"]])
    expect((await pullAll(target, alice)).map((e) => [e.seq, e.message.content])).toEqual([[1, "after the refusals"]])
    for (const id of [carols.file_id, retyped.file_id, larger.file_id, mine.file_id]) {
      expect((await getJson(target, `/files/${id}`, bob.token)).status, id).toBe(404)
    }
  }, 30_000)

  it("the SDK reports a refused announcement as an HttpError and uploads nothing", async () => {
    const alice = await makeUser(target, "alice")
    const a = await online(alice, { connect: false })
    const error = await a.client.uploadFile(randomFile(10), "page.html", "text/html").catch((e: unknown) => e)
    expect(error).toBeInstanceOf(HttpError)
    expect([(error as HttpError).status, (error as HttpError).tag]).toEqual([400, "HttpApiSchemaError"])
    expect(a.requests.filter((url) => !url.startsWith(target.baseUrl))).toEqual([])
  })

  it("the store refuses a tampered URL and an expired one; a fresh URL works", async () => {
    const alice = await makeUser(target, "alice")
    const original = randomFile(2048)
    const ticket = (await announce(alice, { name: "a.bin", content_type: "application/octet-stream", size: original.byteLength })).body
    expect(await put(withForgedSignature(ticket.upload_url), original, "application/octet-stream")).toBe(403)
    expect(await put(ticket.upload_url, original, "application/octet-stream")).toBe(200)

    const info = (await getJson(target, `/files/${ticket.file_id}`, alice.token)).body
    expect((await download(withForgedSignature(info.download_url))).status).toBe(403)
    // Replacing the bytes takes the upload URL, not the download URL.
    expect(await put(info.download_url, randomFile(2048), "application/octet-stream")).toBe(403)
    expect(digest((await download(info.download_url)).bytes)).toBe(digest(original))

    // The target runs with FILE_DOWNLOAD_URL_TTL of a few seconds (TEST_SETTINGS).
    expect(info.expires_at - Date.now()).toBeLessThanOrEqual(10_000)
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, info.expires_at - Date.now()) + 1_500))
    expect((await download(info.download_url)).status).toBe(403)
    const fresh = (await getJson(target, `/files/${ticket.file_id}`, alice.token)).body
    expect(digest((await download(fresh.download_url)).bytes)).toBe(digest(original))
  }, 30_000)
})
