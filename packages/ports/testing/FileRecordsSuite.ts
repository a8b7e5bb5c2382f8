import { FileId, type FileRecord } from "@im/domain/File"
import type { GroupId, UserId } from "@im/domain/Ids"
import { assert } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import { FileRecords, type FileShare } from "../src/FileRecords.ts"
import { freshGroupId, freshUserId, sortedBy, unique } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

const makeRecord = (owner: UserId, overrides: Partial<FileRecord> = {}): FileRecord => ({
  id: FileId.make(unique("f")),
  owner_id: owner,
  name: "holiday photo (1) ü 👋.jpg",
  content_type: "image/jpeg",
  size: 3 * 1024 * 1024 * 1024 + 17,
  created_at: 1_764_230_400_000,
  ...overrides
})

const byTarget = (shares: ReadonlyArray<FileShare>) => sortedBy(shares, (share) => share.user_id ?? share.group_id ?? "")

/** The FileRecords contract: a file's record, kept once, and the conversations it was sent into. */
export const fileRecordsSuite = (name: string, adapter: Layer.Layer<FileRecords, unknown>, options: SuiteOptions = {}) =>
  describeAdapter(`FileRecords conformance: ${name}`, adapter, options, (it) => {
    it.effect("keeps a record as created (sizes above 4 GiB included); a second create keeps the first", () =>
      Effect.gen(function*() {
        const files = yield* FileRecords
        const record = makeRecord(freshUserId())
        yield* files.create(record)
        assert.deepStrictEqual(yield* files.get(record.id), Option.some(record))
        yield* files.create({ ...record, owner_id: freshUserId(), name: "other.pdf", content_type: "application/pdf", size: 1 })
        assert.deepStrictEqual(yield* files.get(record.id), Option.some(record))
        assert.deepStrictEqual(yield* files.get(FileId.make(unique("f-never"))), Option.none())
      }))

    it.effect("lists a user's files, oldest first, and no one else's", () =>
      Effect.gen(function*() {
        const files = yield* FileRecords
        const [owner, other] = [freshUserId(), freshUserId()]
        const later = makeRecord(owner, { created_at: 2_000 })
        const earlier = makeRecord(owner, { created_at: 1_000 })
        yield* files.create(later)
        yield* files.create(earlier)
        yield* files.create(makeRecord(other))
        assert.deepStrictEqual(yield* files.ownedBy(owner), [earlier, later])
        assert.deepStrictEqual(yield* files.ownedBy(freshUserId()), [])
      }))

    it.effect("records the users and groups a file was sent into, each once; files do not mix", () =>
      Effect.gen(function*() {
        const files = yield* FileRecords
        const owner = freshUserId()
        const [first, second] = [makeRecord(owner), makeRecord(owner)]
        yield* files.create(first)
        yield* files.create(second)
        assert.deepStrictEqual(yield* files.shares(first.id), [])

        const [bob, carol, group] = [freshUserId(), freshUserId(), freshGroupId()]
        yield* files.share(first.id, { user_id: bob })
        yield* files.share(first.id, { group_id: group })
        yield* files.share(first.id, { user_id: bob })
        yield* files.share(first.id, { group_id: group })
        yield* files.share(second.id, { user_id: carol })
        assert.deepStrictEqual(byTarget(yield* files.shares(first.id)), byTarget([{ user_id: bob }, { group_id: group }]))
        assert.deepStrictEqual(yield* files.shares(second.id), [{ user_id: carol }])
        assert.deepStrictEqual(yield* files.shares(FileId.make(unique("f-never"))), [])
      }))

    it.effect("a user id and a group id that are the same string are different shares", () =>
      Effect.gen(function*() {
        const files = yield* FileRecords
        const record = makeRecord(freshUserId())
        yield* files.create(record)
        const same = unique("same")
        yield* files.share(record.id, { user_id: same as UserId })
        yield* files.share(record.id, { group_id: same as GroupId })
        const shares = yield* files.shares(record.id)
        assert.deepStrictEqual(shares.filter((share) => share.user_id === same), [{ user_id: same as UserId }])
        assert.deepStrictEqual(shares.filter((share) => share.group_id === same), [{ group_id: same as GroupId }])
        assert.strictEqual(shares.length, 2)
      }))
  })
