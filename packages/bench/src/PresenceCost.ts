/**
 * What the gateway's presence calls cost Redis with one gateway holding many users: the adapter
 * (`@im/redis/RedisPresence`) on the Redis at REDIS_URL, a gateway restored with CONNECTIONS
 * connections of as many users, then ROUNDS refreshes and ROUNDS lookups of 200 of its users,
 * each timed from the client (the round trip, and the script's run in Redis, which holds every
 * other client meanwhile); then, with a dead gateway of as many users beside it, ROUNDS
 * refreshes that each remove some of what the dead one left. Its keys are under a prefix of
 * their own, deleted at the end.
 *
 *   node packages/bench/src/PresenceCost.ts [CONNECTIONS] [ROUNDS]
 */
import type { GatewayId, UserId } from "@im/domain/Ids"
import { deletePrefix } from "@im/redis/RedisClient"
import * as RedisPresence from "@im/redis/RedisPresence"
import { Effect, Redacted } from "effect"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"

const connections = Number(process.argv[2] ?? 20_000)
const rounds = Number(process.argv[3] ?? 21)
const url = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const times: Array<number> = []
    for (let i = 0; i < rounds; i++) {
      const started = performance.now()
      yield* effect
      times.push(performance.now() - started)
    }
    times.sort((a, b) => a - b)
    return `median ${times[Math.floor(rounds / 2)]!.toFixed(2)} ms, max ${times[rounds - 1]!.toFixed(2)} ms`
  })

const deleteKeys = (prefix: string) =>
  Effect.promise(async () => {
    const redis = new Redis(url)
    await deletePrefix(redis, prefix)
    await redis.quit()
  })

const program = Effect.gen(function*() {
  const keyPrefix = `presence-cost:${randomBytes(4).toString("hex")}:`
  yield* Effect.addFinalizer(() => deleteKeys(keyPrefix))
  const presence = yield* RedisPresence.make({ url: Redacted.make(url), keyPrefix, ttl: "90 seconds" })
  const gateway = "ws-cost" as GatewayId
  const entries = Array.from({ length: connections }, (_, i) => ({ user: `u_cost${i}` as UserId, connection: `c${i}` }))
  yield* presence.restore(gateway, "run", entries)
  const refresh = yield* timed(presence.refresh(gateway, "run"))
  const lookup = yield* timed(presence.lookup(entries.slice(0, 200).map((entry) => entry.user)))
  // A gateway that lives a second, then is dead.
  const shortLived = yield* RedisPresence.make({ url: Redacted.make(url), keyPrefix, ttl: "1 second" })
  yield* shortLived.restore("ws-dead" as GatewayId, "run", entries.map((entry) => ({ ...entry, connection: `d${entry.connection}` })))
  yield* Effect.sleep("1200 millis")
  const sweeping = yield* timed(presence.refresh(gateway, "run"))
  console.log(`${connections} connections of as many users on one gateway, ${rounds} rounds:`)
  console.log(`  refresh: ${refresh}`)
  console.log(`  lookup of 200 users: ${lookup}`)
  console.log(`  refresh beside a dead gateway of as many users: ${sweeping}`)
})

Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
