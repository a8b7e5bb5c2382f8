import { create, type DescMethod, type DescService, fromBinary, isMessage, toBinary } from "@bufbuild/protobuf"
import { type Client, Code, ConnectError, type ServiceImpl } from "@connectrpc/connect"
import { parseTimeout } from "@connectrpc/connect/protocol-grpc"
import * as Metrics from "@im/observability/Metrics"
import * as TraceContext from "@im/observability/TraceContext"
import { Cause, Context, Data, Effect, Exit, Layer, Option, type Scope } from "effect"
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  createServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Stream
} from "node:http2"
import {
  Body,
  CONTENT_TYPE,
  errorOfHttpStatus,
  errorOfResetCode,
  errorOfStatus,
  errorOfTransport,
  frame,
  MAX_MESSAGE_BYTES,
  isGrpcContentType,
  statusFields,
  timeoutField
} from "./GrpcWire.ts"

/**
 * gRPC between the services: services implemented as Effects, served on one HTTP/2 port, and
 * clients whose calls are Effects. Unary methods only, which is all the service boundaries use.
 *
 * Both ends speak gRPC on Node's own HTTP/2 streams (`GrpcWire`), with ConnectRPC's error type
 * and status encoding: any gRPC client or server talks to them (`GrpcContract.test.ts` calls
 * them from @grpc/grpc-js). ConnectRPC's own server and transport were the first ends; a call
 * through them cost 650 µs of CPU for both sides here against 90 µs on the streams directly
 * (docs/benchmarks.md, "gRPC on Node's streams"), and the services make hundreds a second.
 */

type UnaryMethods<S extends DescService> = {
  readonly [K in keyof ServiceImpl<S>]: ServiceImpl<S>[K] extends (request: infer I, ...rest: infer _) => infer O
    ? (request: I) => Awaited<O>
    : never
}

/** A service's methods as Effects. */
export type EffectImpl<S extends DescService, E, R> = {
  readonly [K in keyof UnaryMethods<S>]: (
    ...args: Parameters<UnaryMethods<S>[K]>
  ) => Effect.Effect<ReturnType<UnaryMethods<S>[K]>, E, R>
}

/** A method as the server runs it: the request decoded, the answer or a gRPC error. */
interface Route {
  readonly method: DescMethod
  readonly handle: (request: unknown, traceparent: string | undefined) => Effect.Effect<unknown, ConnectError>
}

/** Where `implement` registers services while the server's layer is built. */
export class GrpcRoutes extends Context.Service<GrpcRoutes, {
  readonly add: (path: string, route: Route) => void
}>()("@im/proto/GrpcRoutes") {}

/** `invalid_argument` for Code.InvalidArgument: the status label of the gRPC metrics. */
const codeLabel = (code: Code): string => (Code[code] ?? "Unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase()

const pathOf = (service: DescService, method: DescMethod) => `/${service.typeName}/${method.name}`

/**
 * Registers an Effect implementation of a service. Each call runs in a span named after the
 * method (a child of the caller's span when the request carries a `traceparent` header), is
 * counted and timed (`im_grpc_server_*`), is interrupted when the client cancels or its
 * deadline passes, turns typed failures into gRPC errors with `toConnectError`, and defects
 * into INTERNAL (logged, not leaked).
 */
export const implement = <S extends DescService, E, R, EB, RB>(
  service: S,
  build: Effect.Effect<EffectImpl<S, E | ConnectError, R>, EB, RB>,
  options: { readonly toConnectError: (error: E) => ConnectError }
): Layer.Layer<never, EB, GrpcRoutes | RB | R> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const impl = yield* build as Effect.Effect<
      Record<string, (request: unknown) => Effect.Effect<unknown, E | ConnectError, R>>,
      EB,
      RB
    >
    const context = yield* Effect.context<R>()
    const routes = yield* GrpcRoutes
    const toConnectError = (error: E | ConnectError): ConnectError =>
      // Codecs fail with ConnectError directly (e.g. INVALID_ARGUMENT for a bad message).
      error instanceof ConnectError ? error : options.toConnectError(error)
    for (const method of service.methods) {
      const run = impl[method.localName]
      if (run === undefined) continue
      // Spans and metrics name the method as the generated code does (`sendBatch`).
      const spanName = `grpc.server ${service.typeName}/${method.localName}`
      const metricLabels = { method: `${service.typeName}/${method.localName}` }
      const duration = Metrics.grpcServerDuration(metricLabels)
      const codeOf = (exit: Exit.Exit<unknown, ConnectError>): string => {
        if (Exit.isSuccess(exit)) return "ok"
        const failure = Cause.findErrorOption(exit.cause)
        if (Option.isSome(failure)) return codeLabel(failure.value.code)
        return codeLabel(Cause.hasInterruptsOnly(exit.cause) ? Code.Canceled : Code.Internal)
      }
      routes.add(pathOf(service, method), {
        method,
        handle: (request, traceparent) => {
          const parent = TraceContext.parentFrom({ [TraceContext.TRACEPARENT]: traceparent })
          // Suspended: a method that throws before making its Effect is a defect like any other.
          return Effect.suspend(() => run(request)).pipe(
            Effect.mapError(toConnectError),
            Effect.onExit((exit) => Metrics.increment(Metrics.grpcServerRequests({ ...metricLabels, code: codeOf(exit) }))),
            Metrics.timed(duration),
            // The handler's own frame says nothing: no stack captured per call.
            TraceContext.span(spanName, parent === undefined ? { kind: "server" } : { kind: "server", parent }),
            Effect.catchDefect((defect) =>
              Effect.logError(`${spanName} failed`, Cause.die(defect)).pipe(
                Effect.andThen(Effect.fail(new ConnectError("internal error", Code.Internal)))
              )
            ),
            Effect.provideContext(context)
          )
        }
      })
    }
  }))

