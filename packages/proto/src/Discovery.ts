import type { DescService } from "@bufbuild/protobuf"
import { ServiceRegistry, type ServiceInstance } from "@im/ports/ServiceRegistry"
import * as Vital from "@im/ports/Vital"
import { Data, Effect, Scope, Stream } from "effect"
import { type EffectClient, makeClient } from "./Grpc.ts"

export class NoInstance extends Data.TaggedError("NoInstance")<{ readonly service: string }> {
  override get message() {
    return `no healthy instance of ${this.service} is registered`
  }
}

/**
 * Clients of every healthy instance of `service`, followed through the registry while the scope
 * lives: `pick` takes the next instance round-robin, so instances that join are used at once
 * and instances that leave are not called again. One client per address, kept for the scope.
 */
export const discover = <S extends DescService>(
  name: string,
  service: S,
  options: { readonly timeoutMs?: number } = {}
): Effect.Effect<{ readonly pick: Effect.Effect<EffectClient<S>, NoInstance> }, never, ServiceRegistry | Scope.Scope> =>
  Effect.gen(function*() {
    const registry = yield* ServiceRegistry
    const scope = yield* Effect.scope
    let instances: ReadonlyArray<ServiceInstance> = []
    // A watch that ends would leave the instances as they were for good (Vital: the service stops).
    yield* Vital.forkScoped(
      `following the ${name} instances`,
      registry.watch(name).pipe(Stream.runForEach((current) => Effect.sync(() => void (instances = current))))
    )
    const clients = new Map<string, EffectClient<S>>()
    let next = 0
    const pick = Effect.suspend(() => {
      if (instances.length === 0) return Effect.fail(new NoInstance({ service: name }))
      const instance = instances[next++ % instances.length]!
      const url = `http://${instance.host}:${instance.port}`
      const cached = clients.get(url)
      if (cached !== undefined) return Effect.succeed(cached)
      return makeClient(service, url, options).pipe(
        Scope.provide(scope),
        Effect.tap((client) => Effect.sync(() => void clients.set(url, client)))
      )
    })
    return { pick }
  })
