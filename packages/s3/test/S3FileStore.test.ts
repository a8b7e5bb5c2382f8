import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { createServer } from "node:net"
import * as S3FileStore from "../src/S3FileStore.ts"

/** A port of 127.0.0.1 on which nothing listens: taken from the OS, then released. */
const closedPort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
)

describe("S3FileStore start-up", () => {
  it.live("fails soon, with a PortError naming the bucket and the server, when no S3 server answers", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const started = Date.now()
      const error = yield* Layer.build(S3FileStore.layer.pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
          S3_ENDPOINT: `http://127.0.0.1:${port}`,
          S3_BUCKET: "im-files-unreachable",
          S3_CONNECT_TIMEOUT: "3 seconds"
        })))
      )).pipe(Effect.flip)
      assert.strictEqual(error._tag, "PortError")
      if (error._tag !== "PortError") return
      assert.strictEqual(error.operation, "start")
      assert.include(error.message, `cannot use bucket "im-files-unreachable" at http://127.0.0.1:${port}`)
      assert.isBelow(Date.now() - started, 5_000)
    }), 20_000)
})