/**
 * Whether the stream can still take an answer: not answered, and not closed by the client (a
 * stream it reset is closed before Node destroys it, and `respond` on it throws).
 */
const answerable = (stream: ServerHttp2Stream) => !stream.headersSent && !stream.closed && !stream.destroyed

/**
 * Answers on the stream if it can still take one. Node may still refuse (the session going away
 * meanwhile): the client has gone, and nobody is left to tell.
 */
const answer = (stream: ServerHttp2Stream, write: () => void) => {
  if (!answerable(stream)) return
  try {
    write()
  } catch {
    stream.destroy()
  }
}

/** A response that is only a status: one HEADERS frame, which ends the stream. */
const respondStatus = (stream: ServerHttp2Stream, error: ConnectError, extra: Record<string, string> = {}) =>
  answer(stream, () => stream.respond({ ":status": 200, "content-type": CONTENT_TYPE, ...extra, ...statusFields(error) }, { endStream: true }))

/** A request that is not gRPC: a bare HTTP status, as the spec asks. */
const respondHttp = (stream: ServerHttp2Stream, status: number) =>
  answer(stream, () => stream.respond({ ":status": status }, { endStream: true }))

const respondMessage = (stream: ServerHttp2Stream, method: DescMethod, message: unknown) => {
  let bytes: Uint8Array
  try {
    bytes = toBinary(method.output, isMessage(message, method.output) ? message : create(method.output, message as never))
  } catch (cause) {
    return respondStatus(stream, new ConnectError(`cannot encode the answer: ${String(cause)}`, Code.Internal))
  }
  answer(stream, () => {
    stream.respond({ ":status": 200, "content-type": CONTENT_TYPE, "grpc-accept-encoding": "identity" }, { waitForTrailers: true })
    stream.once("wantTrailers", () => {
      if (!stream.closed && !stream.destroyed) stream.sendTrailers(statusFields(undefined))
    })
    stream.end(frame(bytes))
  })
}

/** Deadlines longer than this are taken as this long (the spec's 8 digits of hours are far longer than any call needs). */
const MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000

