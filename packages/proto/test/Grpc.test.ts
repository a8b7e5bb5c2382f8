import * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import { assert, describe, it } from "@effect/vitest"
import { Context, Data, Deferred, Effect, Exit, Layer, Scope } from "effect"
import * as http2 from "node:http2"
import * as net from "node:net"
import { fileURLToPath } from "node:url"
import { Code, ConnectError, errorDetailOf, toConnectError } from "../src/Errors.ts"
import { ChatService } from "../src/gen/im/chat/v1/chat_pb.ts"
import { type EffectImpl, GrpcServer, implement, makeClient, serve } from "../src/Grpc.ts"
import { frame, MAX_MESSAGE_BYTES } from "../src/GrpcWire.ts"

/*
 * The gRPC ends themselves, on a test service (ChatService's Typing, whose receiver says what
 * the handler does): what reaches the wire, what a client makes of what comes back, and what
 * either does with a peer that misbehaves.
 */

class Refused extends Data.TaggedError("Refused")<{ readonly message: string }> {}

/** `receiver_id` picks the behaviour: "slow" waits 10 s (and says when it was interrupted), "refuse", "die", "throw". */
const serveTyping = (interrupted: Deferred.Deferred<void>, port = 0) =>
  serve(
    implement(
      ChatService,
      Effect.succeed({
        typing: (request: { readonly receiverId: string }) => {
          switch (request.receiverId) {
            case "slow":
              return Effect.sleep("10 seconds").pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)), Effect.as({}))
            case "refuse":
              return Effect.fail(new Refused({ message: "not now" }))
            case "die":
              return Effect.die(new Error("a bug"))
            case "throw":
              throw new Error("a bug before any Effect")
            default:
              return Effect.succeed({})
          }
        },
        send: () => Effect.die("unused"),
        sendBatch: () => Effect.die("unused"),
        notify: () => Effect.die("unused")
      } as unknown as EffectImpl<typeof ChatService, Refused | ConnectError, never>),
      { toConnectError: (error: Refused) => toConnectError(Code.FailedPrecondition, { tag: error._tag, code: "not_now", message: error.message }) }
    ),
    { host: "127.0.0.1", port }
  )

/** A served test service and a client of it, for the scope. */
const withServer = Effect.gen(function*() {
  const interrupted = yield* Deferred.make<void>()
  const { port } = Context.get(yield* Layer.build(serveTyping(interrupted)), GrpcServer)
  const url = `http://127.0.0.1:${port}`
  return { port, url, interrupted, client: yield* makeClient(ChatService, url, { timeoutMs: 2_000 }) }
})

const codeOf = <A>(exit: Exit.Exit<A, ConnectError>) =>
  Exit.isFailure(exit) && exit.cause.reasons[0]?._tag === "Fail" ? (exit.cause.reasons[0].error as ConnectError).code : undefined

interface RawAnswer {
  readonly status: number
  readonly fields: http2.IncomingHttpHeaders
}

/** A request by hand on a fresh session: the HTTP status and the status fields (trailers, or the headers when there are none). */
const raw = (url: string, headers: http2.OutgoingHttpHeaders, body: Uint8Array): Promise<RawAnswer> =>
  new Promise((resolve, reject) => {
    const session = http2.connect(url)
    session.on("error", reject)
    const stream = session.request({ ":method": "POST", "content-type": "application/grpc", te: "trailers", ...headers })
    let response: http2.IncomingHttpHeaders = {}
    let trailers: http2.IncomingHttpHeaders | undefined
    stream.on("response", (fields) => void (response = fields))
    stream.on("trailers", (fields) => void (trailers = fields))
    stream.on("data", () => {})
    stream.on("error", () => {})
    stream.on("close", () => {
      session.close()
      resolve({ status: Number(response[":status"]), fields: trailers ?? response })
    })
    stream.end(body)
  })

const typingPath = "/im.chat.v1.ChatService/Typing"
const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

