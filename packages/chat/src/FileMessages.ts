import { SendRejected } from "@im/domain/Errors"
import { type FileContentKind, FileMaxBytes, FileMessageContent, fileStoreKey, fitsMessageKind } from "@im/domain/File"
import type { GroupId, UserId } from "@im/domain/Ids"
import type { ContentType } from "@im/domain/Message"
import { FileRecords } from "@im/ports/FileRecords"
import { FileStore } from "@im/ports/FileStore"
import { Context, Effect, Layer, Option, Schema } from "effect"
import * as Unavailable from "./Unavailable.ts"

/** The part of a send that decides whether it carries a file, and where to. */
export interface FileSend {
  readonly sender_id: UserId
  readonly receiver_id?: UserId | undefined
  readonly group_id?: GroupId | undefined
  readonly content_type: ContentType
  readonly content: string
}

const decodeContent = Schema.decodeUnknownEffect(Schema.fromJsonString(FileMessageContent))

const invalidFile = (message: string) => new SendRejected({ code: "invalid_file", message })

/**
 * The check of image, file, voice and video messages: their `content` must name, as JSON, a
 * file the sender announced (`POST /files`) and then really uploaded, with the name, size and
 * type it was announced with, within `FILE_MAX_BYTES`, of a type that fits the message (an
 * image for `image`, audio for `voice`, video for `video`). An accepted file is recorded as
 * shared into the conversation (the receiver, or the group) so its members may download it.
 * Text messages pass untouched.
 */
export class FileMessages extends Context.Service<FileMessages, {
  /**
   * Fails with `invalid_file` (nothing recorded) when the message names no acceptable file;
   * otherwise records the share. `unavailable` when a store cannot answer now.
   */
  readonly admit: (send: FileSend) => Effect.Effect<void, SendRejected>
}>()("@im/chat/FileMessages") {
  static readonly layer = Layer.effect(
    FileMessages,
    Effect.gen(function*() {
      const records = yield* FileRecords
      const store = yield* FileStore
      const maxBytes = yield* FileMaxBytes

      const admitFile = Effect.fn("FileMessages.admit")(function*(send: FileSend & { readonly content_type: FileContentKind }) {
        const kind: FileContentKind = send.content_type
        const content = yield* decodeContent(send.content, { onExcessProperty: "error" }).pipe(
          Effect.mapError((error) =>
            invalidFile(`a ${kind} message's content is {"file_id", "name", "size", "mime"} as JSON: ${error.message}`)
          )
        )
        const found = yield* records.get(content.file_id).pipe(Effect.catchTag("PortError", unavailable))
        // Someone else's file and no file at all get the same answer: ids are not probed.
        if (Option.isNone(found) || found.value.owner_id !== send.sender_id) {
          return yield* invalidFile(`no file ${content.file_id} of yours`)
        }
        const file = found.value
        if (content.name !== file.name || content.size !== file.size || content.mime !== file.content_type) {
          return yield* invalidFile(
            `file ${file.id} was announced as ${JSON.stringify({ name: file.name, size: file.size, mime: file.content_type })}`
          )
        }
        if (!fitsMessageKind(kind, file.content_type)) {
          return yield* invalidFile(`a ${kind} message cannot carry a ${file.content_type} file`)
        }
        if (file.size > maxBytes) return yield* invalidFile(`file ${file.id} is larger than ${maxBytes} bytes`)
        const stored = yield* store.stat(fileStoreKey(file.id)).pipe(
          Effect.map(Option.some),
          Effect.catchTag("FileNotFound", () => Effect.succeedNone),
          Effect.catchTag("PortError", unavailable)
        )
        if (Option.isNone(stored)) return yield* invalidFile(`file ${file.id} was not uploaded`)
        if (stored.value.size !== file.size || stored.value.contentType !== file.content_type) {
          return yield* invalidFile(
            `the upload of file ${file.id} (${stored.value.size} bytes, ${stored.value.contentType}) ` +
              `is not what was announced (${file.size} bytes, ${file.content_type})`
          )
        }
        yield* records.share(
          file.id,
          send.group_id !== undefined ? { group_id: send.group_id } : { user_id: send.receiver_id! }
        ).pipe(Effect.catchTag("PortError", unavailable))
      })

      // A text message, nearly every message, is admitted without a span (see TraceContext.span).
      return FileMessages.of({
        admit: (send) => send.content_type === "text" ? Effect.void : admitFile({ ...send, content_type: send.content_type })
      })
    })
  )

  /** The same check on in-memory records and an in-memory local store: for tests of what sends files. */
  static readonly layerMemory = FileMessages.layer.pipe(
    Layer.provide([FileRecords.layerMemory, FileStore.layerLocal()])
  )
}

const unavailable = Unavailable.unavailable("chat could not reach the file stores", "the server could not check the file now; retry")