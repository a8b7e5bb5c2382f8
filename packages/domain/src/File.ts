import { Config, Schema } from "effect"
import { UserId } from "./Ids.ts"
import type { ContentType } from "./Message.ts"

/** A stored file's id, chosen by the server when the upload is announced (`POST /files`). */
export const FileId = Schema.String.pipe(
  Schema.check(Schema.isNonEmpty(), Schema.isMaxLength(64)),
  Schema.brand("FileId")
)
export type FileId = typeof FileId.Type

/**
 * The content types a file may be uploaded with, compared exactly (lowercase, no parameters).
 * Images, audio (voice messages), video, PDF, ZIP, plain text and opaque bytes. Types a browser
 * would run when opened from the store's origin (HTML, SVG, JavaScript) are left out on purpose.
 */
export const ALLOWED_FILE_TYPES = [
  "image/jpeg",
  "image/png",
  "image/gif",
  "image/webp",
  "image/heic",
  "image/heif",
  "image/avif",
  "audio/mpeg",
  "audio/mp4",
  "audio/aac",
  "audio/ogg",
  "audio/opus",
  "audio/wav",
  "audio/webm",
  "audio/amr",
  "video/mp4",
  "video/webm",
  "video/quicktime",
  "video/3gpp",
  "application/pdf",
  "application/zip",
  "text/plain",
  "application/octet-stream"
] as const

export const FileContentType = Schema.Literals(ALLOWED_FILE_TYPES)
export type FileContentType = typeof FileContentType.Type

/** Longest file name, in UTF-16 code units. */
export const MAX_FILE_NAME_LENGTH = 255

/** A file's display name: 1–255 characters, no control characters. Never used as a path. */
export const FileName = Schema.String.pipe(
  Schema.check(
    Schema.isMinLength(1),
    Schema.isMaxLength(MAX_FILE_NAME_LENGTH),
    Schema.isPattern(/^[^\u0000-\u001f\u007f]*$/, { message: "a file name must not contain control characters" })
  )
)

/** A declared size in bytes: at least 1 (the upper bound is `FILE_MAX_BYTES`, checked by the server). */
export const FileSize = Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1)))

/** 50 MiB: the default of `FILE_MAX_BYTES`. */
export const DEFAULT_FILE_MAX_BYTES = 50 * 1024 * 1024

/** `FILE_MAX_BYTES`: the largest file that may be announced, and sent in a message. */
export const FileMaxBytes = Config.schema(Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))), "FILE_MAX_BYTES").pipe(
  Config.withDefault(DEFAULT_FILE_MAX_BYTES)
)

/** What the server records about a file when its upload is announced. */
export const FileRecord = Schema.Struct({
  id: FileId,
  /** Who announced it: the only user who may send it in a message. */
  owner_id: UserId,
  name: FileName,
  /** The declared type; the uploaded object must carry the same. */
  content_type: FileContentType,
  /** The declared size; the uploaded object must have exactly this many bytes. */
  size: FileSize,
  created_at: Schema.Int
})
export type FileRecord = typeof FileRecord.Type

/** Where the object of a file lives in the FileStore. */
export const fileStoreKey = (id: FileId): string => `files/${id}`

const Dimension = Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1), Schema.isLessThanOrEqualTo(1_000_000)))

/**
 * The `content` of an image, file, voice or video message, as JSON: the file it shows, with the
 * name, size and type it was announced with; optionally the picture's size and the clip's length.
 */
export const FileMessageContent = Schema.Struct({
  file_id: FileId,
  name: FileName,
  size: FileSize,
  mime: FileContentType,
  width: Schema.optionalKey(Dimension),
  height: Schema.optionalKey(Dimension),
  duration_ms: Schema.optionalKey(Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0))))
})
export type FileMessageContent = typeof FileMessageContent.Type

/** The content types of a message that carries a file; `text` carries none. */
export type FileContentKind = Exclude<ContentType, "text">

/** Which files each kind of message may carry: images, audio, video; `file` any allowed type. */
export const fitsMessageKind = (kind: FileContentKind, mime: FileContentType): boolean => {
  switch (kind) {
    case "image":
      return mime.startsWith("image/")
    case "voice":
      return mime.startsWith("audio/")
    case "video":
      return mime.startsWith("video/")
    case "file":
      return true
  }
}
