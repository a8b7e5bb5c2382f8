import { Clock, Effect, Metric } from "effect"

/**
 * Every metric the services export, in one place (docs/observability.md lists them). Names are
 * Prometheus style with the `im_` prefix; durations are histograms in seconds, counters end in
 * `_total`. A labelled series is made once per label values and then reused, so an update on
 * the hot path is a map lookup and an addition.
 */

/** Seconds: 1 ms to 10 s. */
export const LATENCY_BUCKETS: ReadonlyArray<number> = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Items in one batch: 1 to 1,000. */
export const SIZE_BUCKETS: ReadonlyArray<number> = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]

/** The series of `metric` for each combination of the values of `names`, each made once. */
export const labelled = <const Names extends ReadonlyArray<string>, Input, State>(
  metric: Metric.Metric<Input, State>,
  names: Names
) => {
  const series = new Map<string, Metric.Metric<Input, State>>()
  return (labels: { readonly [K in Names[number]]: string }): Metric.Metric<Input, State> => {
    const values = names.map((name) => labels[name as Names[number]])
    const key = values.join("\u0000")
    let found = series.get(key)
    if (found === undefined) {
      const attributes: Record<string, string> = {}
      names.forEach((name, i) => (attributes[name] = values[i]!))
      series.set(key, found = Metric.withAttributes(metric, attributes))
    }
    return found
  }
}

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

const seconds = (name: string, description: string) =>
  Metric.histogram(name, { description, boundaries: LATENCY_BUCKETS })

const sizes = (name: string, description: string) => Metric.histogram(name, { description, boundaries: SIZE_BUCKETS })

/**
 * Adds `by` (default 1) to a counter: one step of the fiber (`Metric.update` takes two, a read
 * of the context and a `sync`; several run for every message).
 */
export const increment = (metric: Metric.Metric<number, unknown>, by = 1): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    metric.updateUnsafe(by, fiber.context)
    return Effect.void
  })

/**
 * Records how long the effect took, in seconds, whatever its outcome (an interruption too).
 * What `Effect.trackDuration` does, without its three `Duration`s and two steps per call: it
 * wraps every message's path in chat and the gateway.
 */
export const timed = (histogram: Metric.Metric<number, unknown>) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) => {
    const clock = fiber.getRef(Clock.Clock)
    const start = clock.monotonicTimeNanosUnsafe()
    return Effect.onExit(effect, () => {
      histogram.updateUnsafe(Number(clock.monotonicTimeNanosUnsafe() - start) / 1e9, fiber.context)
      return Effect.void
    })
  })

// chat

export const chatAccepted = labelled(
  counter("im_chat_accepted_total", "Messages chat accepted (the bus took them), by kind: single, group, notice."),
  ["kind"]
)
export const chatRejected = labelled(
  counter("im_chat_rejected_total", "Sends chat refused, by error code (receiver_not_found, blocked, unavailable, …)."),
  ["code"]
)
export const chatSendDuration = seconds(
  "im_chat_send_duration_seconds",
  "From a send reaching chat to its answer (the bus accepted the message, or a refusal), in seconds."
)
export const busPublished = labelled(
  counter("im_bus_published_total", "Records chat published to the bus, by topic."),
  ["topic"]
)

// ws gateway

export const gatewayConnections = Metric.gauge("im_gateway_connections", {
  description: "WebSocket sessions open on this gateway (authenticated and registered)."
})
export const gatewayFramesReceived = labelled(
  counter("im_gateway_frames_received_total", "Frames received from clients, by type: send, typing, ping, invalid."),
  ["type"]
)
export const gatewaySendDuration = seconds(
  "im_gateway_send_duration_seconds",
  "From a send frame arriving to its send_result being queued for the socket, in seconds."
)
export const gatewayDeliveries = labelled(
  counter(
    "im_gateway_deliveries_total",
    "Inbox entries pushed to this gateway, by outcome: delivered (queued for every session of the user), too_slow (a session's queue was full; it is closed), no_session (the user has no session here), dropped (test hook)."
  ),
  ["outcome"]
)

// consumer

// Each by the bus topic, i.e. the consumer's lane: one-to-one chats or group fan-outs.
export const consumerRecords = labelled(
  counter(
    "im_consumer_records_total",
    "Bus records the consumer handled (stored and pushed), by topic; a redelivered record counts again."
  ),
  ["topic"]
)
export const consumerBatches = labelled(
  counter("im_consumer_batches_total", "Batches the consumer handled, by topic and outcome: ok, failed (handed over again)."),
  ["topic", "outcome"]
)
export const consumerBatchSize = labelled(sizes("im_consumer_batch_size", "Records per batch the consumer handled, by topic."), ["topic"])
export const consumerBatchDuration = labelled(
  seconds("im_consumer_batch_duration_seconds", "Time to handle one batch (seq allocation, store, push), by topic, in seconds."),
  ["topic"]
)
export const consumerStepDuration = labelled(
  seconds(
    "im_consumer_step_duration_seconds",
    "Time of each phase of a consumer step, as the consumer waits for it (its calls' round trips included), by phase: existing (stored entries looked up in db), seqs (taken from the SeqStore, at the same time), save, push (handing the entries to the pusher's line, when pushing ahead), in seconds."
  ),
  ["phase"]
)
export const consumerLag = labelled(
  Metric.gauge("im_consumer_lag", {
    description: "Records of the topic that the consumer group has not committed yet (sampled every few seconds)."
  }),
  ["topic", "group"]
)

// db

export const inboxEntriesStored = counter(
  "im_inbox_entries_stored_total",
  "Inbox entries db stored (new ones; a replayed entry is not stored again and does not count)."
)
export const dbSaveSize = sizes("im_db_save_entries", "Inbox entries per save (one consumer batch).")
export const dbSaveDuration = seconds("im_db_save_duration_seconds", "Time to store one batch (history, inbox entries, conversations), in seconds.")

// pusher

export const pusherPushSize = sizes("im_pusher_push_entries", "Inbox entries per push (one consumer batch).")
export const pusherPushDuration = seconds(
  "im_pusher_push_duration_seconds",
  "Time to push one batch to the gateways holding its users, in seconds."
)
export const pusherDeliveries = labelled(
  counter(
    "im_pusher_deliveries_total",
    "Entries the pusher handled, by outcome: sent (to a gateway holding the user), failed (that gateway could not be reached), offline (no gateway holds the user, or Presence could not say)."
  ),
  ["outcome"]
)

// every service

export const errors = labelled(
  counter("im_errors_total", "Failures an operator should look at, by service and kind (docs/observability.md lists the kinds)."),
  ["service", "kind"]
)

/** Counts one failure of `kind` in `service`. */
export const error = (service: string, kind: string) => increment(errors({ service, kind }))

export const httpRequests = labelled(
  counter("im_http_requests_total", "HTTP requests answered, by method, route (the pattern, or unmatched) and status."),
  ["method", "route", "status"]
)

export const grpcServerRequests = labelled(
  counter("im_grpc_server_requests_total", "gRPC calls served, by method (Service/Method) and status code (ok, invalid_argument, …)."),
  ["method", "code"]
)
export const grpcServerDuration = labelled(
  seconds("im_grpc_server_duration_seconds", "Time to answer a gRPC call, by method, in seconds."),
  ["method"]
)
