import { NodeRuntime } from "@effect/platform-node"
import { Cause, Exit, Layer } from "effect"
import * as Runtime from "effect/Runtime"

/**
 * Runs a service's layer until SIGINT or SIGTERM, then releases it (the graceful shutdown the
 * layers define) and exits 0; a failure exits non-zero as usual.
 */
export const run = <E>(layer: Layer.Layer<never, E>) =>
  Layer.launch(layer).pipe(NodeRuntime.runMain({
    teardown: (exit, onExit) =>
      Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
  }))