/** Serves one call on its HTTP/2 stream: checks what it asks for, reads its message, runs the route, answers. */
const serveStream = (routes: ReadonlyMap<string, Route>) => (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
  // A stream's errors (the client gone) end it; the call sees its close.
  stream.on("error", () => {})
  if (headers[":method"] !== "POST") return respondHttp(stream, 405)
  if (!isGrpcContentType(headers["content-type"])) return respondHttp(stream, 415)
  const path = headers[":path"] ?? ""
  const route = routes.get(path)
  if (route === undefined) return respondStatus(stream, new ConnectError(`${path} is not a method of this server`, Code.Unimplemented))
  const encoding = headers["grpc-encoding"]
  if (encoding !== undefined && encoding !== "identity") {
    return respondStatus(
      stream,
      new ConnectError(`compression "${encoding}" is not supported`, Code.Unimplemented),
      { "grpc-accept-encoding": "identity" }
    )
  }
  const timeoutHeader = headers["grpc-timeout"]
  const timeout = parseTimeout(typeof timeoutHeader === "string" ? timeoutHeader : null, MAX_TIMEOUT_MS)
  // Only a deadline that does not parse is refused; a long one is shortened.
  if (timeout.error !== undefined && timeout.timeoutMs === undefined) return respondStatus(stream, timeout.error)
  const timeoutMs = timeout.timeoutMs === undefined ? undefined : Math.min(timeout.timeoutMs, MAX_TIMEOUT_MS)
  const traceparent = headers[TraceContext.TRACEPARENT]

  const body = new Body()
  stream.on("data", (chunk: Buffer) => {
    if (!body.push(chunk)) respondStatus(stream, new ConnectError(`a message is larger than ${MAX_MESSAGE_BYTES} bytes`, Code.ResourceExhausted))
  })
  stream.once("end", () => {
    // Answered already (a refusal), or reset by the client: nothing to run.
    if (!answerable(stream) || stream.aborted) return
    const message = body.message()
    if (!("bytes" in message)) return respondStatus(stream, new ConnectError(message.problem, message.code ?? Code.InvalidArgument))
    let request: unknown
    try {
      request = fromBinary(route.method.input, message.bytes)
    } catch (cause) {
      return respondStatus(stream, new ConnectError(`cannot decode the request: ${String(cause)}`, Code.InvalidArgument))
    }
    const fiber = Effect.runFork(route.handle(request, typeof traceparent === "string" ? traceparent : undefined))
    let deadlinePassed = false
    // The client cancelled, or went away: the call is interrupted, nobody hears the answer.
    const onClose = () => fiber.interruptUnsafe()
    stream.once("close", onClose)
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
      deadlinePassed = true
      fiber.interruptUnsafe()
    }, timeoutMs)
    fiber.addObserver((exit) => {
      clearTimeout(timer)
      stream.off("close", onClose)
      if (Exit.isSuccess(exit)) return respondMessage(stream, route.method, exit.value)
      const failure = Cause.findErrorOption(exit.cause)
      respondStatus(
        stream,
        Option.isSome(failure)
          ? failure.value
          : deadlinePassed
          ? new ConnectError("the deadline passed", Code.DeadlineExceeded)
          : new ConnectError("cancelled", Code.Canceled)
      )
    })
  })
}

export class GrpcServeError extends Data.TaggedError("GrpcServeError")<{ readonly cause: unknown }> {}

/** The HTTP/2 server serving every service registered while `app` was built. */
export class GrpcServer extends Context.Service<GrpcServer, {
  readonly port: number
  readonly server: Http2Server
}>()("@im/proto/GrpcServer") {}

