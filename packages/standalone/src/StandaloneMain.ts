import * as BusJournal from "@im/ports/BusJournal"
import { FileStore } from "@im/ports/FileStore"
import { EmbeddedPostgres } from "@im/sql/EmbeddedPostgres"
import * as SqlStorage from "@im/sql/SqlStorage"
import { Effect, Layer } from "effect"
import { join } from "node:path"
import * as DataDirLock from "./DataDirLock.ts"
import { makeStandalone } from "./Standalone.ts"
import { StandaloneConfig, tokensLayer } from "./StandaloneConfig.ts"

/** Standalone mode as `npm start` runs it: config from the environment, data in DATA_DIR. */
export const Standalone = Layer.unwrap(
  Effect.gen(function*() {
    const config = yield* StandaloneConfig
    // One lock for the store and the bus's journal: neither is opened before it is held.
    const lock = DataDirLock.layer(config.dataDir)
    const storage = SqlStorage.layer.pipe(
      Layer.provide(EmbeddedPostgres.layer({ dataDir: config.dataDir, vacuum: config.vacuum })),
      Layer.provide(lock)
    )
    const announce = Effect.logInfo(
      [
        `IM standalone server ready`,
        `  HTTP API   http://${config.host}:${config.port}  (docs: /docs, OpenAPI: /openapi.json, metrics: /metrics)`,
        `  WebSocket  ws://${config.host}:${config.port}/ws?token=…`,
        `  data       ${config.dataDir}`
      ].join("\n")
    )
    return makeStandalone({
      storage,
      tokens: tokensLayer(config),
      listen: { host: config.host, port: config.port, maxFrameBytes: config.maxFrameBytes },
      maxPending: config.maxPending,
      busPartitions: config.busPartitions,
      files: FileStore.layerLocal({ dir: join(config.dataDir, "files") }),
      bus: (options) => BusJournal.layer({ ...options, dir: join(config.dataDir, "bus") }).pipe(Layer.provide(lock))
    }).pipe(Layer.tap(() => announce))
  })
)
