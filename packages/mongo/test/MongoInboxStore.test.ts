import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { createServer } from "node:net"
import * as MongoInboxStore from "../src/MongoInboxStore.ts"

/** A port of 127.0.0.1 on which nothing listens: taken from the OS, then released. */
const closedPort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
)

describe("MongoInboxStore start-up", () => {
  it.live("fails soon, with a PortError naming the server, when no MongoDB answers", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const started = Date.now()
      const error = yield* Layer.build(MongoInboxStore.layer.pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
          MONGO_URL: `mongodb://im:secret@127.0.0.1:${port}`,
          MONGO_CONNECT_TIMEOUT: "1 second"
        })))
      )).pipe(Effect.flip)
      const elapsed = Date.now() - started
      assert.strictEqual(error._tag, "PortError")
      if (error._tag !== "PortError") return
      assert.strictEqual(error.operation, "connect")
      assert.match(error.message, new RegExp(`cannot reach MongoDB at mongodb://im:\\*\\*\\*@127\\.0\\.0\\.1:${port}`))
      assert.notInclude(error.message, "secret")
      assert.isBelow(elapsed, 8_000, "start-up waited far longer than MONGO_CONNECT_TIMEOUT")
    }), 20_000)
})
