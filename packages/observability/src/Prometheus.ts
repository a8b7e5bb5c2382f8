import { Effect, Exit, Layer, Option } from "effect"
import { HttpMiddleware, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import * as Metrics from "./Metrics.ts"
import * as ProcessMetrics from "./ProcessMetrics.ts"

/** The Prometheus text exposition format, version 0.0.4. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

/**
 * The current value of every metric of this process in the Prometheus text format (HELP and
 * TYPE lines, escaped label values, histograms as cumulative `_bucket{le=…}`, `_sum` and
 * `_count`), from the metric registry all services of the process share, then the process's own
 * (event-loop delay, GC pauses, memory: ProcessMetrics).
 */
export const exposition: Effect.Effect<string> = Effect.map(PrometheusMetrics.format(), (body) => body + ProcessMetrics.exposition())

/**
 * `GET /metrics` for Prometheus to scrape. It needs no token, so it must not be reachable from
 * the public internet (see docs/observability.md); scrapes are not logged. The process figures
 * are sampled while the route is served.
 */
export const MetricsRoute = Layer.merge(
  HttpRouter.add(
    "GET",
    "/metrics",
    HttpMiddleware.withLoggerDisabled(
      Effect.map(exposition, (body) => HttpServerResponse.text(body, { contentType: CONTENT_TYPE }))
    )
  ),
  ProcessMetrics.layer
)

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])

/**
 * Counts every request the router answers in `im_http_requests_total`, labelled with the route
 * pattern (`/groups/:id`, not the path, so that the series stay few) or `unmatched`. A
 * WebSocket (`/ws`) counts when it closes.
 */
export const RequestMetrics = HttpRouter.middleware(
  (httpEffect) =>
    Effect.flatMap(Effect.service(HttpServerRequest.HttpServerRequest), (request) =>
      Effect.onExit(httpEffect, (exit) =>
        Effect.gen(function*() {
          // The router has put the matched route in the request's context by now.
          const matched = yield* Effect.serviceOption(HttpRouter.RouteContext)
          // A failure becomes the response the server will send for it (404, 500, …).
          const status = Exit.isSuccess(exit) ? exit.value.status : (yield* HttpServerError.causeResponse(exit.cause))[0].status
          yield* Metrics.increment(Metrics.httpRequests({
            method: KNOWN_METHODS.has(request.method) ? request.method : "other",
            route: Option.isSome(matched) ? matched.value.route.path : "unmatched",
            status: String(status)
          }))
        }))),
  { global: true }
)

/** Both, for an HTTP server's router: `/metrics` and the request counts. */
export const MetricsHttp = Layer.mergeAll(MetricsRoute, RequestMetrics)
