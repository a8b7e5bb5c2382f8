import { Code, ConnectError } from "@connectrpc/connect"
import { codeFromHttpStatus, findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc"
import { constants, type IncomingHttpHeaders } from "node:http2"

/**
 * gRPC's wire format over HTTP/2, unary calls only, as the spec gives it
 * (github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): what `Grpc`'s server and client
 * share. A message travels as one length-prefixed frame (a flag byte, 0 for uncompressed, then
 * its length as 4 bytes big-endian); the status comes in `grpc-status`, `grpc-message` and
 * `grpc-status-details-bin` (a google.rpc.Status carrying the error's details), encoded and
 * read by ConnectRPC's helpers so that ConnectError's details survive the trip.
 */

/** The largest message either side takes; a larger one is RESOURCE_EXHAUSTED. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024

export const CONTENT_TYPE = "application/grpc+proto"

/** `application/grpc`, with `+proto` or without, and any parameters. */
export const isGrpcContentType = (value: string | undefined): boolean =>
  value !== undefined && /^application\/grpc(\+proto)?(;|$)/i.test(value)

/** One message as a frame. */
export const frame = (bytes: Uint8Array): Buffer => {
  const out = Buffer.allocUnsafe(5 + bytes.length)
  out[0] = 0
  out.writeUInt32BE(bytes.length, 1)
  out.set(bytes, 5)
  return out
}

/** A body's chunks as they arrive, refusing to hold more than one message of at most `MAX_MESSAGE_BYTES`. */
export class Body {
  private readonly chunks: Array<Buffer> = []
  private length = 0
  private tooLarge = false

  /** False once the body is larger than a frame may be (what came is dropped). */
  push(chunk: Buffer): boolean {
    if (this.tooLarge) return false
    this.length += chunk.length
    if (this.length > 5 + MAX_MESSAGE_BYTES) {
      this.tooLarge = true
      this.chunks.length = 0
      return false
    }
    this.chunks.push(chunk)
    return true
  }

  /** The one message the body holds, or what is wrong with it. */
  message(): { readonly bytes: Uint8Array } | { readonly problem: string; readonly code?: Code } {
    if (this.tooLarge) return { problem: `a message is larger than ${MAX_MESSAGE_BYTES} bytes`, code: Code.ResourceExhausted }
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length)
    if (body.length === 0) return { problem: "the message is missing" }
    if (body.length < 5) return { problem: "a frame is cut short" }
    if ((body[0]! & 1) === 1) return { problem: "the message is compressed, and no encoding was agreed" }
    const size = body.readUInt32BE(1)
    if (size > MAX_MESSAGE_BYTES) return { problem: `a message is larger than ${MAX_MESSAGE_BYTES} bytes`, code: Code.ResourceExhausted }
    if (body.length < 5 + size) return { problem: "a frame is cut short" }
    if (body.length > 5 + size) return { problem: "a unary call carries exactly one message" }
    return { bytes: body.subarray(5) }
  }
}

/** `grpc-status` and the rest for `error` (OK when there is none), as header fields. */
export const statusFields = (error: ConnectError | undefined): Record<string, string> => {
  if (error === undefined) return { "grpc-status": "0" }
  const fields: Record<string, string> = {}
  setTrailerStatus(new Headers(), error).forEach((value, key) => {
    fields[key] = value
  })
  return fields
}

/**
 * The error a response's status fields (its trailers, or its headers when it has none) carry, if
 * any. Fields without `grpc-status` are an error too (the answer may have been cut short); a
 * `grpc-message` or `grpc-status-details-bin` that does not decode leaves the status as it is,
 * with the message as it came, as the spec asks.
 */
export const errorOfStatus = (fields: IncomingHttpHeaders): ConnectError | undefined => {
  const status = fields["grpc-status"]
  if (status === "0") return undefined
  if (typeof status !== "string") return new ConnectError("the answer has no grpc-status", Code.Internal)
  const headers = new Headers()
  for (const [key, value] of Object.entries(fields)) {
    if (key.startsWith(":") || value === undefined) continue
    headers.set(key, Array.isArray(value) ? value.join(", ") : String(value))
  }
  try {
    return findTrailerError(headers) ?? new ConnectError(`invalid grpc-status: ${status}`, Code.Internal)
  } catch {
    const code = /^\d+$/.test(status) && Number(status) in Code ? Number(status) as Code : Code.Internal
    const message = fields["grpc-message"]
    return new ConnectError(typeof message === "string" ? message : `grpc-status ${status}`, code)
  }
}

/** The gRPC code of a response whose HTTP status is not 200 (the spec's mapping). */
export const errorOfHttpStatus = (status: number): ConnectError =>
  new ConnectError(`HTTP status ${status}`, codeFromHttpStatus(status))

/** A stream the peer reset, as the spec maps RST_STREAM codes; undefined for NO_ERROR. */
export const errorOfResetCode = (code: number): ConnectError | undefined => {
  const message = `the stream was reset (HTTP/2 error code ${code})`
  switch (code) {
    case constants.NGHTTP2_NO_ERROR:
      return undefined
    case constants.NGHTTP2_REFUSED_STREAM:
      return new ConnectError(message, Code.Unavailable)
    case constants.NGHTTP2_CANCEL:
      return new ConnectError(message, Code.Canceled)
    case constants.NGHTTP2_ENHANCE_YOUR_CALM:
      return new ConnectError(message, Code.ResourceExhausted)
    case constants.NGHTTP2_INADEQUATE_SECURITY:
      return new ConnectError(message, Code.PermissionDenied)
    default:
      return new ConnectError(message, Code.Internal)
  }
}

/** Node's errors for a request its session refused because of what the request is, not where it went. */
const REQUEST_ERRORS = new Set([
  "ERR_HTTP2_INVALID_CONNECTION_HEADERS",
  "ERR_HTTP2_INVALID_HEADER_VALUE",
  "ERR_HTTP2_HEADER_SINGLE_VALUE",
  "ERR_HTTP2_INVALID_PSEUDOHEADER",
  "ERR_INVALID_HTTP_TOKEN",
  "ERR_INVALID_CHAR",
  "ERR_INVALID_ARG_TYPE",
  "ERR_INVALID_ARG_VALUE"
])

/**
 * A call that failed below gRPC (no connection, the connection lost, the session gone away):
 * UNAVAILABLE, which the spec gives for a server that cannot be reached, and which callers retry.
 * A request Node refused for what it is (a bad header) is INTERNAL: retrying it cannot help.
 */
export const errorOfTransport = (cause: unknown): ConnectError => {
  const code = cause instanceof Error ? (cause as { code?: unknown }).code : undefined
  const error = new ConnectError(
    `the call failed in transport: ${cause instanceof Error ? `${typeof code === "string" ? code : cause.name}: ${cause.message}` : String(cause)}`,
    typeof code === "string" && REQUEST_ERRORS.has(code) ? Code.Internal : Code.Unavailable
  )
  error.cause = cause
  return error
}

/** A deadline as `grpc-timeout` (at most 8 digits, so the unit grows with it), rounded up. */
export const timeoutField = (ms: number): string => {
  const millis = Math.max(1, Math.ceil(ms))
  if (millis < 1e8) return `${millis}m`
  const seconds = Math.ceil(millis / 1000)
  return seconds < 1e8 ? `${seconds}S` : `${Math.min(99_999_999, Math.ceil(seconds / 3600))}H`
}
