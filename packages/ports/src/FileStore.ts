import { Clock, Context, Data, Duration, Effect, Layer } from "effect"
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { PortError } from "./PortError.ts"

/** No object is stored under the key. */
export class FileNotFound extends Data.TaggedError("FileNotFound")<{
  readonly key: string
}> {
  override get message() {
    return `no file under ${JSON.stringify(this.key)}`
  }
}

export interface StoredFile {
  readonly bytes: Uint8Array
  readonly contentType: string
}

/** What is stored under a key, without its bytes. */
export interface FileStat {
  readonly size: number
  readonly contentType: string
}

export interface PresignedUploadOptions {
  /** What the uploader sends as `Content-Type` with its PUT, and what `get` then reports. */
  readonly contentType: string
  /** How long the URL is accepted; S3 rounds to whole seconds (at least 1, at most 7 days). */
  readonly expiresIn: Duration.Input
}

/**
 * Objects (images, voice, attachments) under string keys. Clients move the bytes themselves
 * through presigned URLs, so large files never pass through a service: `presignedUpload` gives
 * a URL for one HTTP PUT of the body (with `Content-Type: contentType`), `presignedDownload` a
 * URL for an HTTP GET. A URL works only for its key and method, and only until it expires;
 * anything else is answered 403. Writing a key again replaces the object; removing a missing
 * key succeeds. A presigned upload limits neither the size nor the type of what is sent: `stat`
 * tells what was really stored.
 */
export class FileStore extends Context.Service<FileStore, {
  readonly put: (key: string, bytes: Uint8Array, contentType: string) => Effect.Effect<void, PortError>
  readonly get: (key: string) => Effect.Effect<StoredFile, FileNotFound | PortError>
  /** The size and content type of the object under the key, without reading it. */
  readonly stat: (key: string) => Effect.Effect<FileStat, FileNotFound | PortError>
  readonly presignedUpload: (key: string, options: PresignedUploadOptions) => Effect.Effect<string, PortError>
  readonly presignedDownload: (key: string, expiresIn: Duration.Input) => Effect.Effect<string, PortError>
  readonly remove: (key: string) => Effect.Effect<void, PortError>
}>()("@im/ports/FileStore") {
  /**
   * Files for standalone mode and tests: kept in memory (`dir` undefined) or in a folder, and
   * served to presigned URLs by an HTTP server on a free port of 127.0.0.1, closed on release.
   * URLs are signed with HMAC-SHA256 under a key made at start, so they die with the layer.
   */
  static readonly layerLocal = (options: { readonly dir?: string | undefined } = {}): Layer.Layer<FileStore, PortError> =>
    Layer.effect(FileStore, makeLocal(options))
}

const LOCAL = "FileStore"
/** A presigned upload larger than this is refused (413): the local store keeps a body in memory. */
const MAX_UPLOAD_BYTES = 256 * 1024 * 1024
const DEFAULT_CONTENT_TYPE = "application/octet-stream"

interface Backend {
  readonly write: (key: string, file: StoredFile) => Promise<void>
  readonly read: (key: string) => Promise<StoredFile | undefined>
  readonly stat: (key: string) => Promise<FileStat | undefined>
  readonly delete: (key: string) => Promise<void>
}

const memoryBackend = (): Backend => {
  const files = new Map<string, StoredFile>()
  return {
    write: async (key, file) => void files.set(key, { bytes: Uint8Array.from(file.bytes), contentType: file.contentType }),
    read: async (key) => files.get(key),
    stat: async (key) => {
      const file = files.get(key)
      return file === undefined ? undefined : { size: file.bytes.byteLength, contentType: file.contentType }
    },
    delete: async (key) => void files.delete(key)
  }
}

/**
 * One data file and one metadata file per object, named by the SHA-256 of the key (keys may
 * hold `/`, `..` or be longer than a file name). A write goes to a temporary file first and is
 * renamed into place, so a reader sees the old object or the new one.
 */
const folderBackend = (dir: string): Backend => {
  const base = (key: string) => join(dir, createHash("sha256").update(key).digest("hex"))
  const isMissing = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code === "ENOENT"
  return {
    write: async (key, file) => {
      const path = base(key)
      const temp = `${path}.${randomBytes(6).toString("hex")}.tmp`
      await writeFile(`${temp}.data`, file.bytes)
      await writeFile(`${temp}.meta`, JSON.stringify({ key, contentType: file.contentType }))
      await rename(`${temp}.data`, `${path}.data`)
      await rename(`${temp}.meta`, `${path}.meta`)
    },
    read: async (key) => {
      const path = base(key)
      try {
        const meta = JSON.parse(await readFile(`${path}.meta`, "utf8")) as { key: string; contentType: string }
        const bytes = await readFile(`${path}.data`)
        return { bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), contentType: meta.contentType }
      } catch (error) {
        if (isMissing(error)) return undefined
        throw error
      }
    },
    stat: async (key) => {
      const path = base(key)
      try {
        const meta = JSON.parse(await readFile(`${path}.meta`, "utf8")) as { key: string; contentType: string }
        return { size: (await stat(`${path}.data`)).size, contentType: meta.contentType }
      } catch (error) {
        if (isMissing(error)) return undefined
        throw error
      }
    },
    delete: async (key) => {
      const path = base(key)
      await rm(`${path}.meta`, { force: true })
      await rm(`${path}.data`, { force: true })
    }
  }
}

type Method = "PUT" | "GET"