/** Builds `app` (its `implement` layers), then serves them on host:port (0 picks a free port). */
export const serve = <E, R>(
  app: Layer.Layer<never, E, R>,
  options: { readonly host: string; readonly port: number }
): Layer.Layer<GrpcServer, E | GrpcServeError, Exclude<R, GrpcRoutes>> =>
  Layer.effect(
    GrpcServer,
    Effect.gen(function*() {
      const routes = new Map<string, Route>()
      yield* Layer.build(app).pipe(
        Effect.provideService(GrpcRoutes, GrpcRoutes.of({ add: (path, route) => void routes.set(path, route) }))
      )
      const server = yield* Effect.acquireRelease(
        Effect.callback<Http2Server, GrpcServeError>((resume) => {
          const server = createServer()
          server.on("stream", serveStream(routes))
          server.once("error", (cause) => resume(Effect.fail(new GrpcServeError({ cause }))))
          server.listen(options.port, options.host, () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : options.port
      return GrpcServer.of({ port, server })
    })
  ) as Layer.Layer<GrpcServer, E | GrpcServeError, Exclude<R, GrpcRoutes>>

/** A service's client whose calls are Effects failing with ConnectError. */
export type EffectClient<S extends DescService> = {
  readonly [K in keyof Client<S>]: Client<S>[K] extends (request: infer I, options?: infer _O) => Promise<infer O>
    ? (request: I) => Effect.Effect<O, ConnectError>
    : never
}

/** How long a session may take to connect; then it is dropped, and its calls fail UNAVAILABLE. */
const CONNECT_TIMEOUT_MS = 5_000
/** How long a ping may go unanswered before its session is taken for dead. */
const PING_TIMEOUT_MS = 5_000
/** Calls per session before the next one opens a new session (HTTP/2 runs out of stream ids at 2^30 calls). */
const CALLS_PER_SESSION = 2 ** 29

/**
 * One HTTP/2 session to a server, opened on the first call and again on the first call after it
 * closed or was told to go away (a restart): calls in flight on a lost session fail UNAVAILABLE.
 * A session that does not connect within CONNECT_TIMEOUT_MS is dropped, and so is one that does
 * not answer a ping, which `check` sends when a call got no answer in time (a peer gone without
 * closing its connection: without it every later call would wait out its deadline).
 */
class Session {
  private current: ClientHttp2Session | undefined
  private calls = 0
  private checking = false
  private closed = false
  private readonly url: string

  constructor(url: string) {
    this.url = url
  }

  /** The session for the next call. */
  get(): ClientHttp2Session {
    const current = this.current
    const usable = current !== undefined && !current.closed && !current.destroyed
    if (usable && this.calls < CALLS_PER_SESSION) {
      this.calls++
      return current
    }
    if (this.closed) throw new Error("the client was closed")
    // Worn out: it finishes the calls it has, then closes.
    if (usable) current.close()
    const session = connect(this.url)
    // Its streams report what went wrong, to their calls.
    session.on("error", () => {})
    const connecting = setTimeout(() => session.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS)
    session.once("connect", () => clearTimeout(connecting))
    const forget = () => {
      clearTimeout(connecting)
      if (this.current === session) this.current = undefined
    }
    session.once("close", forget)
    session.once("goaway", forget)
    this.current = session
    this.calls = 1
    this.checking = false
    return session
  }

  /** A call on `session` got no answer in time: is the server still there? */
  check(session: ClientHttp2Session) {
    if (session !== this.current || this.checking || session.connecting || session.closed || session.destroyed) return
    this.checking = true
    const dead = () => session.destroy(new Error(`no answer to a ping within ${PING_TIMEOUT_MS} ms`))
    const timer = setTimeout(dead, PING_TIMEOUT_MS)
    const answered = (error: Error | null) => {
      clearTimeout(timer)
      if (this.current === session) this.checking = false
      if (error !== null) dead()
    }
    if (!session.ping(answered)) answered(null)
  }

  close() {
    this.closed = true
    this.current?.destroy()
    this.current = undefined
  }
}

/**
 * A stream that ended before its answer did: reset by the server (the spec's code for the
 * reset), or lost with its session (no connection, the connection gone: Node then closes it
 * with an error code of its own, and the error says why).
 */
const errorOfBrokenStream = (stream: ClientHttp2Stream, failure: unknown): ConnectError => {
  const resetByPeer = failure === undefined || (failure as { code?: unknown }).code === "ERR_HTTP2_STREAM_ERROR"
  return (resetByPeer ? errorOfResetCode(stream.rstCode ?? constants.NGHTTP2_NO_ERROR) : undefined) ??
    errorOfTransport(failure ?? "the stream closed with no answer")
}

/** The answer a finished stream gave: its message, or the error its status, HTTP status or reset says. */
const outcomeOf = (
  method: DescMethod,
  headers: IncomingHttpHeaders | undefined,
  trailers: IncomingHttpHeaders | undefined,
  body: Body,
  stream: ClientHttp2Stream,
  failure: unknown
): Exit.Exit<unknown, ConnectError> => {
  if (headers === undefined) return Exit.fail(errorOfBrokenStream(stream, failure))
  const status = Number(headers[":status"])
  if (status !== 200) return Exit.fail(errorOfHttpStatus(status))
  // A status in the headers is a trailers-only response.
  const fields = trailers ?? (headers["grpc-status"] === undefined ? undefined : headers)
  if (fields === undefined) {
    return Exit.fail(
      failure === undefined && stream.rstCode === constants.NGHTTP2_NO_ERROR
        ? new ConnectError("the answer has no grpc-status", Code.Internal)
        : errorOfBrokenStream(stream, failure)
    )
  }
  const error = errorOfStatus(fields)
  if (error !== undefined) return Exit.fail(error)
  if (!isGrpcContentType(headers["content-type"] as string | undefined)) {
    return Exit.fail(new ConnectError(`the answer's content type is ${headers["content-type"]}`, Code.Internal))
  }
  const message = body.message()
  if (!("bytes" in message)) return Exit.fail(new ConnectError(`the answer: ${message.problem}`, message.code ?? Code.Internal))
  try {
    return Exit.succeed(fromBinary(method.output, message.bytes))
  } catch (cause) {
    return Exit.fail(new ConnectError(`cannot decode the answer: ${String(cause)}`, Code.Internal))
  }
}

/** One unary call on the session: cancelled (RST_STREAM CANCEL) when interrupted or when `timeoutMs` passes. */
const unaryCall = (
  session: Session,
  method: DescMethod,
  path: string,
  request: unknown,
  traceHeaders: Readonly<Record<string, string>>,
  timeoutMs: number | undefined
) =>
  Effect.callback<unknown, ConnectError>((resume) => {
    let bytes: Uint8Array
    let http2Session: ClientHttp2Session
    let stream: ClientHttp2Stream
    try {
      bytes = toBinary(method.input, isMessage(request, method.input) ? request : create(method.input, request as never))
    } catch (cause) {
      return resume(Effect.fail(new ConnectError(`cannot encode the request: ${String(cause)}`, Code.Internal)))
    }
    try {
      http2Session = session.get()
      stream = http2Session.request({
        ":method": "POST",
        ":path": path,
        "content-type": CONTENT_TYPE,
        te: "trailers",
        "grpc-accept-encoding": "identity",
        ...(timeoutMs === undefined ? {} : { "grpc-timeout": timeoutField(timeoutMs) }),
        ...traceHeaders
      })
    } catch (cause) {
      return resume(Effect.fail(errorOfTransport(cause)))
    }
    let done = false
    let headers: IncomingHttpHeaders | undefined
    let trailers: IncomingHttpHeaders | undefined
    let failure: unknown
    const body = new Body()
    const finish = (exit: Exit.Exit<unknown, ConnectError>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resume(exit)
    }
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
      finish(Exit.fail(
        http2Session.connecting
          ? new ConnectError(`no connection to the server within ${timeoutMs} ms`, Code.Unavailable)
          : new ConnectError(`no answer within ${timeoutMs} ms`, Code.DeadlineExceeded)
      ))
      stream.close(constants.NGHTTP2_CANCEL)
      session.check(http2Session)
    }, timeoutMs)
    stream.on("response", (fields) => void (headers = fields))
    stream.on("trailers", (fields) => void (trailers = fields))
    stream.on("data", (chunk: Buffer) => void body.push(chunk))
    stream.on("error", (cause) => void (failure = cause))
    stream.once("close", () => {
      let outcome: Exit.Exit<unknown, ConnectError>
      try {
        outcome = outcomeOf(method, headers, trailers, body, stream, failure)
      } catch (cause) {
        outcome = Exit.fail(new ConnectError(`cannot read the answer: ${String(cause)}`, Code.Internal))
      }
      finish(outcome)
    })
    stream.end(frame(bytes))
    return Effect.sync(() => {
      done = true
      clearTimeout(timer)
      stream.close(constants.NGHTTP2_CANCEL)
    })
  })

/**
 * A gRPC client of `service` at `baseUrl` (`http://host:port`), over one HTTP/2 session that is
 * closed with the scope. Each call has a deadline of `timeoutMs`, is cancelled if interrupted,
 * and carries its span's trace context (`traceparent`) so that the server's span joins the trace.
 */
export const makeClient = <S extends DescService>(
  service: S,
  baseUrl: string,
  options: { readonly timeoutMs?: number } = {}
): Effect.Effect<EffectClient<S>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const session = yield* Effect.acquireRelease(
      Effect.sync(() => new Session(baseUrl)),
      (session) => Effect.sync(() => session.close())
    )
    const methods: Record<string, (request: unknown) => Effect.Effect<unknown, ConnectError>> = {}
    for (const method of service.methods) {
      const path = pathOf(service, method)
      const spanName = `grpc.client ${service.typeName}/${method.localName}`
      methods[method.localName] = (request) =>
        Effect.flatMap(TraceContext.currentHeaders, (headers) =>
          unaryCall(session, method, path, request, headers, options.timeoutMs)).pipe(
            TraceContext.span(spanName, { kind: "client" })
          )
    }
    return methods as unknown as EffectClient<S>
  })
