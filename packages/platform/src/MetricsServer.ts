import { NodeHttpServer } from "@effect/platform-node"
import { MetricsRoute } from "@im/observability/Prometheus"
import { Config, Effect, Layer } from "effect"
import { HttpRouter } from "effect/http"
import { createServer } from "node:http"

/**
 * `GET /metrics` on a small HTTP/1.1 server of its own, for the services that have no HTTP
 * server (chat, db and pusher speak gRPC over HTTP/2, which Prometheus does not scrape; the
 * consumer serves nothing). It listens on METRICS_HOST:METRICS_PORT, by default the given
 * address: the service's own host, and its gRPC port + 1000.
 */
export const layer = (defaults: { readonly host: string; readonly port: number }) =>
  Layer.unwrap(Effect.gen(function*() {
    const host = yield* Config.String("METRICS_HOST").pipe(Config.withDefault(defaults.host))
    const port = yield* Config.Port("METRICS_PORT").pipe(Config.withDefault(defaults.port))
    return HttpRouter.serve(MetricsRoute, { disableLogger: true }).pipe(
      Layer.provide(NodeHttpServer.layer(createServer, { host, port }))
    )
  }))

/** The default metrics port of a service whose gRPC port is `grpcPort`. */
export const defaultPort = (grpcPort: number) => grpcPort + 1000

/** The consumer's default metrics port (it has no port of its own); a second consumer on the same host needs its own METRICS_PORT. */
export const CONSUMER_DEFAULT_PORT = 8110
