import * as Settings from "@im/ports/Settings"
import { FileNotFound, FileTooLarge } from "@im/domain/Errors"
import { FileId, FileMaxBytes, type FileRecord, fileStoreKey } from "@im/domain/File"
import type { UserId } from "@im/domain/Ids"
import { FileRecords } from "@im/ports/FileRecords"
import { FileStore } from "@im/ports/FileStore"
import { GroupStore } from "@im/ports/GroupStore"
import { Clock, Config, Duration, Effect, Option } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { randomBytes } from "node:crypto"
import { CurrentUser, ImApi } from "./Api.ts"
import { storeUnavailable } from "./StoreUnavailable.ts"

/**
 * `FILE_MAX_BYTES` (default 50 MiB), `FILE_UPLOAD_URL_TTL` and `FILE_DOWNLOAD_URL_TTL` (how
 * long the presigned URLs work; default 5 minutes each).
 */
export const FilesConfig = Config.all({
  maxBytes: FileMaxBytes,
  uploadTtl: Settings.positiveDuration("FILE_UPLOAD_URL_TTL", Duration.minutes(5)),
  downloadTtl: Settings.positiveDuration("FILE_DOWNLOAD_URL_TTL", Duration.minutes(5))
})

/** Files: the caller announces its own uploads, and downloads only what it owns or was sent. */
export const FilesHandlers = HttpApiBuilder.group(
  ImApi,
  "files",
  Effect.fn(function*(handlers) {
    const records = yield* FileRecords
    const store = yield* FileStore
    const groups = yield* GroupStore
    const config = yield* FilesConfig

    /** The owner, the receiver of a 1:1 message that carried it, or a current member of a group it went to. */
    const mayRead = Effect.fn(function*(file: FileRecord, user: UserId) {
      if (file.owner_id === user) return true
      const shares = yield* records.shares(file.id)
      if (shares.some((share) => share.user_id === user)) return true
      for (const share of shares) {
        if (share.group_id !== undefined && Option.isSome(yield* groups.role(share.group_id, user))) return true
      }
      return false
    })

    return handlers
      .handle("announce", ({ payload }) =>
        Effect.gen(function*() {
          const owner = yield* CurrentUser
          if (payload.size > config.maxBytes) {
            return yield* new FileTooLarge({
              message: `a file may have at most ${config.maxBytes} bytes; this one has ${payload.size}`,
              max_bytes: config.maxBytes
            })
          }
          const record: FileRecord = {
            id: FileId.make(`f_${randomBytes(18).toString("base64url")}`),
            owner_id: owner,
            name: payload.name,
            content_type: payload.content_type,
            size: payload.size,
            created_at: yield* Clock.currentTimeMillis
          }
          const upload_url = yield* store.presignedUpload(fileStoreKey(record.id), {
            contentType: record.content_type,
            expiresIn: config.uploadTtl
          })
          yield* records.create(record)
          yield* Effect.logInfo("file announced", { file: record.id, owner, size: record.size })
          return {
            file_id: record.id,
            upload_url,
            method: "PUT" as const,
            headers: { "content-type": record.content_type },
            expires_at: record.created_at + Duration.toMillis(config.uploadTtl)
          }
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("download", ({ params }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentUser
          const found = yield* records.get(params.file_id)
          if (Option.isNone(found) || !(yield* mayRead(found.value, caller))) {
            return yield* new FileNotFound({ message: `no file ${params.file_id} for you` })
          }
          const file = found.value
          const now = yield* Clock.currentTimeMillis
          const download_url = yield* store.presignedDownload(fileStoreKey(file.id), config.downloadTtl)
          return {
            file_id: file.id,
            name: file.name,
            content_type: file.content_type,
            size: file.size,
            download_url,
            expires_at: now + Duration.toMillis(config.downloadTtl)
          }
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
  })
)