describe("a gRPC server and client on Node's HTTP/2", () => {
  it.live("a call goes through; a typed failure keeps its code and detail; a defect is INTERNAL, its message not sent", () =>
    Effect.gen(function*() {
      const { client } = yield* withServer
      assert.deepStrictEqual(Exit.isSuccess(yield* Effect.exit(client.typing({ senderId: "a", receiverId: "b" }))), true)
      const refused = yield* Effect.flip(client.typing({ senderId: "a", receiverId: "refuse" }))
      assert.strictEqual(refused.code, Code.FailedPrecondition)
      assert.strictEqual(refused.rawMessage, "not now")
      assert.deepInclude(errorDetailOf(refused), { tag: "Refused", code: "not_now", message: "not now" })
      for (const receiverId of ["die", "throw"]) {
        const died = yield* Effect.flip(client.typing({ senderId: "a", receiverId }))
        assert.strictEqual(died.code, Code.Internal)
        assert.strictEqual(died.rawMessage, "internal error")
      }
    }).pipe(Effect.scoped))

  it.live("a call past its deadline is DEADLINE_EXCEEDED, and the server's handler is interrupted", () =>
    Effect.gen(function*() {
      const { interrupted, url } = yield* withServer
      const hasty = yield* makeClient(ChatService, url, { timeoutMs: 200 })
      const exit = yield* Effect.exit(hasty.typing({ senderId: "a", receiverId: "slow" }))
      assert.strictEqual(codeOf(exit), Code.DeadlineExceeded)
      yield* Deferred.await(interrupted).pipe(Effect.timeout("3 seconds"))
    }).pipe(Effect.scoped))

  it.live("an interrupted call cancels its stream, and the server's handler is interrupted", () =>
    Effect.gen(function*() {
      const { client, interrupted } = yield* withServer
      const exit = yield* Effect.exit(client.typing({ senderId: "a", receiverId: "slow" }).pipe(Effect.timeout("100 millis")))
      assert.isTrue(Exit.isFailure(exit))
      yield* Deferred.await(interrupted).pipe(Effect.timeout("3 seconds"))
    }).pipe(Effect.scoped))

  it.live("requests that are not well-formed gRPC get the spec's answers, and the server keeps serving", () =>
    Effect.gen(function*() {
      const { client, url } = yield* withServer
      const message = frame(new Uint8Array([0x0a, 0x01, 0x61])) // sender_id "a"
      const answers = yield* promise(() =>
        Promise.all([
          raw(url, { ":path": "/im.chat.v1.ChatService/Nope" }, message),
          raw(url, { ":path": typingPath, "content-type": "application/json" }, message),
          raw(url, { ":path": typingPath, ":method": "PUT" }, message),
          raw(url, { ":path": typingPath, "grpc-encoding": "gzip" }, message),
          raw(url, { ":path": typingPath }, new Uint8Array()),
          raw(url, { ":path": typingPath }, message.subarray(0, 4)),
          raw(url, { ":path": typingPath }, Buffer.concat([message, message])),
          raw(url, { ":path": typingPath }, Buffer.from([1, 0, 0, 0, 0])),
          raw(url, { ":path": typingPath }, frame(new Uint8Array([0x0a, 0x05, 0x61]))), // a field longer than the message
          raw(url, { ":path": typingPath, "grpc-timeout": "soon" }, message),
          raw(url, { ":path": typingPath }, Buffer.from([0, 0xff, 0xff, 0xff, 0xff]))
        ])
      )
      const codes = answers.map(({ fields, status }) => status === 200 ? Number(fields["grpc-status"]) : `HTTP ${status}`)
      assert.deepStrictEqual(codes, [
        Code.Unimplemented,
        "HTTP 415",
        "HTTP 405",
        Code.Unimplemented,
        Code.InvalidArgument,
        Code.InvalidArgument,
        Code.InvalidArgument,
        Code.InvalidArgument,
        Code.InvalidArgument,
        Code.InvalidArgument,
        Code.ResourceExhausted
      ])
      assert.strictEqual(answers[3]!.fields["grpc-accept-encoding"], "identity")
      assert.match(decodeURIComponent(String(answers[10]!.fields["grpc-message"])), new RegExp(`larger than ${MAX_MESSAGE_BYTES} bytes`))
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(client.typing({ senderId: "a", receiverId: "b" }))))
    }).pipe(Effect.scoped))

  it.live("a client that resets its stream before the end of its message, or after it, does not take the server down", () =>
    Effect.gen(function*() {
      const { client, url } = yield* withServer
      const message = frame(new Uint8Array([0x0a, 0x01, 0x61]))
      yield* promise(() =>
        new Promise<void>((resolve) => {
          const session = http2.connect(url)
          session.on("error", () => {})
          const reset = (body: Uint8Array) => {
            const stream = session.request({ ":method": "POST", ":path": typingPath, "content-type": "application/grpc", te: "trailers" })
            stream.on("error", () => {})
            stream.write(body)
            // RST_STREAM NO_ERROR, sent before END_STREAM: Node closes the server's stream before it destroys it.
            stream.close(http2.constants.NGHTTP2_NO_ERROR)
          }
          reset(message.subarray(0, 3))
          reset(message)
          setTimeout(() => {
            session.close()
            resolve()
          }, 300)
        })
      )
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(client.typing({ senderId: "a", receiverId: "b" }))))
    }).pipe(Effect.scoped))

  it.live("a server that stops answering without closing its connection: the call's deadline passes, an unanswered ping drops the session, and the next call connects anew", () =>
    Effect.gen(function*() {
      // Takes connections and never says a word.
      const connections: Array<net.Socket> = []
      const silent = net.createServer((socket) => void connections.push(socket))
      yield* Effect.acquireRelease(
        promise(() => new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))),
        () => Effect.sync(() => {
          connections.forEach((socket) => socket.destroy())
          silent.close()
        })
      )
      const client = yield* makeClient(ChatService, `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, { timeoutMs: 200 })
      assert.strictEqual(codeOf(yield* Effect.exit(client.typing({ senderId: "a", receiverId: "b" }))), Code.DeadlineExceeded)
      assert.strictEqual(connections.length, 1)
      // The ping waits 5 s for its answer.
      yield* Effect.sleep("5500 millis")
      yield* Effect.exit(client.typing({ senderId: "a", receiverId: "b" }))
      assert.strictEqual(connections.length, 2)
    }).pipe(Effect.scoped), 15_000)

  it.live("a client with no server is UNAVAILABLE, and reconnects once the server is back on its port", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { port, url } = yield* withServer.pipe(Scope.provide(scope))
      const client = yield* makeClient(ChatService, url, { timeoutMs: 2_000 })
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(client.typing({ senderId: "a", receiverId: "b" }))))
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(codeOf(yield* Effect.exit(client.typing({ senderId: "a", receiverId: "b" }))), Code.Unavailable)
      yield* Layer.build(serveTyping(yield* Deferred.make<void>(), port))
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(client.typing({ senderId: "a", receiverId: "b" }))))
    }).pipe(Effect.scoped))
})

describe("our client against other servers", () => {
  const protoRoot = fileURLToPath(new URL("../../../proto", import.meta.url))

  /** A @grpc/grpc-js server of ChatService whose Typing answers per receiver: "refuse" is FAILED_PRECONDITION. */
  const grpcJsServer = Effect.acquireRelease(
    promise(async () => {
      const definition = protoLoader.loadSync("im/chat/v1/chat.proto", { includeDirs: [protoRoot] })
      const loaded = grpc.loadPackageDefinition(definition) as unknown as {
        im: { chat: { v1: { ChatService: { service: grpc.ServiceDefinition } } } }
      }
      const server = new grpc.Server()
      server.addService(loaded.im.chat.v1.ChatService.service, {
        Typing: (call: grpc.ServerUnaryCall<{ receiverId: string }, object>, callback: grpc.sendUnaryData<object>) =>
          call.request.receiverId === "refuse"
            ? callback({ code: grpc.status.FAILED_PRECONDITION, details: "not now" })
            : callback(null, {})
      })
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => error ? reject(error) : resolve(port))
      )
      return { server, port }
    }),
    ({ server }) => Effect.sync(() => server.forceShutdown())
  )

  it.live("calls a @grpc/grpc-js server: an answer, and an error with its code and message", () =>
    Effect.gen(function*() {
      const { port } = yield* grpcJsServer
      const client = yield* makeClient(ChatService, `http://127.0.0.1:${port}`, { timeoutMs: 2_000 })
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(client.typing({ senderId: "a", receiverId: "b" }))))
      const refused = yield* Effect.flip(client.typing({ senderId: "a", receiverId: "refuse" }))
      assert.strictEqual(refused.code, Code.FailedPrecondition)
      assert.strictEqual(refused.rawMessage, "not now")
    }).pipe(Effect.scoped))

  /** An HTTP/2 server answering every stream with `answer`. */
  const rogue = (answer: (stream: http2.ServerHttp2Stream) => void) =>
    Effect.acquireRelease(
      promise(() =>
        new Promise<{ server: http2.Http2Server; url: string }>((resolve) => {
          const server = http2.createServer()
          server.on("stream", (stream) => {
            stream.on("error", () => {})
            stream.on("data", () => {})
            stream.on("end", () => answer(stream))
          })
          server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` }))
        })
      ),
      ({ server }) => Effect.sync(() => void server.close())
    )

  const callRogue = (answer: (stream: http2.ServerHttp2Stream) => void) =>
    Effect.gen(function*() {
      const { url } = yield* rogue(answer)
      const client = yield* makeClient(ChatService, url, { timeoutMs: 2_000 })
      return yield* Effect.flip(client.typing({ senderId: "a", receiverId: "b" }))
    }).pipe(Effect.scoped)

  it.live("a server that misbehaves gives errors with the spec's codes, never a made-up answer", () =>
    Effect.gen(function*() {
      const ok = { ":status": 200, "content-type": "application/grpc" }
      const errors = yield* Effect.all([
        callRogue((stream) => stream.respond({ ":status": 503 }, { endStream: true })),
        callRogue((stream) => stream.respond({ ":status": 404 }, { endStream: true })),
        // A message but no status: it may have been cut short.
        callRogue((stream) => {
          stream.respond(ok)
          stream.end(frame(new Uint8Array()))
        }),
        callRogue((stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)),
        callRogue((stream) => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)),
        // OK, and no message.
        callRogue((stream) => stream.respond({ ...ok, "grpc-status": "0" }, { endStream: true })),
        // OK, and a message that does not decode.
        callRogue((stream) => {
          stream.respond(ok, { waitForTrailers: true })
          stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }))
          stream.end(frame(new Uint8Array([0x0a, 0x09])))
        }),
        // An unknown status code.
        callRogue((stream) => stream.respond({ ...ok, "grpc-status": "99" }, { endStream: true })),
        // Trailers without a status: the answer may have been cut short.
        callRogue((stream) => {
          stream.respond(ok, { waitForTrailers: true })
          stream.once("wantTrailers", () => stream.sendTrailers({ "x-other": "1" }))
          stream.end(frame(new Uint8Array()))
        }),
        // A message that is not percent-encoded, and details that do not decode: the status stands.
        callRogue((stream) => stream.respond({ ...ok, "grpc-status": "9", "grpc-message": "disk 100% full" }, { endStream: true })),
        callRogue((stream) =>
          stream.respond({ ...ok, "grpc-status": "9", "grpc-message": "no", "grpc-status-details-bin": "!!!" }, { endStream: true })
        )
      ])
      assert.deepStrictEqual(errors.map((error) => Code[error.code]), [
        "Unavailable",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "Internal",
        "Internal",
        "Internal",
        "Internal",
        "Internal",
        "FailedPrecondition",
        "FailedPrecondition"
      ])
      assert.strictEqual(errors[9]!.rawMessage, "disk 100% full")
    }))
})
