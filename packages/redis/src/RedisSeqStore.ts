import * as Settings from "@im/ports/Settings"
import { PgClient } from "@effect/sql-pg"
import type { UserId } from "@im/domain/Ids"
import { PortError } from "@im/ports/PortError"
import { type ReservedRange, SeqStore, totalsByUser } from "@im/ports/SeqStore"
import * as Migrations from "@im/sql/Migrations"
import { chunks, portCall, toNumber } from "@im/sql/SqlErrors"
import { Array as Arr, Config, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import { SqlClient } from "effect/sql"
import type { Redis } from "ioredis"
import { connect, connectionSettings, redisCall } from "./RedisClient.ts"

/**
 * One atomic step for every user of a call. Per user a hash `{n, cap}`: `n` the highest number
 * handed out, `cap` the end of the block reserved durably in PostgreSQL. Either every user's
 * block fits under its cap and all are handed out, or nothing is handed out and the users that
 * need a new block come back with their `n` (0 when the hash is missing).
 *
 * Floors (new durable blocks) from PostgreSQL are applied first, only if they were fetched in
 * the current epoch of this Redis data set: a random id kept under its own key, gone with the
 * data. A missing hash restarts at the floor's start (everything at or below it may have been
 * handed out before the data was lost); an existing hash only ever raises its cap, so
 * concurrent allocators never move a counter down nor skip numbers while Redis keeps its data.
 *
 * KEYS: epoch key, then one hash per user. ARGV: a fresh epoch candidate, the epoch the floors
 * belong to ("" for none), then per user: count, floor start, floor cap (0 = no floor).
 * Returns {epoch, 1, first…} or {epoch, 0, index, n, index, n…}.
 */
const ALLOCATE_LUA = `
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
local floorsApply = ARGV[2] == epoch
local users = #KEYS - 1
local counters = {}
local short = {epoch, 0}
for i = 1, users do
  local key = KEYS[i + 1]
  local count = tonumber(ARGV[3 * i])
  local floorStart = tonumber(ARGV[3 * i + 1])
  local floorCap = tonumber(ARGV[3 * i + 2])
  local stored = redis.call('HMGET', key, 'n', 'cap')
  local n, cap = tonumber(stored[1]), tonumber(stored[2])
  if floorsApply and floorCap > 0 then
    if n == nil or cap == nil then
      n, cap = floorStart, floorCap
      redis.call('HSET', key, 'n', n, 'cap', cap)
    elseif floorCap > cap then
      cap = floorCap
      redis.call('HSET', key, 'cap', cap)
    end
  end
  if n == nil or cap == nil or n + count > cap then
    short[#short + 1] = i
    short[#short + 1] = n or 0
  end
  counters[i] = n
end
if #short > 2 then
  return short
end
local firsts = {epoch, 1}
for i = 1, users do
  local count = tonumber(ARGV[3 * i])
  if count > 0 then
    redis.call('HSET', KEYS[i + 1], 'n', counters[i] + count)
  end
  firsts[#firsts + 1] = counters[i] + 1
end
return firsts
`

type AllocateReply = [epoch: string, ok: 0 | 1, ...rest: Array<number>]

/**
 * Per user (KEYS: the users' hashes; ARGV: handed up to, reserved up to, pairwise): sets `n`
 * back to what was handed out where it still is the end of the range (no call took numbers
 * since, and Redis kept its data or restored the counter no lower). The cap stays.
 */
const GIVE_BACK_LUA = `
for i = 1, #KEYS do
  local n = tonumber(redis.call('HGET', KEYS[i], 'n'))
  if n ~= nil and n == tonumber(ARGV[2 * i]) then
    redis.call('HSET', KEYS[i], 'n', ARGV[2 * i - 1])
  end
end
return 1
`

interface SeqRedis extends Redis {
  imSeqAllocate(...keysAndArgs: Array<string | number>): Promise<AllocateReply>
  imSeqGiveBack(...keysAndArgs: Array<string | number>): Promise<number>
}

/** A durable block: numbers in (start, cap] are reserved for the user in PostgreSQL. */
interface Floor {
  readonly start: number
  readonly cap: number
}

export interface RedisSeqStoreOptions {
  readonly url: Redacted.Redacted<string>
  /** Prefix of every key this store writes (tests use one per run). */
  readonly keyPrefix: string
  /** Numbers reserved in PostgreSQL at a time, per user. */
  readonly blockSize: number
  readonly connectTimeout?: Duration.Input | undefined
}

/** Users per PostgreSQL statement: two parameters each, well under the 65,535 limit. */
const SQL_CHUNK = 10_000
/**
 * Rounds of "Redis says a block is used up, PostgreSQL reserves the next one". One round is the
 * rule; more only when concurrent calls for the same users use up the new blocks meanwhile.
 */
const MAX_ROUNDS = 10

const makeUnsafeRandomId = () => crypto.randomUUID()

/**
 * The service on an open Redis connection and the SqlClient in context. Exported for tests that
 * need to reach Redis around the store (e.g. to flush it).
 */
export const make = (
  options: RedisSeqStoreOptions
): Effect.Effect<SeqStore["Service"], PortError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    if (!Number.isSafeInteger(options.blockSize) || options.blockSize < 1) {
      return yield* Effect.die(new RangeError(`SEQ_BLOCK_SIZE must be an integer ≥ 1, got ${options.blockSize}`))
    }
    const sql = yield* SqlClient.SqlClient
    const redis = (yield* connect({ url: options.url, connectTimeout: options.connectTimeout })) as SeqRedis
    // Sent as EVALSHA; ioredis loads the script again when Redis answers NOSCRIPT (after a
    // restart or SCRIPT FLUSH).
    redis.defineCommand("imSeqAllocate", { lua: ALLOCATE_LUA })
    redis.defineCommand("imSeqGiveBack", { lua: GIVE_BACK_LUA })

    const epochKey = `${options.keyPrefix}seq:epoch`
    const userKey = (user: UserId) => `${options.keyPrefix}seq:u:${user}`

    /** One run of the script; floors are applied only if `floorEpoch` is still Redis's epoch. */
    const runScript = (
      operation: string,
      users: ReadonlyArray<readonly [UserId, number]>,
      floors: ReadonlyMap<UserId, Floor>,
      floorEpoch: string
    ) => {
      const keys = [epochKey, ...users.map(([user]) => userKey(user))]
      const args: Array<string | number> = [makeUnsafeRandomId(), floorEpoch]
      for (const [user, count] of users) {
        const floor = floors.get(user)
        args.push(count, floor?.start ?? 0, floor?.cap ?? 0)
      }
      return redisCall("SeqStore", operation, () => redis.imSeqAllocate(keys.length, ...keys, ...args))
    }

    /**
     * Reserves a new block for each user above `seen` (the user's counter as Redis last showed
     * it, 0 when lost): one statement per chunk, row locks in user order. The block is
     * (GREATEST(reserved, seen), that + step], so nothing handed out before lies inside it, and
     * step ≥ count, so the call fits in it.
     */
    const extendFloors = (wanted: ReadonlyArray<readonly [UserId, { readonly seen: number; readonly count: number }]>) =>
      Effect.gen(function*() {
        const step = Math.max(options.blockSize, ...wanted.map(([, { count }]) => count))
        const sorted = [...wanted].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        const floors = new Map<UserId, Floor>()
        for (const part of chunks(sorted, SQL_CHUNK)) {
          const rows = yield* sql<{ readonly user_id: string; readonly reserved: bigint }>`
            INSERT INTO seq_floor ${sql.insert(Arr.map(part, ([user_id, { seen }]) => ({ user_id, reserved: seen + step })))}
            ON CONFLICT (user_id) DO UPDATE SET reserved = GREATEST(seq_floor.reserved + ${step}::bigint, EXCLUDED.reserved)
            RETURNING user_id, reserved`.pipe(portCall("SeqStore", "extendFloor"))
          for (const row of rows) {
            const cap = toNumber(row.reserved)
            floors.set(row.user_id as UserId, { start: cap - step, cap })
          }
        }
        return floors
      })

    const allocate = Effect.fn("RedisSeqStore.allocate")(function*(requests: ReadonlyArray<readonly [UserId, number]>) {
      const totals = yield* totalsByUser(requests)
      const firsts = new Map<UserId, number>()
      if (totals.size === 0) return firsts
      const users = [...totals]

      let floors: ReadonlyMap<UserId, Floor> = new Map()
      let floorEpoch = ""
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const [epoch, ok, ...rest] = yield* runScript("allocate", users, floors, floorEpoch)
        if (ok === 1) {
          users.forEach(([user], i) => firsts.set(user, rest[i]!))
          return firsts
        }
        const wanted: Array<readonly [UserId, { readonly seen: number; readonly count: number }]> = []
        for (let j = 0; j < rest.length; j += 2) {
          const [user, count] = users[rest[j]! - 1]!
          wanted.push([user, { seen: rest[j + 1]!, count }])
        }
        yield* Effect.annotateCurrentSpan("floorsExtended", wanted.length)
        floors = yield* extendFloors(wanted)
        floorEpoch = epoch
      }
      return yield* new PortError({
        port: "SeqStore",
        operation: `allocate (blocks used up by concurrent calls ${MAX_ROUNDS} times in a row)`,
        retryable: true
      })
    })

    const current = Effect.fn("RedisSeqStore.current")(function*(user: UserId) {
      let floors: ReadonlyMap<UserId, Floor> = new Map()
      let floorEpoch = ""
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const [epoch, ok, ...rest] = yield* runScript("current", [[user, 0]], floors, floorEpoch)
        if (ok === 1) return rest[0]! - 1
        // Redis has no counter: the user has none yet, or Redis lost it. Restore it at the
        // durable floor, which is at least every number handed out before.
        const rows = yield* sql<{ readonly reserved: bigint }>`SELECT reserved FROM seq_floor WHERE user_id = ${user}`.pipe(
          portCall("SeqStore", "current")
        )
        const reserved = toNumber(rows[0]?.reserved)
        if (reserved === 0) return 0
        floors = new Map([[user, { start: reserved, cap: reserved }]])
        floorEpoch = epoch
      }
      return yield* new PortError({ port: "SeqStore", operation: "current (Redis data lost repeatedly)", retryable: true })
    })

    const giveBack = Effect.fn("RedisSeqStore.giveBack")(function*(ranges: ReadonlyArray<ReservedRange>) {
      for (const part of chunks(ranges, SQL_CHUNK)) {
        const keys = part.map(({ user }) => userKey(user))
        const args = part.flatMap(({ handedUpTo, reservedUpTo }) => [handedUpTo, reservedUpTo])
        yield* redisCall("SeqStore", "giveBack", () => redis.imSeqGiveBack(keys.length, ...keys, ...args))
      }
    })

    return SeqStore.of({ allocate, current, giveBack })
  }).pipe(Effect.annotateLogs({ service: "RedisSeqStore" }))

