import type { DescService } from "@bufbuild/protobuf"
import {
  type Client,
  Code,
  ConnectError,
  type ConnectRouter,
  createClient,
  type HandlerContext,
  type ServiceImpl
} from "@connectrpc/connect"
import { connectNodeAdapter, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node"
import * as Metrics from "@im/observability/Metrics"
import * as TraceContext from "@im/observability/TraceContext"
import { Cause, Context, Data, Effect, Exit, Layer, Option, type Scope } from "effect"
import { createServer, type Http2Server } from "node:http2"

/**
 * The glue between Effect and ConnectRPC (gRPC over HTTP/2): services implemented as Effects,
 * served on one HTTP/2 port, and clients whose calls are Effects. Unary methods only, which is
 * all the service boundaries use.
 */

type UnaryMethods<S extends DescService> = {
  readonly [K in keyof ServiceImpl<S>]: ServiceImpl<S>[K] extends (request: infer I, context: HandlerContext) => infer O
    ? (request: I, context: HandlerContext) => Awaited<O>
    : never
}

/** A service's methods as Effects. */
export type EffectImpl<S extends DescService, E, R> = {
  readonly [K in keyof UnaryMethods<S>]: (
    ...args: Parameters<UnaryMethods<S>[K]>
  ) => Effect.Effect<ReturnType<UnaryMethods<S>[K]>, E, R>
}

/** Where `implement` registers services while the server's layer is built. */
export class GrpcRoutes extends Context.Service<GrpcRoutes, {
  readonly add: (register: (router: ConnectRouter) => void) => void
}>()("@im/proto/GrpcRoutes") {}

/** `invalid_argument` for Code.InvalidArgument: the status label of the gRPC metrics. */
const codeLabel = (code: Code): string => (Code[code] ?? "Unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase()

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
    const impl = yield* build
    const context = yield* Effect.context<R>()
    const routes = yield* GrpcRoutes
    const run = Effect.runPromiseExitWith(context)
    const handlers: Record<string, (request: unknown, ctx: HandlerContext) => Promise<unknown>> = {}
    for (const [name, method] of Object.entries(impl) as Array<[string, (request: unknown, ctx: HandlerContext) => Effect.Effect<unknown, E, R>]>) {
      const spanName = `grpc.server ${service.typeName}/${name}`
      const metricLabels = { method: `${service.typeName}/${name}` }
      const duration = Metrics.grpcServerDuration(metricLabels)
      const codeOf = (exit: Exit.Exit<unknown, E | ConnectError>): string => {
        if (Exit.isSuccess(exit)) return "ok"
        const failure = Cause.findErrorOption(exit.cause)
        if (Option.isSome(failure)) {
          return codeLabel(failure.value instanceof ConnectError ? failure.value.code : options.toConnectError(failure.value as E).code)
        }
        return codeLabel(Cause.hasInterruptsOnly(exit.cause) ? Code.Canceled : Code.Internal)
      }
      handlers[name] = async (request, ctx) => {
        const parent = TraceContext.parentFrom({ [TraceContext.TRACEPARENT]: ctx.requestHeader.get(TraceContext.TRACEPARENT) ?? undefined })
        const exit = await run(
          method(request, ctx).pipe(
            Effect.onExit((exit) => Metrics.increment(Metrics.grpcServerRequests({ ...metricLabels, code: codeOf(exit) }))),
            Metrics.timed(duration),
            // The handler's own frame says nothing: no stack captured per call.
            TraceContext.span(spanName, parent === undefined ? { kind: "server" } : { kind: "server", parent })
          ),
          { signal: ctx.signal }
        )
        if (Exit.isSuccess(exit)) return exit.value
        const failure = Cause.findErrorOption(exit.cause)
        if (Option.isSome(failure)) {
          // Codecs fail with ConnectError directly (e.g. INVALID_ARGUMENT for a bad message).
          throw failure.value instanceof ConnectError ? failure.value : options.toConnectError(failure.value as E)
        }
        if (Cause.hasInterruptsOnly(exit.cause)) throw new ConnectError("cancelled", Code.Canceled)
        await run(Effect.logError(`${spanName} failed`, exit.cause))
        throw new ConnectError("internal error", Code.Internal)
      }
    }
    routes.add((router) => router.service(service, handlers as unknown as Partial<ServiceImpl<S>>))
  }))

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
      const registrations: Array<(router: ConnectRouter) => void> = []
      yield* Layer.build(app).pipe(
        Effect.provideService(GrpcRoutes, GrpcRoutes.of({ add: (register) => void registrations.push(register) }))
      )
      const server = yield* Effect.acquireRelease(
        Effect.callback<Http2Server, GrpcServeError>((resume) => {
          const server = createServer(connectNodeAdapter({
            routes: (router) => registrations.forEach((register) => register(router))
          }))
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
    const sessions = yield* Effect.acquireRelease(
      Effect.sync(() => new Http2SessionManager(baseUrl)),
      (manager) => Effect.sync(() => manager.abort())
    )
    const client = createClient(service, createGrpcTransport({ baseUrl, sessionManager: sessions, acceptCompression: [] })) as unknown as Record<
      string,
      (request: unknown, options: { signal: AbortSignal; timeoutMs?: number; headers: Readonly<Record<string, string>> }) => Promise<unknown>
    >
    const methods: Record<string, (request: unknown) => Effect.Effect<unknown, ConnectError>> = {}
    for (const name of Object.keys(client)) {
      methods[name] = (request) =>
        Effect.flatMap(TraceContext.currentHeaders, (headers) =>
          Effect.tryPromise({
            try: (signal) =>
              client[name]!(request, { signal, headers, ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }) }),
            catch: (cause) => ConnectError.from(cause)
          })).pipe(TraceContext.span(`grpc.client ${service.typeName}/${name}`, { kind: "client" }))
    }
    return methods as unknown as EffectClient<S>
  })
