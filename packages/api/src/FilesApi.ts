import { FileNotFound, FileTooLarge, ServiceUnavailable } from "@im/domain/Errors"
import { FileContentType, FileId, FileName, FileSize } from "@im/domain/File"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"

export const AnnounceFile = Schema.Struct({
  name: FileName.annotate({ description: "The file's display name: 1-255 characters, no control characters." }),
  content_type: FileContentType.annotate({ description: "One of the allowed types; the upload must be sent with it." }),
  size: FileSize.annotate({ description: "The exact size in bytes, at least 1 and at most FILE_MAX_BYTES (default 50 MiB)." })
})

export const UploadTicket = Schema.Struct({
  file_id: FileId,
  /** Where to send the bytes, once, before `expires_at`. */
  upload_url: Schema.String,
  method: Schema.Literal("PUT"),
  /** Headers the upload must carry (its `content-type`). */
  headers: Schema.Record(Schema.String, Schema.String),
  expires_at: Schema.Int
})

export const FileDownload = Schema.Struct({
  file_id: FileId,
  name: Schema.String,
  content_type: Schema.String,
  size: Schema.Int,
  /** A plain GET of this URL gives the bytes, until `expires_at`. */
  download_url: Schema.String,
  expires_at: Schema.Int
})

/**
 * Files: announce an upload, then fetch a short-lived download URL. The bytes never pass
 * through the API: clients PUT and GET them at presigned URLs of the file store. Added to the
 * API (behind Authorization) in Api.ts.
 */
export class FilesApi extends HttpApiGroup.make("files")
  .add(
    HttpApiEndpoint.post("announce", "/", {
      payload: AnnounceFile,
      success: UploadTicket.pipe(HttpApiSchema.status(201)),
      error: [FileTooLarge, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Announce a file and get a presigned URL to upload it to: one HTTP PUT of the bytes with the given headers, " +
        "before expires_at (a few minutes). A size above FILE_MAX_BYTES is refused (400 FileTooLarge), a type outside " +
        "the allowed list or a bad name fails validation (400); either way nothing is recorded. To send the file, " +
        "send an image, file, voice or video message whose content is {file_id, name, size, mime} as JSON."
    ),
    HttpApiEndpoint.get("download", "/:file_id", {
      params: { file_id: FileId },
      success: FileDownload,
      error: [FileNotFound, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "A file and a short-lived presigned URL to download it (a plain GET). Only for its owner, the receiver of a " +
        "one-to-one message that carried it, and the current members of a group it was sent to; anyone else gets " +
        "404 FileNotFound, as for a file that does not exist."
    )
  )
  .prefix("/files")
  .annotateMerge(OpenApi.annotations({ title: "Files" }))
{}
