/**
 * What one unary gRPC call costs both ends, through the services' own glue (`@im/proto/Grpc`:
 * `implement`, `serve`, `makeClient`): a ChatService server whose Typing answers at once, and a
 * client in the same process making CALLS calls, CONCURRENCY at a time, after a warm-up. Prints
 * the process's CPU time per call (both ends, Effect's runtime included).
 *
 *   node packages/bench/src/GrpcCost.ts [CALLS] [CONCURRENCY]
 */
import { type EffectImpl, GrpcServer, implement, makeClient, serve } from "@im/proto/Grpc"
import { ChatService } from "@im/proto/gen/im/chat/v1/chat_pb"
import { Context, Effect, Layer } from "effect"

const calls = Number(process.argv[2] ?? 20_000)
const concurrency = Number(process.argv[3] ?? 8)

const server = serve(
  implement(
    ChatService,
    Effect.succeed<EffectImpl<typeof ChatService, never, never>>({
      typing: () => Effect.succeed({}),
      send: () => Effect.die("unused"),
      sendBatch: () => Effect.die("unused"),
      notify: () => Effect.die("unused")
    }),
    { toConnectError: (error: never) => error }
  ),
  { host: "127.0.0.1", port: 0 }
)

const program = Effect.gen(function*() {
  const { port } = Context.get(yield* Layer.build(server), GrpcServer)
  const client = yield* makeClient(ChatService, `http://127.0.0.1:${port}`, { timeoutMs: 5_000 })
  const run = (n: number) =>
    Effect.forEach(Array.from({ length: n }), () => client.typing({ senderId: "u_a", receiverId: "u_b" }), {
      concurrency,
      discard: true
    })
  yield* run(3_000)
  const before = process.cpuUsage()
  const started = performance.now()
  yield* run(calls)
  const cpu = process.cpuUsage(before)
  const seconds = (performance.now() - started) / 1000
  console.log(
    `${calls} calls, ${concurrency} at a time, in ${seconds.toFixed(2)} s: ` +
      `${((cpu.user + cpu.system) / calls).toFixed(1)} µs of CPU per call (both ends)`
  )
})

Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
