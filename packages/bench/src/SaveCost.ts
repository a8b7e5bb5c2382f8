/**
 * What a consumer's step of one-to-one messages costs standalone's embedded PostgreSQL, by
 * statement: `node packages/bench/src/SaveCost.ts [MESSAGES] [ROUNDS]` (default 340 and 300).
 * On an in-memory PGlite it stores rounds of MESSAGES messages among 200 users in a ring, as the
 * consumer does (the lookup of stored entries with the seqs, then the save in one statement),
 * and the same rounds again write by write (history, inbox, conversations), and prints the mean
 * time of each. Run it with the repository's Node (`npx node …`, which strips the types).
 */
import { LocalId, ServerId, UserId } from "@im/domain/Ids"
import type { Message } from "@im/domain/Message"
import { type ConversationEntry, conversationOf, ConversationStore } from "@im/ports/ConversationStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { type InboxRef, InboxStore } from "@im/ports/InboxStore"
import { SeqStore } from "@im/ports/SeqStore"
import { StoreWrites } from "@im/ports/StoreWrites"
import * as EmbeddedPostgres from "@im/sql/EmbeddedPostgres"
import * as SqlStorage from "@im/sql/SqlStorage"
import { Effect, Layer } from "effect"

const USERS = 200
/** Rounds run first and not counted: PGlite's caches and the JIT warm up. */
const WARM_UP = 50

const [messagesArg, roundsArg] = process.argv.slice(2)
const size = Number(messagesArg ?? 340)
const rounds = Number(roundsArg ?? 300)
if (!Number.isSafeInteger(size) || size < 1 || !Number.isSafeInteger(rounds) || rounds < 1) {
  console.error("usage: node packages/bench/src/SaveCost.ts [MESSAGES ≥ 1] [ROUNDS ≥ 1]")
  process.exit(2)
}

const user = (i: number) => UserId.make(`u_${i % USERS}`)

const program = Effect.gen(function*() {
  const [writes, seqs, history, inbox, conversations] = yield* Effect.all([StoreWrites, SeqStore, HistoryStore, InboxStore, ConversationStore])
  if (writes.saveAtOnce === undefined) return yield* Effect.die("these stores cannot save in one statement")
  const saveAtOnce = writes.saveAtOnce
  let sent = 0

  /** The next step: `size` messages, user i to user i+1, each for its receiver and its sender. */
  const step = Effect.gen(function*() {
    const messages: Array<Message> = []
    for (let i = 0; i < size; i++, sent++) {
      const now = Date.now()
      messages.push({
        server_id: ServerId.make(`m_${sent}`),
        local_id: LocalId.make(`l_${sent}`),
        sender_id: user(sent),
        kind: "single",
        receiver_id: user(sent + 1),
        content_type: "text",
        content: `message ${sent}`,
        create_time: now,
        send_time: now
      })
    }
    const wanted = new Map<UserId, number>()
    for (const message of messages) {
      for (const participant of [message.receiver_id!, message.sender_id]) wanted.set(participant, (wanted.get(participant) ?? 0) + 1)
    }
    const started = performance.now()
    const [, firsts] = yield* Effect.all([history.get(messages.map((m) => m.server_id)), seqs.allocate([...wanted])], { concurrency: 2 })
    const looked = performance.now() - started
    const next = new Map(firsts)
    const entries: Array<InboxRef> = []
    const tracked: Array<ConversationEntry> = []
    for (const message of messages) {
      for (const participant of [message.receiver_id!, message.sender_id]) {
        const seq = next.get(participant)!
        next.set(participant, seq + 1)
        const ref = { user_id: participant, seq, server_id: message.server_id }
        entries.push(ref)
        tracked.push({ ...ref, conversation: conversationOf(message, participant)!, own: participant === message.sender_id })
      }
    }
    return { messages, entries, tracked, looked }
  })

  const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.suspend(() => {
      const started = performance.now()
      return Effect.map(effect, () => performance.now() - started)
    })

  const atOnce = Effect.gen(function*() {
    const { entries, looked, messages, tracked } = yield* step
    return [looked, yield* timed(saveAtOnce({ messages, entries, conversations: tracked }))]
  })
  const oneByOne = Effect.gen(function*() {
    const { entries, looked, messages, tracked } = yield* step
    return [
      looked,
      yield* timed(history.save(messages)),
      yield* timed(inbox.append(entries)),
      yield* timed(conversations.record(tracked))
    ]
  })

  const mean = (samples: ReadonlyArray<ReadonlyArray<number>>, column: number) =>
    (samples.reduce((sum, sample) => sum + sample[column]!, 0) / samples.length).toFixed(2)
  const measure = (round: Effect.Effect<ReadonlyArray<number>, unknown>) =>
    Effect.gen(function*() {
      yield* Effect.repeat(round, { times: WARM_UP - 1 })
      const samples: Array<ReadonlyArray<number>> = []
      for (let i = 0; i < rounds; i++) samples.push(yield* round)
      return samples
    })

  const one = yield* measure(atOnce)
  console.log(`${size} messages a step, ${rounds} steps (after ${WARM_UP}), mean ms per step:`)
  console.log(`  as the consumer stores: lookup and seqs ${mean(one, 0)}, the save in one statement ${mean(one, 1)}`)
  const split = yield* measure(oneByOne)
  console.log(
    `  write by write:         lookup and seqs ${mean(split, 0)}, history ${mean(split, 1)}, inbox ${mean(split, 2)}, conversations ${mean(split, 3)}`
  )
})

await Effect.runPromise(
  program.pipe(Effect.provide(SqlStorage.layer.pipe(Layer.provideMerge(EmbeddedPostgres.layer({ dataDir: undefined })))))
)
