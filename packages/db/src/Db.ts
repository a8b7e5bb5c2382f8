import { InvalidRange, ServiceUnavailable } from "@im/domain/Errors"
import type { ServerId, UserId } from "@im/domain/Ids"
import { MAX_PULL_LIMIT, type InboxEntry, type Message, type PullPage } from "@im/domain/Message"
import * as Metrics from "@im/observability/Metrics"
import { type ConversationEntry, conversationOf, ConversationStore } from "@im/ports/ConversationStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { InboxStore, type InboxRef, withStoredSeqs } from "@im/ports/InboxStore"
import type { PortError } from "@im/ports/PortError"
import { StoreWrites } from "@im/ports/StoreWrites"
import { Context, Effect, Layer, LogLevel, Metric } from "effect"

export interface PullRequest {
  readonly user: UserId
  readonly after: number
  readonly until?: number | undefined
  readonly limit: number
}

const unavailable = (error: PortError) =>
  Effect.logError("store failed", error).pipe(
    Effect.andThen(Metrics.error("db", "store_unavailable")),
    Effect.andThen(Effect.fail(new ServiceUnavailable({ message: "storage is unavailable, try again" })))
  )

/**
 * The db service: message history, the per-user inboxes and their conversations. `save` stores
 * history before inbox entries, so an entry is never visible without its message, and then the
 * conversations' unread bookkeeping, so a conversation never counts an entry that is not stored;
 * where the stores share a database with transactions (StoreWrites), all three in one.
 */
