import { ServiceRegistry } from "@im/ports/ServiceRegistry"
import { Effect, Layer } from "effect"
import { hostname } from "node:os"

/**
 * Registers this process as an instance of `service` for the lifetime of the layer. Built after
 * the servers it announces, so on shutdown it is released first: the instance leaves the
 * registry before it stops taking work.
 */
export const layer = (options: {
  readonly service: string
  readonly host: string
  readonly port: number
  /** Defaults to `<service>-<hostname>-<port>-<pid>`, unique per process. */
  readonly id?: string
  readonly meta?: Readonly<Record<string, string>>
}) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const registry = yield* ServiceRegistry
    const id = options.id ?? `${options.service}-${hostname()}-${options.port}-${process.pid}`
    yield* registry.register({
      id,
      service: options.service,
      host: options.host,
      port: options.port,
      ...(options.meta === undefined ? {} : { meta: options.meta })
    })
    yield* Effect.logInfo(`registered as ${id}`, { service: options.service, address: `${options.host}:${options.port}` })
    yield* Effect.addFinalizer(() => Effect.logInfo(`deregistered ${id}`))
  }))
