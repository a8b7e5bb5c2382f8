import { describe, expect, it } from "vitest"
import { type Fetch, type FetchInit, HttpError, ImClient } from "../src/Client.ts"

interface Seen {
  readonly url: string
  readonly init: FetchInit
}

/** A fetch that records requests and answers from a table of (method url) → (status, body). */
const fakeFetch = (answers: Record<string, { readonly status: number; readonly body?: unknown }>) => {
  const seen: Array<Seen> = []
  const fetch: Fetch = async (url, init) => {
    seen.push({ url, init })
    const answer = answers[`${init.method} ${url}`] ?? { status: 404, body: { _tag: "NotFound", message: url } }
    return { ok: answer.status < 300, status: answer.status, json: async () => answer.body }
  }
  return { fetch, seen }
}

const ticket = {
  file_id: "f_1",
  upload_url: "http://files.test/files/f_1?sig=x",
  method: "PUT",
  headers: { "content-type": "image/png" },
  expires_at: 1_000
}

describe("files in the SDK", () => {
  it("uploadFile announces the file, PUTs the bytes with the given headers, and returns the reference", async () => {
    const { fetch, seen } = fakeFetch({
      "POST http://api.test/files": { status: 201, body: ticket },
      "PUT http://files.test/files/f_1?sig=x": { status: 200 }
    })
    const client = new ImClient({ baseUrl: "http://api.test/", fetch, token: "t" })
    const bytes = new Uint8Array([1, 2, 3, 4, 5])
    const reference = await client.uploadFile(bytes, "a.png", "image/png")
    expect(reference).toEqual({ file_id: "f_1", name: "a.png", size: 5, mime: "image/png" })
    expect(seen.map((s) => `${s.init.method} ${s.url}`)).toEqual(["POST http://api.test/files", "PUT http://files.test/files/f_1?sig=x"])
    expect(JSON.parse(seen[0]!.init.body as string)).toEqual({ name: "a.png", content_type: "image/png", size: 5 })
    expect(seen[0]!.init.headers["authorization"]).toBe("Bearer t")
    expect(seen[1]!.init.headers).toEqual({ "content-type": "image/png" })
    expect(seen[1]!.init.headers["authorization"]).toBeUndefined()
    expect(seen[1]!.init.body).toBe(bytes)

    // A Blob's size is its byte count.
    await client.uploadFile(new Blob([new Uint8Array(7)]), "b.png", "image/png")
    expect(JSON.parse(seen[2]!.init.body as string).size).toBe(7)
  })

  it("a refused announcement rejects with the server's error and uploads nothing; a refused PUT is UploadFailed", async () => {
    const refused = fakeFetch({
      "POST http://api.test/files": { status: 400, body: { _tag: "FileTooLarge", message: "too large", max_bytes: 1 } }
    })
    const client = new ImClient({ baseUrl: "http://api.test", fetch: refused.fetch, token: "t" })
    const error = await client.uploadFile(new Uint8Array(2), "a.png", "image/png").catch((e: unknown) => e)
    expect(error).toBeInstanceOf(HttpError)
    expect([(error as HttpError).status, (error as HttpError).tag]).toEqual([400, "FileTooLarge"])
    expect(refused.seen).toHaveLength(1)

    const expired = fakeFetch({
      "POST http://api.test/files": { status: 201, body: ticket },
      "PUT http://files.test/files/f_1?sig=x": { status: 403 }
    })
    const other = new ImClient({ baseUrl: "http://api.test", fetch: expired.fetch, token: "t" })
    const failed = await other.uploadFile(new Uint8Array(2), "a.png", "image/png").catch((e: unknown) => e)
    expect([(failed as HttpError).status, (failed as HttpError).tag]).toEqual([403, "UploadFailed"])
  })

  it("fileInfo and fileUrl ask GET /files/{file_id}; a 404 is an HttpError", async () => {
    const info = { file_id: "f/1", name: "a.png", content_type: "image/png", size: 5, download_url: "http://files.test/d", expires_at: 9 }
    const { fetch, seen } = fakeFetch({ "GET http://api.test/files/f%2F1": { status: 200, body: info } })
    const client = new ImClient({ baseUrl: "http://api.test", fetch, token: "t" })
    expect(await client.fileInfo("f/1")).toEqual(info)
    expect(await client.fileUrl("f/1")).toBe("http://files.test/d")
    expect(seen[0]!.init.headers["authorization"]).toBe("Bearer t")
    const missing = await client.fileUrl("f_2").catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(HttpError)
    expect((missing as HttpError).status).toBe(404)
  })
})
