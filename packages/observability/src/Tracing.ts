import { Config, Duration, Effect, Layer, Option, References, Schema } from "effect"
import { FetchHttpClient, HttpMiddleware } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"

/**
 * Where a service's spans go. With `OTEL_EXPORTER_OTLP_ENDPOINT` (or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, they are exported over OTLP/HTTP (protobuf, or JSON
 * with `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`), in batches, under the service name
 * `im-<service>` (`OTEL_SERVICE_NAME` overrides it); otherwise there is no exporter and no span is
 * made. The standard switches `OTEL_SDK_DISABLED=true` and
 * `OTEL_TRACES_EXPORTER=none` turn export off, `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`) adds
 * request headers (e.g. a collector's token), `OTEL_BSP_SCHEDULE_DELAY` is the export interval
 * in milliseconds (default 5000) and `OTEL_RESOURCE_ATTRIBUTES` adds resource attributes.
 */
export interface TracingConfig {
  /** The traces URL (`…/v1/traces`). */
  readonly url: string
  readonly serviceName: string
  readonly protocol: "http/protobuf" | "http/json"
  readonly headers: Readonly<Record<string, string>>
  readonly exportInterval: Duration.Duration
}

const optionalString = (name: string) =>
  Config.String(name).pipe(Config.option, Config.map(Option.filter((value) => value.trim() !== "")))

const protocol = (name: string) => Config.option(Config.Literals(["http/protobuf", "http/json"], name))

/** `k=v,k2=v2`, values URI-encoded (the OpenTelemetry convention). */
export const parseHeaders = (text: string): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const pair of text.split(",")) {
    const at = pair.indexOf("=")
    if (at <= 0) continue
    headers[decodeURIComponent(pair.slice(0, at).trim()).toLowerCase()] = decodeURIComponent(pair.slice(at + 1).trim())
  }
  return headers
}

/** The export settings of `service`, or none when export is off. */
export const config = (service: string) =>
  Effect.gen(function*() {
    const disabled = yield* Config.Boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false))
    const exporter = yield* Config.String("OTEL_TRACES_EXPORTER").pipe(Config.withDefault("otlp"))
    const tracesEndpoint = yield* optionalString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    const endpoint = yield* optionalString("OTEL_EXPORTER_OTLP_ENDPOINT")
    const url = Option.isSome(tracesEndpoint)
      ? Option.some(tracesEndpoint.value)
      : Option.map(endpoint, (base) => `${base.replace(/\/+$/, "")}/v1/traces`)
    if (disabled || exporter.trim().toLowerCase() === "none" || Option.isNone(url)) return Option.none<TracingConfig>()
    const ownProtocol = yield* protocol("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    const baseProtocol = yield* protocol("OTEL_EXPORTER_OTLP_PROTOCOL")
    const ownHeaders = yield* optionalString("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
    const baseHeaders = yield* optionalString("OTEL_EXPORTER_OTLP_HEADERS")
    const serviceName = yield* optionalString("OTEL_SERVICE_NAME")
    const delay = yield* Config.schema(Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))), "OTEL_BSP_SCHEDULE_DELAY").pipe(
      Config.withDefault(5_000)
    )
    return Option.some<TracingConfig>({
      url: url.value,
      serviceName: Option.getOrElse(serviceName, () => `im-${service}`),
      protocol: Option.getOrElse(Option.orElse(ownProtocol, () => baseProtocol), () => "http/protobuf" as const),
      headers: Option.match(Option.orElse(ownHeaders, () => baseHeaders), { onNone: () => ({}), onSome: parseHeaders }),
      exportInterval: Duration.millis(Math.max(0, delay))
    })
  })

/** Exports spans as `config` says, and leaves `/metrics` scrapes out of the traces. */
export const layerOtlp = (config: TracingConfig) =>
  Layer.mergeAll(
    OtlpTracer.layer({
      url: config.url,
      resource: { serviceName: config.serviceName },
      headers: config.headers,
      exportInterval: config.exportInterval
    }).pipe(
      Layer.provide(config.protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf),
      Layer.provide(FetchHttpClient.layer)
    ),
    HttpMiddleware.layerTracerDisabledForUrls(["/metrics"])
  )

/**
 * No exporter: no spans. Nothing would read them (logs do not carry trace ids), and a span per
 * call on the message path (with its captured stack frame) is work on every message.
 */
export const layerOff: Layer.Layer<never> = Layer.succeed(References.TracerEnabled, false)

/** Tracing of the service named `service` (`ws`, `chat`, …, `standalone`), from the environment. */
export const layer = (service: string): Layer.Layer<never, Config.ConfigError> =>
  Layer.unwrap(
    Effect.map(config(service), (found): Layer.Layer<never> =>
      Option.isNone(found) ? layerOff : Layer.merge(
        layerOtlp(found.value),
        Layer.effectDiscard(Effect.logInfo("exporting traces over OTLP", { url: found.value.url, service: found.value.serviceName }))
      ))
  )