/** Config: REDIS_URL, REDIS_KEY_PREFIX, SEQ_BLOCK_SIZE, REDIS_CONNECT_TIMEOUT. */
export const config = Config.all({
  ...connectionSettings,
  blockSize: Settings.int("SEQ_BLOCK_SIZE", 1000, { minimum: 1 })
})

/**
 * SeqStore on Redis with its durable floor in the PostgreSQL of the SqlClient in context (the
 * `seq_floor` table of the migrations must exist).
 */
export const layerNoDeps: Layer.Layer<SeqStore, PortError | Config.ConfigError, SqlClient.SqlClient> = Layer.effect(
  SeqStore,
  Effect.gen(function*() {
    return yield* make(yield* config)
  })
)

/** The PostgreSQL pool for the floor: DATABASE_URL, DATABASE_POOL_MAX. */
export const layerPg = PgClient.layerConfig({
  url: Config.Redacted("DATABASE_URL").pipe(
    Config.withDefault(Redacted.make("postgres://im:im@127.0.0.1:5432/im"))
  ),
  maxConnections: Settings.int("DATABASE_POOL_MAX", 4, { minimum: 1 })
})

/** Production: Redis from REDIS_URL, the floor in DATABASE_URL's database, migrated at start. */
export const layer = layerNoDeps.pipe(
  Layer.provide(Migrations.layer.pipe(Layer.provideMerge(layerPg)))
)

/** The module as one value, for `import { RedisSeqStore } from "@im/redis/RedisSeqStore"`. */
export const RedisSeqStore = { make, config, layer, layerNoDeps, layerPg } as const
