import type { UserId } from "@im/domain/Ids"
import type { Delivery } from "@im/domain/Message"
import { Effect, Layer } from "effect"
import { Pusher } from "../src/Pusher.ts"

/** A Pusher test double that records what it is asked to push and signal, and sends nothing. */
export const recordingPusher = () => {
  const pushed: Array<Delivery> = []
  const signals: Array<{ readonly users: ReadonlyArray<UserId>; readonly frame: unknown }> = []
  const layer = Layer.succeed(
    Pusher,
    Pusher.of({
      push: (deliveries) => Effect.sync(() => void pushed.push(...deliveries)),
      signal: (users, frame) => Effect.sync(() => void signals.push({ users, frame: JSON.parse(frame) }))
    })
  )
  return { layer, pushed, signals }
}
