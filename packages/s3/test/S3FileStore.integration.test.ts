import { FileStore } from "@im/ports/FileStore"
import { fileStoreSuite } from "@im/ports/testing/FileStoreSuite"
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import * as Minio from "minio"
import { randomBytes } from "node:crypto"
import * as S3FileStore from "../src/S3FileStore.ts"

// An S3 server (`npm run infra:up`, or MinIO from docker compose). Each run gets a bucket of its
// own, emptied and removed when the file is done.
const endpoint = process.env["S3_ENDPOINT"] ?? "http://127.0.0.1:9000"
const accessKey = process.env["S3_ACCESS_KEY"] ?? "im-minio"
const secretKey = process.env["S3_SECRET_KEY"] ?? "im-minio-secret"
const region = process.env["S3_REGION"] ?? "us-east-1"
const bucket = `im-test-${randomBytes(6).toString("hex")}`

const admin = () => {
  const url = new URL(endpoint)
  return new Minio.Client({
    endPoint: url.hostname,
    ...(url.port === "" ? {} : { port: Number(url.port) }),
    useSSL: url.protocol === "https:",
    accessKey,
    secretKey,
    region,
    pathStyle: true
  })
}

const removedAfterwards = Layer.effectDiscard(
  Effect.addFinalizer(() =>
    Effect.promise(async () => {
      const client = admin()
      if (!(await client.bucketExists(bucket))) return
      const names: Array<string> = []
      for await (const item of client.listObjects(bucket, "", true)) if (item.name) names.push(item.name)
      if (names.length > 0) await client.removeObjects(bucket, names)
      for await (const upload of client.listIncompleteUploads(bucket, "", true)) {
        await client.removeIncompleteUpload(bucket, upload.key)
      }
      await client.removeBucket(bucket)
    }).pipe(Effect.ignore)
  )
)

const store = S3FileStore.layer.pipe(
  Layer.provideMerge(removedAfterwards),
  Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
    S3_ENDPOINT: endpoint,
    S3_ACCESS_KEY: accessKey,
    S3_SECRET_KEY: secretKey,
    S3_REGION: region,
    S3_BUCKET: bucket
  })))
)
const shared = { memoMap: Layer.makeMemoMapUnsafe(), timeout: "60 seconds" } as const

fileStoreSuite(`s3 (${bucket})`, store, shared)

layer(store, { ...shared, excludeTestServices: true })("S3FileStore on an S3 server", (it) => {
  it.effect("the bucket was made at start, and objects land in it", () =>
    Effect.gen(function*() {
      const files = yield* FileStore
      yield* files.put("probe/hello.txt", new TextEncoder().encode("hello"), "text/plain")
      const stat = yield* Effect.promise(() => admin().statObject(bucket, "probe/hello.txt"))
      assert.strictEqual(stat.size, 5)
      assert.strictEqual(stat.metaData["content-type"], "text/plain")
    }))

  it.effect("a put larger than a part is a multipart upload (its ETag counts the parts)", () =>
    Effect.gen(function*() {
      const files = yield* FileStore
      yield* files.put("probe/large.bin", new Uint8Array(randomBytes(11 * 1024 * 1024)), "application/octet-stream")
      const stat = yield* Effect.promise(() => admin().statObject(bucket, "probe/large.bin"))
      assert.strictEqual(stat.size, 11 * 1024 * 1024)
      // S3 gives a multipart object the ETag `<md5 of the part md5s>-<number of parts>`; 5 MiB parts → 3.
      assert.match(stat.etag, /-3$/)
    }), 60_000)
})
