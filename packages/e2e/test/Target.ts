import { Tokens } from "@im/auth/Tokens"
import { SessionId, type UserId } from "@im/domain/Ids"
import { FileRecords } from "@im/ports/FileRecords"
import { FileStore } from "@im/ports/FileStore"
import { Presence } from "@im/ports/Presence"
import { EmbeddedPostgres } from "@im/sql/EmbeddedPostgres"
import * as SqlStorage from "@im/sql/SqlStorage"
import { makeStandalone } from "@im/standalone/Standalone"
import { ConfigProvider, Duration, Effect, Layer, ManagedRuntime, Redacted, References } from "effect"
import { HttpServer } from "effect/http"
import { randomBytes } from "node:crypto"
import { afterAll, beforeAll } from "vitest"

/** What the end-to-end tests run against. */
export interface Target {
  readonly name: string
  readonly baseUrl: string
  readonly wsUrl: string
  /** The gateways holding a user's connections, where the target lets the test look. */
  readonly presenceOf?: ((user: string) => Promise<number>) | undefined
  /** A token for the user that expired a minute ago, where the target lets the test sign one. */
  readonly expiredToken?: ((user: string) => Promise<string>) | undefined
  /** How many files the user announced, where the target lets the test look. */
  readonly filesOf?: ((user: string) => Promise<number>) | undefined
  readonly stop: () => Promise<void>
}

/** The settings a target must run with for these tests. */
export const TEST_SETTINGS = {
  WS_TEST_HOOKS: "true",
  WS_HEARTBEAT_TIMEOUT: "2 seconds",
  RECALL_WINDOW: "2 seconds",
  WS_MAX_FRAME_BYTES: "65536",
  // Short enough for a test to see a download URL expire; ample for fetching one right away.
  FILE_DOWNLOAD_URL_TTL: "5 seconds"
}

/**
 * `IM_E2E_URL=http://host:port` points the tests at a running server (started with
 * TEST_SETTINGS; `IM_E2E_WS_URL` when its WebSocket is on another address); without it, a standalone server starts in this process on a free port, with
 * the embedded PostgreSQL in memory.
 */
export const startTarget = async (): Promise<Target> => {
  const url = process.env["IM_E2E_URL"]
  if (url !== undefined && url !== "") {
    // IM_E2E_WS_URL: a gateway of a cluster, whose API is elsewhere; SDK clients follow login's ws_url.
    const wsUrl = process.env["IM_E2E_WS_URL"] ?? `${url.replace(/^http/, "ws")}/ws`
    return { name: url, baseUrl: url, wsUrl, stop: async () => {} }
  }
  const storage = SqlStorage.layer.pipe(
    Layer.provide(EmbeddedPostgres.layer({ dataDir: undefined }))
  )
  const secret = Redacted.make(randomBytes(32).toString("hex"))
  const app = makeStandalone({
    storage,
    tokens: Layer.succeed(Tokens, Tokens.make(secret, Duration.hours(1))),
    listen: { host: "127.0.0.1", port: 0, maxFrameBytes: Number(TEST_SETTINGS.WS_MAX_FRAME_BYTES) },
    files: FileStore.layerLocal()
  }).pipe(
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(TEST_SETTINGS))),
    Layer.provide(Layer.succeed(References.MinimumLogLevel, "Warn"))
  )
  const runtime = ManagedRuntime.make(app)
  const server = await runtime.runPromise(Effect.service(HttpServer.HttpServer))
  const { port } = server.address as { readonly port: number }
  const baseUrl = `http://127.0.0.1:${port}`
  return {
    name: "standalone (in process)",
    baseUrl,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    presenceOf: (user) =>
      runtime.runPromise(
        Effect.flatMap(Effect.service(Presence), (presence) => presence.lookup([user as UserId])).pipe(
          Effect.map((found) => found.get(user as UserId)?.length ?? 0)
        )
      ),
    expiredToken: (user) =>
      Effect.runPromise(
        Tokens.make(secret, Duration.minutes(-1)).issue({ user: user as UserId, session: SessionId.make("sn_expired"), refresh_id: "r" })
      ).then((issued) => issued.token),
    filesOf: (user) =>
      runtime.runPromise(
        Effect.flatMap(Effect.service(FileRecords), (files) => files.ownedBy(user as UserId)).pipe(Effect.map((owned) => owned.length))
      ),
    stop: () => runtime.dispose()
  }
}

/**
 * The target of one test file: started before its tests and stopped after them; not started at
 * all with `skip` (a file whose tests all need what this run lacks). What it returns reads the
 * started target, so a file can hand it around when it loads and use it in its tests.
 */
export const useTarget = (options: { readonly skip?: boolean } = {}): Target => {
  let started: Target | undefined
  beforeAll(async () => {
    if (options.skip !== true) started = await startTarget()
  }, 60_000)
  afterAll(() => started?.stop(), 30_000)
  const current = (): Target => {
    if (started === undefined) throw new Error("the target is not started: use it inside a test")
    return started
  }
  return {
    get name() { return current().name },
    get baseUrl() { return current().baseUrl },
    get wsUrl() { return current().wsUrl },
    get presenceOf() { return current().presenceOf },
    get expiredToken() { return current().expiredToken },
    get filesOf() { return current().filesOf },
    stop: () => current().stop()
  }
}
