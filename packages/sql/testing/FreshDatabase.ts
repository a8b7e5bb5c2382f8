import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import * as Migrations from "../src/Migrations.ts"

/**
 * A PostgreSQL database of the test's own on a real server (`DATABASE_URL`, default the local
 * stack's): created when the layer is built, migrated, and dropped with its connections when it
 * is released.
 */
export const layer = (options: { readonly maxConnections?: number } = {}) => {
  const serverUrl = process.env["DATABASE_URL"] ?? "postgres://im:im@127.0.0.1:5432/im"
  const name = `im_test_${randomBytes(6).toString("hex")}`
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  const fresh = Layer.unwrap(
    Effect.gen(function*() {
      const admin = yield* PgClient.PgClient
      yield* admin`CREATE DATABASE ${admin(name)}`
      yield* Effect.addFinalizer(() =>
        admin`DROP DATABASE IF EXISTS ${admin(name)} WITH (FORCE)`.pipe(
          Effect.tapError((error) => Effect.logWarning(`could not drop ${name}`, error)),
          Effect.ignore
        )
      )
      return PgClient.layer({ url: Redacted.make(url.toString()), maxConnections: options.maxConnections ?? 8 })
    })
  ).pipe(Layer.provide(PgClient.layer({ url: Redacted.make(serverUrl), maxConnections: 1 })))
  return { name, layer: Migrations.layer.pipe(Layer.provideMerge(fresh)) }
}
