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
    const storage = SqlStorage.layer.pipe(
      Layer.provide(EmbeddedPostgres.layer({ dataDir: config.dataDir, vacuum: config.vacuum })),
      Layer.provide(DataDirLock.layer(config.dataDir))
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
      files: FileStore.layerLocal({ dir: join(config.dataDir, "files") })
    }).pipe(Layer.tap(() => announce))
  })
)
