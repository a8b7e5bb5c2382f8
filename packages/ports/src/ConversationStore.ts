import type { ServerId, UserId } from "@im/domain/Ids"
import type { Message } from "@im/domain/Message"
import { Context, Effect, Layer, Option } from "effect"
import type { PortError } from "./PortError.ts"

/**
 * A user's conversation: `u:<peer id>` for one-to-one, `g:<group id>` for a group. Notices
 * belong to none.
 */
export const conversationOf = (message: Message, user: UserId): string | undefined => {
  switch (message.kind) {
    case "group":
      return `g:${message.group_id}`
    case "single":
      return `u:${user === message.sender_id ? message.receiver_id : message.sender_id}`
    case "notice":
      return undefined
  }
}

/** One inbox entry as a conversation sees it. */
export interface ConversationEntry {
  readonly user_id: UserId
  readonly conversation: string
  readonly seq: number
  readonly server_id: ServerId
  /** The user sent it: sending implies having read everything before. */
  readonly own: boolean
}

export interface Conversation {
  readonly conversation: string
  /** The user's newest entry in it. */
  readonly last_seq: number
  readonly last_server_id: ServerId
  /** Everything up to this seq is read. */
  readonly read_seq: number
  /** Entries from others after `read_seq` (at most MAX_TRACKED_UNREAD). */
  readonly unread: number
}

/** Unread entries tracked per conversation; beyond it the oldest are forgotten (and counted read). */
export const MAX_TRACKED_UNREAD = 10_000

/**
 * Runs tracked per conversation; beyond it the oldest are forgotten (and counted read). Entries
 * of a conversation that others' conversations interleave with are a run each: this bounds what
 * a store reads and writes for such a conversation however long it goes unread.
 */
export const MAX_TRACKED_RUNS = 1_000

/**
 * Unread seqs as ascending, disjoint runs `[first, last]` (both included). A conversation's
 * unread entries are mostly consecutive seqs (the user's other conversations interleave
 * otherwise), so a busy group's thousands of unread entries are one run: the state a store
 * reads and writes for every batch stays small.
 */
export type SeqRuns = ReadonlyArray<readonly [first: number, last: number]>

/** How many seqs the runs hold. */
export const countRuns = (runs: SeqRuns): number => runs.reduce((sum, [first, last]) => sum + last - first + 1, 0)

/** The bookkeeping of one conversation, shared by the adapters so they agree to the entry. */
export interface ConversationState {
  readonly last_seq: number
  readonly last_server_id: ServerId
  readonly read_seq: number
  readonly unread: SeqRuns
}

/** Forgets the oldest unread seqs beyond MAX_TRACKED_UNREAD, and the oldest runs beyond MAX_TRACKED_RUNS. */
const keepNewest = (runs: Array<[number, number]>): Array<[number, number]> => {
  if (runs.length > MAX_TRACKED_RUNS) runs.splice(0, runs.length - MAX_TRACKED_RUNS)
  let excess = countRuns(runs) - MAX_TRACKED_UNREAD
  while (excess > 0) {
    const [first, last] = runs[0]!
    if (last - first + 1 <= excess) {
      runs.shift()
      excess -= last - first + 1
    } else {
      runs[0] = [first + excess, last]
      excess = 0
    }
  }
  return runs
}

/**
 * Applies entries (ascending by seq) to a conversation. An entry at or below `last_seq` was
 * applied before — a replay — and changes nothing: one conversation's entries come from one
 * bus partition, in seq order.
 */
export const applyEntries = (
  state: ConversationState | undefined,
  entries: ReadonlyArray<ConversationEntry>
): ConversationState | undefined => {
  let last: ConversationEntry | undefined
  let read = state?.read_seq ?? 0
  // Copied once per call, not per entry: a group's batch brings many entries per conversation.
  let unread: Array<[number, number]> | undefined
  for (const entry of entries) {
    if (entry.seq <= (last?.seq ?? state?.last_seq ?? 0)) continue
    last = entry
    unread ??= (state?.unread ?? []).map(([from, to]) => [from, to])
    if (entry.own) {
      read = entry.seq
      unread.length = 0
    } else {
      const newest = unread.at(-1)
      if (newest !== undefined && newest[1] === entry.seq - 1) newest[1] = entry.seq
      else unread.push([entry.seq, entry.seq])
    }
  }
  if (last === undefined) return state
  return { last_seq: last.seq, last_server_id: last.server_id, read_seq: read, unread: keepNewest(unread!) }
}

/**
 * Unread runs as a store may hold them after appending batches to them (SqlConversationStore
 * does): single seqs or runs, in any order, overlapping, or at or below `readSeq` (a replayed
 * entry appended again). What they mean is the set of seqs above `readSeq`; this is that set as
 * ascending, disjoint, non-adjacent runs, within the tracking limits.
 */
