import { assert, describe, it } from "@effect/vitest"
import { FileId, type FileRecord, fileStoreKey } from "@im/domain/File"
import { GroupId, UserId } from "@im/domain/Ids"
import * as Metrics from "@im/observability/Metrics"
import { FileRecords } from "@im/ports/FileRecords"
import { FileStore } from "@im/ports/FileStore"
import { PortError } from "@im/ports/PortError"
import { ConfigProvider, Effect, Layer, Metric } from "effect"
import { type FileSend, FileMessages } from "../src/FileMessages.ts"

const alice = UserId.make("u_alice")
const bob = UserId.make("u_bob")
const team = GroupId.make("g_team")

const photo: FileRecord = {
  id: FileId.make("f_photo"),
  owner_id: alice,
  name: "beach.jpg",
  content_type: "image/jpeg",
  size: 5,
  created_at: 1
}

const contentOf = (file: FileRecord, extra: object = {}) =>
  JSON.stringify({ file_id: file.id, name: file.name, size: file.size, mime: file.content_type, ...extra })

const send = (overrides: Partial<FileSend> = {}): FileSend => ({
  sender_id: alice,
  receiver_id: bob,
  content_type: "image",
  content: contentOf(photo),
  ...overrides
})

/** FileMessages on in-memory records and an in-memory store, with FILE_MAX_BYTES set to 10. */
const Fixture = FileMessages.layer.pipe(
  Layer.provideMerge([FileRecords.layerMemory, FileStore.layerLocal()]),
  Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ FILE_MAX_BYTES: "10" })))
)

const unavailableCount = Effect.map(Metric.value(Metrics.errors({ service: "chat", kind: "dependency_unavailable" })), (state) => state.count)

const bytes = (size: number) => new Uint8Array(size).fill(7)

/** Records the file and stores `size` bytes of `contentType` under its key (what an upload does). */
const announceAndUpload = (file: FileRecord, upload: { readonly size?: number; readonly contentType?: string } = {}) =>
  Effect.gen(function*() {
    yield* (yield* FileRecords).create(file)
    yield* (yield* FileStore).put(fileStoreKey(file.id), bytes(upload.size ?? file.size), upload.contentType ?? file.content_type)
  })

const codeOf = (request: FileSend) =>
  Effect.flatMap(Effect.service(FileMessages), (files) => files.admit(request)).pipe(
    Effect.flip,
    Effect.map((error) => error.code)
  )

const sharesOf = (id: FileId) => Effect.flatMap(Effect.service(FileRecords), (records) => records.shares(id))

