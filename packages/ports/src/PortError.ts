import { Data } from "effect"

/**
 * A third-party part failed. Adapters map their client's errors to this, retry it there when
 * `retryable`, and services turn what they cannot act on into defects.
 */
export class PortError extends Data.TaggedError("PortError")<{
  readonly port: string
  readonly operation: string
  readonly retryable: boolean
  readonly cause?: unknown
}> {
  override get message() {
    return `${this.port}.${this.operation} failed${this.cause instanceof Error ? `: ${this.cause.message}` : ""}`
  }
}
