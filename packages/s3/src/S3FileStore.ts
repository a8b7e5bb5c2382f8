import * as Settings from "@im/ports/Settings"
import { FileNotFound, FileStore, type PresignedUploadOptions } from "@im/ports/FileStore"
import { PortError } from "@im/ports/PortError"
import { Config, Duration, Effect, Layer, Redacted, Schedule } from "effect"
import * as Minio from "minio"
import type { IncomingMessage } from "node:http"
import { createHash } from "node:crypto"
import type { Readable } from "node:stream"

const PORT = "FileStore"
const MiB = 1024 * 1024
/** S3's smallest part (except the last): the client uploads anything larger in parts. */
const MIN_PART_SIZE = 5 * MiB
/** A presigned URL lives at least a second and at most seven days (SigV4). */
const MAX_EXPIRY_SECONDS = 7 * 24 * 60 * 60
const DEFAULT_CONTENT_TYPE = "application/octet-stream"

const NOT_FOUND_CODES = new Set(["NoSuchKey", "NotFound"])
/** Server answers that a later attempt can get past. */
const TRANSIENT_CODES = new Set(["InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed"])
/** Socket errors that a later attempt can get past. */
const TRANSIENT_SOCKET_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "EAI_AGAIN", "ENOTFOUND"])

const codeOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string" ? error.code : undefined

const isNotFound = (error: unknown) => NOT_FOUND_CODES.has(codeOf(error) ?? "")

const isTransient = (error: unknown) => {
  const code = codeOf(error) ?? ""
  return TRANSIENT_CODES.has(code) || TRANSIENT_SOCKET_CODES.has(code)
}

const transientRetry = Schedule.exponential("100 millis", 2).pipe(Schedule.jittered)

/** A client call as a port operation: errors become PortError, transient ones are retried a few times. */
const portCall = <A>(operation: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new PortError({ port: PORT, operation, retryable: isTransient(cause), cause })
  }).pipe(Effect.retry({ schedule: transientRetry, times: 3, while: (error) => error.retryable }))

const expirySeconds = (expiresIn: Duration.Input) =>
  Math.min(MAX_EXPIRY_SECONDS, Math.max(1, Math.ceil(Duration.toMillis(expiresIn) / 1000)))

const readAll = async (stream: Readable): Promise<Uint8Array> => {
  const chunks: Array<Buffer> = []
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array))
  const bytes = Buffer.concat(chunks)
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

export interface S3FileStoreOptions {
  /** `http(s)://host[:port]` of the S3 API; also the origin of the presigned URLs. */
  readonly endpoint: string
  readonly accessKey: string
  readonly secretKey: Redacted.Redacted<string>
  readonly bucket: string
  readonly region: string
  /** Puts larger than this are multipart uploads with parts of this size (at least 5 MiB). */
  readonly partSize: number
  /** How long start-up waits for the server before failing. */
  readonly connectTimeout: Duration.Duration
}

/**
 * Files in one S3 bucket (MinIO, or any S3-compatible server) through the `minio` client, path
 * style. The bucket is made at start when missing. A put above `partSize` is a multipart upload
 * (through the client's part calls); presigned URLs are SigV4 query-signed, so the server
 * checks them.
 */
