import * as Settings from "@im/ports/Settings"
import { PgClient } from "@effect/sql-pg"
import * as Migrations from "@im/sql/Migrations"
import { Config, Effect, Layer, Redacted, Schedule } from "effect"

/**
 * The PostgreSQL connection of a service (`DATABASE_URL`, default the local stack's;
 * `DATABASE_POOL_MAX`, default 10), probed at start with a bounded retry, schema migrated.
 */
export const layer = Migrations.layer.pipe(
  Layer.provideMerge(PgClient.layerFrom(Effect.gen(function*() {
    const config = yield* Config.all({
      url: Config.Redacted("DATABASE_URL").pipe(Config.withDefault(Redacted.make("postgres://im:im@127.0.0.1:5432/im"))),
      maxConnections: Settings.int("DATABASE_POOL_MAX", 10, { minimum: 1 })
    })
    const client = yield* PgClient.make({ url: config.url, maxConnections: config.maxConnections })
    yield* client`SELECT 1`.pipe(
      Effect.retry({ schedule: Schedule.exponential("200 millis"), times: 6 }),
      Effect.tapError(() => Effect.logError("PostgreSQL is unreachable: check DATABASE_URL"))
    )
    return client
  })))
)
