import { SendRejected } from "@im/domain/Errors"
import * as Metrics from "@im/observability/Metrics"
import { Effect } from "effect"

/**
 * What chat does with a store or the bus that failed while it accepted a send: logs `log` with
 * the error, counts it (`im_errors_total{service="chat",kind="dependency_unavailable"}`), and
 * answers the send `unavailable` with `answer`, for the client to send it again.
 */
export const unavailable = (log: string, answer: string) => (error: unknown): Effect.Effect<never, SendRejected> =>
  Effect.logError(log, error).pipe(
    Effect.andThen(Metrics.error("chat", "dependency_unavailable")),
    Effect.andThen(Effect.fail(new SendRejected({ code: "unavailable", message: answer })))
  )