export class Db extends Context.Service<Db, {
  /** The stored inbox entries among (user, server_id) pairs: what a replay must not store again. */
  readonly existing: (
    keys: ReadonlyArray<Pick<InboxRef, "user_id" | "server_id">>
  ) => Effect.Effect<ReadonlyArray<InboxRef>, ServiceUnavailable>
  /**
   * Idempotent: messages by server_id, entries by (user, server_id). `replayed` are entries of
   * these messages stored before; the conversations are brought up to date with them too.
   * Returns, as stored, those of `entries` whose (user, server_id) was already stored under
   * another seq: usually none, but another save (another consumer handling the same batch) may
   * have stored one first; that seq is the entry's, and the one given for it stays unused.
   */
  readonly save: (
    messages: ReadonlyArray<Message>,
    entries: ReadonlyArray<InboxRef>,
    replayed?: ReadonlyArray<InboxRef>
  ) => Effect.Effect<ReadonlyArray<InboxRef>, ServiceUnavailable>
  readonly pull: (request: PullRequest) => Effect.Effect<PullPage, InvalidRange | ServiceUnavailable>
  readonly newest: (user: UserId) => Effect.Effect<number, ServiceUnavailable>
}>()("@im/db/Db") {
  static readonly layer = Layer.effect(
    Db,
    Effect.gen(function*() {
      const history = yield* HistoryStore
      const inbox = yield* InboxStore
      const conversations = yield* ConversationStore
      const writes = yield* StoreWrites

      const existing = Effect.fn("Db.existing")(function*(keys: ReadonlyArray<Pick<InboxRef, "user_id" | "server_id">>) {
        if (keys.length === 0) return []
        // History is saved before the inbox, so a message not in the history has no entries
        // yet: only replayed messages cost an inbox lookup, the usual batch one history read.
        const known = new Set((yield* history.get([...new Set(keys.map((key) => key.server_id))])).map((m) => m.server_id))
        const candidates = keys.filter((key) => known.has(key.server_id))
        return candidates.length === 0 ? [] : yield* inbox.find(candidates)
      }, Effect.catchTag("PortError", unavailable))

      const save = Effect.fn("Db.save")(function*(
        messages: ReadonlyArray<Message>,
        entries: ReadonlyArray<InboxRef>,
        replayed: ReadonlyArray<InboxRef> = []
      ) {
        yield* Metric.update(Metrics.dbSaveSize, entries.length)
        const byId = new Map(messages.map((message) => [message.server_id, message]))
        const track = (refs: ReadonlyArray<InboxRef>) => {
          const tracked: Array<ConversationEntry> = []
          for (const ref of refs) {
            const message = byId.get(ref.server_id)
            const conversation = message === undefined ? undefined : conversationOf(message, ref.user_id)
            if (conversation === undefined) continue
            tracked.push({ ...ref, conversation, own: message!.sender_id === ref.user_id })
          }
          return tracked
        }
        // One after the other, the conversations after the entries, with the numbers the entries
        // were stored with: a conversation never counts a number no entry holds, and one that
        // recorded entries whose append then failed would count them again when the retry stores
        // them under new seqs. In one transaction (StoreWrites), none is kept.
        // Usually one statement, where the stores can; write by write when it cannot, or finds
        // entries of these messages stored before.
        const atOnce = writes.saveAtOnce !== undefined && entries.length > 0 &&
          (yield* writes.saveAtOnce({ messages, entries, conversations: track([...entries, ...replayed]) }))
        const earlier = atOnce ? [] : yield* writes.unit(Effect.gen(function*() {
          if (messages.length > 0) yield* history.save(messages)
          const earlier = entries.length > 0 ? yield* inbox.append(entries) : []
          const tracked = track([...withStoredSeqs(entries, earlier, (ref) => ref.server_id), ...replayed])
          if (tracked.length > 0) yield* conversations.record(tracked)
          return earlier
        }))
        yield* Metrics.increment(Metrics.inboxEntriesStored, entries.length - earlier.length)
        if (yield* LogLevel.isEnabled("Debug")) {
          yield* Effect.logDebug("saved", { server_ids: messages.map((message) => message.server_id) })
        }
        return earlier
      }, Effect.catchTag("PortError", unavailable), Metrics.timed(Metrics.dbSaveDuration))

      const newest = Effect.fn("Db.newest")(function*(user: UserId) {
        return yield* inbox.newest(user)
      }, Effect.catchTag("PortError", unavailable))

      const pull = Effect.fn("Db.pull")(function*({ after, limit, until, user }: PullRequest) {
        if (!Number.isSafeInteger(after) || after < 0) {
          return yield* new InvalidRange({ message: "after must be an integer ≥ 0" })
        }
        if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PULL_LIMIT) {
          return yield* new InvalidRange({ message: `limit must be an integer from 1 to ${MAX_PULL_LIMIT}` })
        }
        if (until !== undefined && (!Number.isSafeInteger(until) || until < after)) {
          return yield* new InvalidRange({ message: "until must be an integer ≥ after" })
        }
        // Read the newest stored number first: everything up to it is settled, so an entry stored
        // while this pull runs is never claimed as skipped.
        const newestSeq = yield* inbox.newest(user)
        const upTo = Math.min(until ?? newestSeq, newestSeq)
        if (upTo <= after) return { entries: [], through: Math.max(after, upTo), has_more: false }
        const refs = yield* inbox.range({ user, after, until: upTo, limit: limit + 1 })
        const has_more = refs.length > limit
        const page = has_more ? refs.slice(0, limit) : refs
        const messages = new Map<ServerId, Message>()
        for (const message of yield* history.get(page.map((ref) => ref.server_id))) {
          messages.set(message.server_id, message)
        }
        const entries: Array<InboxEntry> = []
        for (const ref of page) {
          const message = messages.get(ref.server_id)
          // save() writes history first, so this only happens if history lost data.
          if (message === undefined) yield* Effect.logError("inbox entry without its message", ref)
          else entries.push({ seq: ref.seq, message })
        }
        return { entries, through: has_more ? page.at(-1)!.seq : upTo, has_more }
      }, Effect.catchTag("PortError", unavailable))

      return Db.of({ existing, save, pull, newest })
    })
  )
}
