import { PortError } from "@im/ports/PortError"
import { type Array as Arr, Context, Effect, Schedule } from "effect"
import type { SqlError } from "effect/sql"

/**
 * Transient failures (a dropped connection, a deadlock, a lock or statement timeout) are
 * retried here, a few times and soon: past that the caller gets a retryable PortError and
 * decides. Every statement of the adapters may run twice: writes are idempotent or, for
 * SeqStore.allocate, at worst skip numbers (never hand one out twice).
 */
const transientRetry = Schedule.exponential("25 millis", 2).pipe(Schedule.jittered)

/**
 * True while the statements run inside a transaction of several writes (SqlStoreWrites): a failed
 * statement has aborted it, so they are not retried one by one; the whole transaction is.
 */
export const InTransaction = Context.Reference<boolean>("@im/sql/InTransaction", { defaultValue: () => false })

/** An adapter operation's SqlError as the port's PortError, retryable when the error is transient. */
export const toPortError = (port: string, operation: string) => (error: SqlError.SqlError) =>
  new PortError({ port, operation, retryable: error.reason.isRetryable, cause: error })

/**
 * Maps an adapter operation's SqlError to the port's PortError and retries what is transient
 * (not inside a transaction of several writes, see InTransaction).
 */
export const portCall = (port: string, operation: string) => <A, R>(effect: Effect.Effect<A, SqlError.SqlError, R>) =>
  effect.pipe(
    Effect.mapError(toPortError(port, operation)),
    (mapped) =>
      Effect.flatMap(Effect.service(InTransaction), (inTransaction) =>
        inTransaction ? mapped : Effect.retry(mapped, { schedule: transientRetry, times: 4, while: (error) => error.retryable }))
  )

/** BIGINT columns come back as `bigint`; counts and aggregates may come back as strings. */
export const toNumber = (value: bigint | number | string | null | undefined): number =>
  value === null || value === undefined ? 0 : Number(value)

/** Splits a batch so that no statement exceeds PostgreSQL's 65,535 bind parameters. */
export const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<Arr.NonEmptyReadonlyArray<A>> => {
  const out: Array<Arr.NonEmptyReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size) as unknown as Arr.NonEmptyReadonlyArray<A>)
  return out
}