export const normalizeRuns = (items: ReadonlyArray<number | readonly [number, number]>, readSeq: number): Array<[number, number]> => {
  const runs: Array<[number, number]> = []
  for (const item of items) {
    const [first, last] = typeof item === "number" ? [item, item] : item
    if (last > readSeq) runs.push([Math.max(first, readSeq + 1), last])
  }
  runs.sort((a, b) => a[0] - b[0])
  const merged: Array<[number, number]> = []
  for (const run of runs) {
    const newest = merged.at(-1)
    if (newest !== undefined && run[0] <= newest[1] + 1) newest[1] = Math.max(newest[1], run[1])
    else merged.push(run)
  }
  return keepNewest(merged)
}

/**
 * What a batch of one conversation's entries (ascending by seq) does to it, worked out without
 * its current state, for a store that applies it in one write: `last` is the newest entry,
 * `ownSeq` the newest of the user's own (0 if none), `unreadAfterOwn` the runs of the others'
 * entries after it. Against the state, entries at or below its `last_seq` are replays: if
 * `last.seq` is one, nothing changes; else if `ownSeq` is above the state's `last_seq` the
 * conversation is read up to `ownSeq` and unread is `unreadAfterOwn`; else unread is the
 * state's runs with `unreadAfterOwn` appended (replayed seqs among them are read or already
 * unread: normalizeRuns makes them count once).
 */
export const summarizeEntries = (entries: ReadonlyArray<ConversationEntry>) => {
  let ownSeq = 0
  let unreadAfterOwn: Array<[number, number]> = []
  for (const entry of entries) {
    if (entry.own) {
      ownSeq = entry.seq
      unreadAfterOwn = []
      continue
    }
    const newest = unreadAfterOwn.at(-1)
    if (newest !== undefined && newest[1] === entry.seq - 1) newest[1] = entry.seq
    else unreadAfterOwn.push([entry.seq, entry.seq])
  }
  return { last: entries.at(-1)!, ownSeq, unreadAfterOwn: keepNewest(unreadAfterOwn) }
}

/** Marks read up to `seq` (never beyond the newest entry, never backwards). */
export const applyRead = (state: ConversationState, seq: number): ConversationState => {
  const read = Math.max(state.read_seq, Math.min(seq, state.last_seq))
  return {
    ...state,
    read_seq: read,
    unread: state.unread.flatMap(([first, last]): SeqRuns => last <= read ? [] : [[Math.max(first, read + 1), last]])
  }
}

export const toConversation = (conversation: string, state: ConversationState): Conversation => ({
  conversation,
  last_seq: state.last_seq,
  last_server_id: state.last_server_id,
  read_seq: state.read_seq,
  unread: countRuns(state.unread)
})

/** Groups entries by (user, conversation), each group ascending by seq. */
export const groupEntries = (entries: ReadonlyArray<ConversationEntry>) => {
  const groups = new Map<string, { user_id: UserId; conversation: string; entries: Array<ConversationEntry> }>()
  for (const entry of entries) {
    const key = `${entry.user_id}\n${entry.conversation}`
    let group = groups.get(key)
    if (group === undefined) groups.set(key, group = { user_id: entry.user_id, conversation: entry.conversation, entries: [] })
    group.entries.push(entry)
  }
  for (const group of groups.values()) group.entries.sort((a, b) => a.seq - b.seq)
  return [...groups.values()]
}

/**
 * Each user's conversations with their unread counts. The consumer's writes (`record`) are
 * idempotent: a replayed entry changes nothing. `markRead` answers the conversation before and
 * after, or none when the user has no such conversation.
 */
export class ConversationStore extends Context.Service<ConversationStore, {
  readonly record: (entries: ReadonlyArray<ConversationEntry>) => Effect.Effect<void, PortError>
  /** Newest first. */
  readonly list: (user: UserId) => Effect.Effect<ReadonlyArray<Conversation>, PortError>
  readonly markRead: (
    user: UserId,
    conversation: string,
    seq: number
  ) => Effect.Effect<Option.Option<{ readonly before: Conversation; readonly after: Conversation }>, PortError>
}>()("@im/ports/ConversationStore") {
  static readonly layerMemory = Layer.sync(ConversationStore, () => {
    const states = new Map<UserId, Map<string, ConversationState>>()
    const of = (user: UserId) => {
      let own = states.get(user)
      if (own === undefined) states.set(user, own = new Map())
      return own
    }
    return ConversationStore.of({
      record: (entries) =>
        Effect.sync(() => {
          for (const group of groupEntries(entries)) {
            const own = of(group.user_id)
            const next = applyEntries(own.get(group.conversation), group.entries)
            if (next !== undefined) own.set(group.conversation, next)
          }
        }),
      list: (user) =>
        Effect.sync(() =>
          [...(states.get(user) ?? new Map<string, ConversationState>())]
            .map(([conversation, state]) => toConversation(conversation, state))
            .sort((a, b) => b.last_seq - a.last_seq)
        ),
      markRead: (user, conversation, seq) =>
        Effect.sync(() => {
          const state = states.get(user)?.get(conversation)
          if (state === undefined) return Option.none()
          const next = applyRead(state, seq)
          of(user).set(conversation, next)
          return Option.some({ before: toConversation(conversation, state), after: toConversation(conversation, next) })
        })
    })
  })
}