describe("FileMessages.admit", () => {
  it.effect("a text message passes whatever its content; nothing is recorded", () =>
    Effect.gen(function*() {
      const files = yield* FileMessages
      yield* files.admit(send({ content_type: "text", content: contentOf(photo) }))
      yield* files.admit(send({ content_type: "text", content: "{not json" }))
      assert.deepStrictEqual(yield* sharesOf(photo.id), [])
    }).pipe(Effect.provide(Fixture)))

  it.effect("the owner's uploaded file passes and is shared into the conversation: the receiver, or the group", () =>
    Effect.gen(function*() {
      const files = yield* FileMessages
      yield* announceAndUpload(photo)
      yield* files.admit(send())
      yield* files.admit(send({ content: contentOf(photo, { width: 640, height: 480 }) }))
      yield* files.admit(send({ receiver_id: undefined, group_id: team, content_type: "file" }))
      const shares = yield* sharesOf(photo.id)
      assert.sameDeepMembers([...shares], [{ user_id: bob }, { group_id: team }])

      const clip: FileRecord = { ...photo, id: FileId.make("f_clip"), name: "hi.ogg", content_type: "audio/ogg", size: 3 }
      yield* announceAndUpload(clip)
      yield* files.admit(send({ content_type: "voice", content: contentOf(clip, { duration_ms: 1500 }) }))
      assert.deepStrictEqual(yield* sharesOf(clip.id), [{ user_id: bob }])
    }).pipe(Effect.provide(Fixture)))

  it.effect("another user's file, an unknown id and a file never uploaded are invalid_file, and nothing is shared", () =>
    Effect.gen(function*() {
      yield* announceAndUpload(photo)
      const announcedOnly: FileRecord = { ...photo, id: FileId.make("f_announced") }
      yield* (yield* FileRecords).create(announcedOnly)
      assert.deepStrictEqual(
        [
          yield* codeOf(send({ sender_id: bob, receiver_id: alice })),
          yield* codeOf(send({ content: contentOf({ ...photo, id: FileId.make("f_nobody") }) })),
          yield* codeOf(send({ content: contentOf(announcedOnly) }))
        ],
        ["invalid_file", "invalid_file", "invalid_file"]
      )
      assert.deepStrictEqual(yield* sharesOf(photo.id), [])
      assert.deepStrictEqual(yield* sharesOf(announcedOnly.id), [])
    }).pipe(Effect.provide(Fixture)))

  it.effect("an upload of another size or type than announced is invalid_file", () =>
    Effect.gen(function*() {
      const bigger: FileRecord = { ...photo, id: FileId.make("f_bigger") }
      const retyped: FileRecord = { ...photo, id: FileId.make("f_retyped") }
      yield* announceAndUpload(bigger, { size: 9 })
      yield* announceAndUpload(retyped, { contentType: "text/html" })
      assert.strictEqual(yield* codeOf(send({ content: contentOf(bigger) })), "invalid_file")
      assert.strictEqual(yield* codeOf(send({ content: contentOf(retyped) })), "invalid_file")
      assert.deepStrictEqual(yield* sharesOf(bigger.id), [])
    }).pipe(Effect.provide(Fixture)))

  it.effect("content that misstates the file, is no file reference, or does not fit the kind of message is invalid_file", () =>
    Effect.gen(function*() {
      yield* announceAndUpload(photo)
      const huge: FileRecord = { ...photo, id: FileId.make("f_huge"), size: 11 }
      yield* announceAndUpload(huge)
      const refused = [
        send({ content: contentOf({ ...photo, name: "other.jpg" }) }),
        send({ content: contentOf({ ...photo, size: 4 }) }),
        send({ content: contentOf({ ...photo, content_type: "image/png" }) }),
        send({ content: contentOf(photo, { script: "<b>" }) }),
        send({ content: contentOf(photo, { width: -1 }) }),
        send({ content: "beach.jpg" }),
        send({ content: JSON.stringify({ file_id: photo.id }) }),
        send({ content_type: "video" }),
        send({ content_type: "voice" }),
        // Over FILE_MAX_BYTES (10 here), though announced and uploaded as it is.
        send({ content: contentOf(huge) })
      ]
      for (const request of refused) assert.strictEqual(yield* codeOf(request), "invalid_file", request.content)
      assert.deepStrictEqual(yield* sharesOf(photo.id), [])
    }).pipe(Effect.provide(Fixture)))

  it.effect("records that cannot be read are `unavailable` (retry), not a refusal, and counted as dependency_unavailable", () =>
    Effect.gen(function*() {
      const files = yield* FileMessages
      const before = yield* unavailableCount
      const error = yield* Effect.flip(files.admit(send()))
      assert.strictEqual(error.code, "unavailable")
      assert.strictEqual(yield* unavailableCount, before + 1)
    }).pipe(Effect.provide(FileMessages.layer.pipe(
      Layer.provide([
        Layer.succeed(FileRecords, FileRecords.of({
          create: () => Effect.void,
          get: () => Effect.fail(new PortError({ port: "FileRecords", operation: "get", retryable: true })),
          ownedBy: () => Effect.succeed([]),
          share: () => Effect.void,
          shares: () => Effect.succeed([])
        })),
        FileStore.layerLocal()
      ])
    ))))

  it.effect("a store that cannot say whether the file was uploaded (S3 down) is `unavailable`, counted, nothing shared", () =>
    Effect.gen(function*() {
      const files = yield* FileMessages
      const records = yield* FileRecords
      yield* records.create(photo)
      const before = yield* unavailableCount
      const error = yield* Effect.flip(files.admit(send()))
      assert.deepStrictEqual([error.code, error.message], ["unavailable", "the server could not check the file now; retry"])
      assert.strictEqual(yield* unavailableCount, before + 1)
      assert.deepStrictEqual(yield* records.shares(photo.id), [])
    }).pipe(Effect.provide(FileMessages.layer.pipe(
      Layer.provideMerge([
        FileRecords.layerMemory,
        Layer.succeed(FileStore, FileStore.of({
          put: () => Effect.die("unused"),
          get: () => Effect.die("unused"),
          stat: () => Effect.fail(new PortError({ port: "FileStore", operation: "stat", retryable: true })),
          presignedUpload: () => Effect.die("unused"),
          presignedDownload: () => Effect.die("unused"),
          remove: () => Effect.die("unused")
        }))
      ]),
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ FILE_MAX_BYTES: "10" })))
    ))))
})