const makeLocal = Effect.fnUntraced(function*(options: { readonly dir?: string | undefined }) {
  const dir = options.dir
  if (dir !== undefined) {
    yield* Effect.tryPromise({
      try: () => mkdir(dir, { recursive: true }),
      catch: (cause) => new PortError({ port: LOCAL, operation: "start", retryable: false, cause })
    })
  }
  const backend = dir === undefined ? memoryBackend() : folderBackend(dir)
  const secret = randomBytes(32)
  const sign = (method: Method, key: string, expires: number, contentType: string) =>
    createHmac("sha256", secret).update(JSON.stringify([method, key, expires, contentType])).digest()

  /** Checks a presigned request; when it is refused, answers it (403) and returns undefined. */
  const verified = (method: Method, key: string, url: URL, res: ServerResponse): { contentType: string } | undefined => {
    const expires = Number(url.searchParams.get("X-Expires"))
    const contentType = url.searchParams.get("X-Content-Type") ?? ""
    // Compared as text: base64 decoding ignores the padding bits of the last character, so
    // several strings decode to the right bytes; only the one this store made is accepted.
    const given = Buffer.from(url.searchParams.get("X-Signature") ?? "")
    const expected = Buffer.from(sign(method, key, expires, contentType).toString("base64url"))
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      reply(res, 403, "SignatureDoesNotMatch")
      return undefined
    }
    // Real time, as an S3 server would check it: the URL left this process.
    if (!Number.isFinite(expires) || expires <= Date.now()) {
      reply(res, 403, "AccessDenied: request has expired")
      return undefined
    }
    return { contentType }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1")
    // Browsers upload from the app's origin: a presigned URL is the credential, so any origin may use it.
    res.setHeader("access-control-allow-origin", "*")
    if (req.method === "OPTIONS") {
      req.resume()
      res.writeHead(204, {
        "access-control-allow-methods": "GET, PUT",
        "access-control-allow-headers": "content-type",
        "access-control-max-age": "600"
      })
      return res.end()
    }
    const prefix = "/files/"
    if (!url.pathname.startsWith(prefix)) return reply(res, 404, "NoSuchKey")
    const key = decodeURIComponent(url.pathname.slice(prefix.length))
    if (req.method === "PUT") {
      const signed = verified("PUT", key, url, res)
      if (signed === undefined) return req.resume()
      const chunks: Array<Buffer> = []
      let size = 0
      for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length
        if (size > MAX_UPLOAD_BYTES) return reply(res, 413, "EntityTooLarge")
        chunks.push(chunk)
      }
      const bytes = Buffer.concat(chunks, size)
      await backend.write(key, {
        bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        contentType: req.headers["content-type"] ?? (signed.contentType || DEFAULT_CONTENT_TYPE)
      })
      return reply(res, 200, "")
    }
    if (req.method === "GET") {
      if (verified("GET", key, url, res) === undefined) return
      const file = await backend.read(key)
      if (file === undefined) return reply(res, 404, "NoSuchKey")
      res.writeHead(200, { "content-type": file.contentType, "content-length": file.bytes.byteLength })
      res.end(file.bytes)
      return
    }
    req.resume()
    res.setHeader("allow", "GET, PUT")
    return reply(res, 405, "MethodNotAllowed")
  }

  const server = yield* Effect.acquireRelease(
    Effect.callback<Server, PortError>((resume) => {
      const server = createServer((req, res) => {
        handle(req, res).catch((error: unknown) => {
          if (!res.headersSent) reply(res, 500, error instanceof Error ? error.message : "InternalError")
          else res.destroy()
        })
      })
      server.once("error", (cause) => resume(Effect.fail(new PortError({ port: LOCAL, operation: "start", retryable: false, cause }))))
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  )
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const presign = Effect.fnUntraced(function*(method: Method, key: string, expiresIn: Duration.Input, contentType: string) {
    const expires = (yield* Clock.currentTimeMillis) + Duration.toMillis(expiresIn)
    const query = new URLSearchParams({
      "X-Expires": String(expires),
      ...(contentType === "" ? {} : { "X-Content-Type": contentType }),
      "X-Signature": sign(method, key, expires, contentType).toString("base64url")
    })
    return `${origin}/files/${encodeURIComponent(key)}?${query}`
  })

  const call = <A>(operation: string, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: (cause) => new PortError({ port: LOCAL, operation, retryable: false, cause }) })

  return FileStore.of({
    put: Effect.fn("FileStore.put")(function*(key: string, bytes: Uint8Array, contentType: string) {
      yield* call("put", () => backend.write(key, { bytes, contentType }))
    }),
    get: Effect.fn("FileStore.get")(function*(key: string) {
      const file = yield* call("get", () => backend.read(key))
      if (file === undefined) return yield* new FileNotFound({ key })
      return file
    }),
    stat: Effect.fn("FileStore.stat")(function*(key: string) {
      const found = yield* call("stat", () => backend.stat(key))
      if (found === undefined) return yield* new FileNotFound({ key })
      return found
    }),
    presignedUpload: Effect.fn("FileStore.presignedUpload")(function*(key: string, options: PresignedUploadOptions) {
      return yield* presign("PUT", key, options.expiresIn, options.contentType)
    }),
    presignedDownload: Effect.fn("FileStore.presignedDownload")(function*(key: string, expiresIn: Duration.Input) {
      return yield* presign("GET", key, expiresIn, "")
    }),
    remove: Effect.fn("FileStore.remove")(function*(key: string) {
      yield* call("remove", () => backend.delete(key))
    })
  })
})

const reply = (res: ServerResponse, status: number, body: string) => {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8" })
  res.end(body)
}
