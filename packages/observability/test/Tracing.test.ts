import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Layer, Option, Scope, Tracer } from "effect"
import * as TraceContext from "../src/TraceContext.ts"
import * as Tracing from "../src/Tracing.ts"
import { OtlpReceiver } from "../testing/OtlpReceiver.ts"

const withEnv = (env: Record<string, string>) => Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env)))

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

describe("trace context (W3C traceparent)", () => {
  it.effect("the current span goes out as a traceparent, and comes back as the remote parent", () =>
    Effect.gen(function*() {
      const headers = yield* TraceContext.currentHeaders.pipe(Effect.withSpan("sender"))
      const parent = TraceContext.parentFrom(headers)
      assert.isDefined(parent)
      assert.match(headers[TraceContext.TRACEPARENT]!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      const child = yield* Effect.currentSpan.pipe(Effect.withSpan("receiver", { parent: parent! }))
      assert.strictEqual(child.traceId, parent!.traceId)
      assert.strictEqual(Option.getOrUndefined(child.parent)?.spanId, parent!.spanId)
    }))

  it.effect("outside a span there is nothing to send; a missing or malformed header gives no parent", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* TraceContext.currentHeaders, {})
      assert.isUndefined(TraceContext.parentFrom(undefined))
      assert.isUndefined(TraceContext.parentFrom({}))
      for (const bad of ["", "00-xyz-b7ad6b7169203331-01", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", `00-${"0".repeat(32)}-b7ad6b7169203331-01`]) {
        assert.isUndefined(TraceContext.parentFrom({ traceparent: bad }), bad)
      }
      const parent = TraceContext.parentFrom({ traceparent })!
      assert.strictEqual(parent.traceId, "0af7651916cd43dd8448eb211c80319c")
      assert.strictEqual(parent.spanId, "b7ad6b7169203331")
      assert.isTrue(parent.sampled)
    }))

  it.effect("a batch's span: child of the first record's sender, links to the others', its own trace when none has one", () =>
    Effect.sync(() => {
      const other = "00-11111111111111111111111111111111-2222222222222222-01"
      const options = TraceContext.batchSpanOptions([{}, { headers: { traceparent } }, { headers: { traceparent: other } }])
      assert.strictEqual(options.kind, "consumer")
      assert.strictEqual((options.parent as Tracer.ExternalSpan).spanId, "b7ad6b7169203331")
      assert.deepStrictEqual(options.links?.map((link) => link.span.spanId), ["2222222222222222"])
      assert.isUndefined(options.root)
      const none = TraceContext.batchSpanOptions([{}, { headers: { other: "x" } }])
      assert.isTrue(none.root)
      assert.isUndefined(none.parent)
      const many = TraceContext.batchSpanOptions(Array.from({ length: 300 }, () => ({ headers: { traceparent } })))
      assert.strictEqual(many.links?.length, TraceContext.MAX_LINKS)
    }))
})

describe("OTLP export settings", () => {
  it.effect("off without an endpoint, or when switched off", () =>
    Effect.gen(function*() {
      assert.isTrue(Option.isNone(yield* Tracing.config("chat").pipe(withEnv({}))))
      const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }
      assert.isTrue(Option.isNone(yield* Tracing.config("chat").pipe(withEnv({ ...endpoint, OTEL_SDK_DISABLED: "true" }))))
      assert.isTrue(Option.isNone(yield* Tracing.config("chat").pipe(withEnv({ ...endpoint, OTEL_TRACES_EXPORTER: "none" }))))
    }))

  it.effect("Tracing.layer without an exporter makes no spans, and sends no traceparent", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(Tracing.layer("chat").pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({})))))
      const spans: Array<string> = []
      const recording = Tracer.make({
        span: (options) => {
          spans.push(options.name)
          return Tracer.nativeTracer.span(options)
        }
      })
      const headers = yield* TraceContext.currentHeaders.pipe(
        Effect.withSpan("Chat.send"),
        Effect.provideContext(context),
        Effect.withTracer(recording)
      )
      assert.deepStrictEqual(spans, [])
      assert.deepStrictEqual(headers, {})
      // The same with the tracer on: a span, and its traceparent.
      const traced = yield* TraceContext.currentHeaders.pipe(Effect.withSpan("Chat.send"), Effect.withTracer(recording))
      assert.deepStrictEqual(spans, ["Chat.send"])
      assert.match(traced[TraceContext.TRACEPARENT]!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    }))

  it.effect("from OTEL_EXPORTER_OTLP_ENDPOINT: /v1/traces under it, im-<service>, protobuf, every 5 s", () =>
    Effect.gen(function*() {
      const config = yield* Tracing.config("chat").pipe(withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }))
      assert.deepStrictEqual(Option.getOrUndefined(config), {
        url: "http://collector:4318/v1/traces",
        serviceName: "im-chat",
        protocol: "http/protobuf",
        headers: {},
        exportInterval: Duration.millis(5_000)
      })
    }))

  it.effect("the traces endpoint as given, a service name, JSON, headers and interval from the standard variables", () =>
    Effect.gen(function*() {
      const config = yield* Tracing.config("ws").pipe(withEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://ignored:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://collector.example/otlp/traces",
        OTEL_SERVICE_NAME: "gateway-eu-1",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_HEADERS: "Authorization=Bearer%20abc, x-tenant=im",
        OTEL_BSP_SCHEDULE_DELAY: "250"
      }))
      assert.deepStrictEqual(Option.getOrUndefined(config), {
        url: "https://collector.example/otlp/traces",
        serviceName: "gateway-eu-1",
        protocol: "http/json",
        headers: { authorization: "Bearer abc", "x-tenant": "im" },
        exportInterval: Duration.millis(250)
      })
    }))

  it.effect("a protocol it cannot speak (grpc) is a configuration error, not a silent no-op", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Tracing.config("db").pipe(withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }))
      )
      assert.isTrue(Exit.isFailure(exit))
    }))

  it.live("Tracing.layer exports the service's spans over OTLP/HTTP under its name", () =>
    Effect.gen(function*() {
      const receiver = new OtlpReceiver()
      yield* Effect.acquireRelease(Effect.promise(() => receiver.start()), () => Effect.promise(() => receiver.stop()))
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Tracing.layer("db").pipe(
          Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })))
        ),
        scope
      )
      yield* Effect.void.pipe(Effect.withSpan("Db.save", { attributes: { entries: 2 } }), Effect.provideContext(context))
      // Closing the scope flushes what is buffered.
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(
        receiver.spans.map((span) => ({ service: span.service, name: span.name, entries: span.attributes["entries"] })),
        [{ service: "im-db", name: "Db.save", entries: 2 }]
      )
    }).pipe(Effect.scoped))
})