export const make = Effect.fnUntraced(function*(options: S3FileStoreOptions) {
  const endpoint = yield* Effect.try({
    try: () => new URL(options.endpoint),
    catch: (cause) => new PortError({ port: PORT, operation: "start", retryable: false, cause })
  })
  const useSSL = endpoint.protocol === "https:"
  const client = new Minio.Client({
    endPoint: endpoint.hostname,
    ...(endpoint.port === "" ? {} : { port: Number(endpoint.port) }),
    useSSL,
    accessKey: options.accessKey,
    secretKey: Redacted.value(options.secretKey),
    region: options.region,
    pathStyle: true,
    // Retries are ours (bounded, mapped to PortError); the client's own ones log to the console.
    retryOptions: { disableRetry: true }
  })
  const { bucket } = options

  yield* Effect.gen(function*() {
    const exists = yield* portCall("start", () => client.bucketExists(bucket))
    if (!exists) {
      yield* portCall("start", () => client.makeBucket(bucket, options.region)).pipe(
        // Another instance made it first.
        Effect.catchIf((error) => codeOf(error.cause) === "BucketAlreadyOwnedByYou", () => Effect.void)
      )
    }
  }).pipe(
    Effect.timeoutOrElse({
      duration: options.connectTimeout,
      orElse: () => Effect.fail(new PortError({ port: PORT, operation: "start", retryable: true, cause: new Error("timed out") }))
    }),
    Effect.mapError((error) =>
      new PortError({
        port: PORT,
        operation: "start",
        retryable: error.retryable,
        cause: new Error(
          `cannot use bucket ${JSON.stringify(bucket)} at ${endpoint.origin}: ${
            error.cause instanceof Error ? error.cause.message : String(error.cause)
          }`,
          { cause: error.cause }
        )
      })
    )
  )

  const partSize = Math.max(MIN_PART_SIZE, options.partSize)

  /**
   * A multipart upload with parts of exactly `partSize` (the last one smaller), two at a time,
   * each retried on its own; aborted on failure so that no parts are left billed. minio-js's
   * own putObject sends a Buffer in one request whatever its size, and cuts a stream into parts
   * only as the stream's chunks happen to arrive (a chunk spanning parts makes one big part).
   */
  const putInParts = (key: string, body: Buffer, contentType: string) =>
    Effect.gen(function*() {
      const uploadId = yield* portCall("put", () =>
        client.initiateNewMultipartUpload(bucket, key, { "Content-Type": contentType }))
      const count = Math.ceil(body.byteLength / partSize)
      const parts = yield* Effect.forEach(
        Array.from({ length: count }, (_, i) => i + 1),
        (partNumber) => {
          const chunk = body.subarray((partNumber - 1) * partSize, partNumber * partSize)
          return portCall("put", () =>
            client.uploadPart({
              bucketName: bucket,
              objectName: key,
              uploadID: uploadId,
              partNumber,
              headers: {
                "Content-Length": chunk.byteLength,
                "Content-MD5": createHash("md5").update(chunk).digest("base64")
              }
            }, chunk))
        },
        { concurrency: 2 }
      ).pipe(
        Effect.onError(() =>
          portCall("put", () => client.abortMultipartUpload(bucket, key, uploadId)).pipe(Effect.ignore)
        )
      )
      yield* portCall("put", () =>
        client.completeMultipartUpload(bucket, key, uploadId, parts.map(({ etag, part }) => ({ part, etag }))))
    })

  const put = Effect.fn("S3FileStore.put")(function*(key: string, bytes: Uint8Array, contentType: string) {
    const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (body.byteLength > partSize) return yield* putInParts(key, body, contentType)
    yield* portCall("put", () => client.putObject(bucket, key, body, body.byteLength, { "Content-Type": contentType }))
  })

  const get = Effect.fn("S3FileStore.get")(function*(key: string) {
    const stream = yield* portCall("get", () => client.getObject(bucket, key)).pipe(
      Effect.catchIf((error) => isNotFound(error.cause), () => Effect.fail(new FileNotFound({ key })))
    )
    const headers = (stream as Partial<IncomingMessage>).headers
    const bytes = yield* portCall("get", () => readAll(stream))
    const contentType = typeof headers?.["content-type"] === "string"
      ? headers["content-type"]
      : (yield* portCall("get", () => client.statObject(bucket, key))).metaData["content-type"] ?? DEFAULT_CONTENT_TYPE
    return { bytes, contentType: String(contentType) }
  })

  const stat = Effect.fn("S3FileStore.stat")(function*(key: string) {
    const found = yield* portCall("stat", () => client.statObject(bucket, key)).pipe(
      Effect.catchIf((error) => isNotFound(error.cause), () => Effect.fail(new FileNotFound({ key })))
    )
    const contentType = found.metaData["content-type"]
    return { size: found.size, contentType: typeof contentType === "string" ? contentType : DEFAULT_CONTENT_TYPE }
  })

  const presignedUpload = Effect.fn("S3FileStore.presignedUpload")(
    function*(key: string, { expiresIn }: PresignedUploadOptions) {
      // Content-Type is not signed: S3 stores what the uploader sends with its PUT.
      return yield* portCall("presignedUpload", () => client.presignedPutObject(bucket, key, expirySeconds(expiresIn)))
    }
  )

  const presignedDownload = Effect.fn("S3FileStore.presignedDownload")(function*(key: string, expiresIn: Duration.Input) {
    return yield* portCall("presignedDownload", () => client.presignedGetObject(bucket, key, expirySeconds(expiresIn)))
  })

  const remove = Effect.fn("S3FileStore.remove")(function*(key: string) {
    yield* portCall("remove", () => client.removeObject(bucket, key))
  })

  return FileStore.of({ put, get, stat, presignedUpload, presignedDownload, remove })
})

/**
 * `S3_ENDPOINT` (default `http://127.0.0.1:9000`), `S3_ACCESS_KEY` (default `im-minio`),
 * `S3_SECRET_KEY` (secret, default `im-minio-secret`), `S3_BUCKET` (default `im-files`),
 * `S3_REGION` (default `us-east-1`), `S3_PART_SIZE` (bytes, default 5 MiB) and
 * `S3_CONNECT_TIMEOUT` (default 10 seconds, for the start-up check of the bucket).
 */
export const layer: Layer.Layer<FileStore, PortError | Config.ConfigError> = Layer.effect(
  FileStore,
  Effect.gen(function*() {
    const options = yield* Config.all({
      endpoint: Config.String("S3_ENDPOINT").pipe(Config.withDefault("http://127.0.0.1:9000")),
      accessKey: Config.String("S3_ACCESS_KEY").pipe(Config.withDefault("im-minio")),
      secretKey: Config.Redacted("S3_SECRET_KEY").pipe(Config.withDefault(Redacted.make("im-minio-secret"))),
      bucket: Config.String("S3_BUCKET").pipe(Config.withDefault("im-files")),
      region: Config.String("S3_REGION").pipe(Config.withDefault("us-east-1")),
      partSize: Settings.int("S3_PART_SIZE", MIN_PART_SIZE, { minimum: MIN_PART_SIZE }),
      connectTimeout: Settings.positiveDuration("S3_CONNECT_TIMEOUT", Duration.seconds(10))
    })
    return yield* make(options)
  }).pipe(Effect.withSpan("S3FileStore.start"), Effect.annotateLogs({ service: "S3FileStore" }))
)
