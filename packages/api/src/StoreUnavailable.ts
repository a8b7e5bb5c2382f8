import { ServiceUnavailable } from "@im/domain/Errors"
import type { PortError } from "@im/ports/PortError"
import { Effect } from "effect"

/** A store failed: logged with what failed, answered 503 so that the client retries. */
export const storeUnavailable = (error: PortError) =>
  Effect.logError(`${error.port} failed`, error).pipe(
    Effect.andThen(Effect.fail(new ServiceUnavailable({ message: "storage is unavailable, try again" })))
  )
