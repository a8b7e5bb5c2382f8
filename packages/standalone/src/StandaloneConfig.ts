import { Tokens } from "@im/auth/Tokens"
import * as Settings from "@im/ports/Settings"
import { DEFAULT_VACUUM } from "@im/sql/EmbeddedPostgres"
import { Config, Duration, Effect, Layer, Option, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"

import { DEFAULT_BUS_PARTITIONS } from "./Standalone.ts"

/** Everything standalone mode reads from the environment; documented in the README. */
export const StandaloneConfig = Config.all({
  host: Config.String("HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.Port("PORT").pipe(Config.withDefault(8080)),
  dataDir: Config.String("DATA_DIR").pipe(Config.withDefault(".data"), Config.map((dir) => resolve(dir))),
  maxFrameBytes: Settings.int("WS_MAX_FRAME_BYTES", 65_536, { minimum: 1 }),
  maxPending: Settings.int("BUS_MAX_PENDING", 5_000, { minimum: 1 }),
  busPartitions: Settings.int("BUS_PARTITIONS", DEFAULT_BUS_PARTITIONS, { minimum: 1, maximum: 64 }),
  authSecret: Config.option(Config.Redacted("AUTH_SECRET")),
  lifetimes: Tokens.lifetimes,
  vacuum: Config.all({
    tablesEvery: Settings.positiveDuration("VACUUM_TABLES_EVERY", Duration.fromInputUnsafe(DEFAULT_VACUUM.tablesEvery)),
    databaseEvery: Settings.positiveDuration("VACUUM_DATABASE_EVERY", Duration.fromInputUnsafe(DEFAULT_VACUUM.databaseEvery))
  })
})
export type StandaloneConfig = typeof StandaloneConfig extends Config.Config<infer A> ? A : never

/**
 * The token secret: `AUTH_SECRET` when set; otherwise one made on first start and kept in the
 * data folder, so tokens stay valid across restarts.
 */
export const tokensLayer = (config: StandaloneConfig) =>
  Layer.effect(
    Tokens,
    Effect.gen(function*() {
      if (Option.isSome(config.authSecret)) {
        if (Redacted.value(config.authSecret.value).length < 32) {
          return yield* Effect.die(new Error("AUTH_SECRET must have at least 32 characters"))
        }
        return Tokens.make(config.authSecret.value, config.lifetimes.tokenTtl, config.lifetimes.refreshTtl)
      }
      const file = join(config.dataDir, "auth-secret")
      const secret = yield* Effect.promise(async () => {
        await mkdir(config.dataDir, { recursive: true })
        const existing = await readFile(file, "utf8").catch(() => undefined)
        if (existing !== undefined && existing.trim().length >= 32) return existing.trim()
        const made = randomBytes(48).toString("base64url")
        await writeFile(file, made, { mode: 0o600 })
        await chmod(file, 0o600)
        return made
      })
      return Tokens.make(Redacted.make(secret), config.lifetimes.tokenTtl, config.lifetimes.refreshTtl)
    })
  )
