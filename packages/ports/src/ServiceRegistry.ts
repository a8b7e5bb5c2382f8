import { Context, Effect, Layer, type Scope, Stream, SubscriptionRef } from "effect"
import type { PortError } from "./PortError.ts"

export interface ServiceInstance {
  /** Unique per instance, e.g. `ws-127.0.0.1-7001`. */
  readonly id: string
  /** The service name: ws, chat, consumer, db, pusher or api. */
  readonly service: string
  readonly host: string
  readonly port: number
  readonly meta?: Readonly<Record<string, string>>
}

/**
 * Where the instances of each service are. An instance is registered for the lifetime of the
 * scope `register` runs in (real adapters add a health check), and `watch` follows changes.
 */
export class ServiceRegistry extends Context.Service<ServiceRegistry, {
  readonly register: (instance: ServiceInstance) => Effect.Effect<void, PortError, Scope.Scope>
  /** The healthy instances of a service. */
  readonly healthy: (service: string) => Effect.Effect<ReadonlyArray<ServiceInstance>, PortError>
  /** The healthy instances now, then after every change. */
  readonly watch: (service: string) => Stream.Stream<ReadonlyArray<ServiceInstance>, PortError>
}>()("@im/ports/ServiceRegistry") {
  /** An in-process registry: every instance is healthy while registered. */
  static readonly layerMemory = Layer.effect(
    ServiceRegistry,
    Effect.gen(function*() {
      const instances = yield* SubscriptionRef.make<ReadonlyMap<string, ServiceInstance>>(new Map())
      const ofService = (all: ReadonlyMap<string, ServiceInstance>, service: string) =>
        [...all.values()].filter((instance) => instance.service === service)
      return ServiceRegistry.of({
        register: (instance) =>
          Effect.acquireRelease(
            SubscriptionRef.update(instances, (all) => new Map(all).set(instance.id, instance)),
            () =>
              SubscriptionRef.update(instances, (all) => {
                const next = new Map(all)
                next.delete(instance.id)
                return next
              })
          ),
        healthy: (service) => Effect.map(SubscriptionRef.get(instances), (all) => ofService(all, service)),
        watch: (service) =>
          SubscriptionRef.changes(instances).pipe(
            Stream.map((all) => ofService(all, service)),
            Stream.changesWith((a, b) => a.length === b.length && a.every((x, i) => x.id === b[i]!.id))
          )
      })
    })
  )
}
