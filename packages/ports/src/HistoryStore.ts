import type { ServerId } from "@im/domain/Ids"
import type { Message } from "@im/domain/Message"
import { Context, Effect, Layer } from "effect"
import type { PortError } from "./PortError.ts"

/** Every message once, by `server_id`. Saving is idempotent: a replayed message is kept once. */
export class HistoryStore extends Context.Service<HistoryStore, {
  readonly save: (messages: ReadonlyArray<Message>) => Effect.Effect<void, PortError>
  /** The stored messages among the given ids, in no particular order. */
  readonly get: (ids: ReadonlyArray<ServerId>) => Effect.Effect<ReadonlyArray<Message>, PortError>
  /**
   * Marks the message recalled and empties its content, for good (a later save of the same
   * message does not bring it back). Returns whether such a message is stored.
   */
  readonly recall: (id: ServerId) => Effect.Effect<boolean, PortError>
}>()("@im/ports/HistoryStore") {
  static readonly layerMemory = Layer.sync(HistoryStore, () => {
    const messages = new Map<ServerId, Message>()
    return HistoryStore.of({
      save: (batch) =>
        Effect.sync(() => {
          for (const message of batch) {
            if (!messages.has(message.server_id)) messages.set(message.server_id, message)
          }
        }),
      recall: (id) =>
        Effect.sync(() => {
          const message = messages.get(id)
          if (message === undefined) return false
          messages.set(id, { ...message, content: "", recalled: true })
          return true
        }),
      get: (ids) =>
        Effect.sync(() =>
          ids.flatMap((id) => {
            const message = messages.get(id)
            return message === undefined ? [] : [message]
          })
        )
    })
  })
}
