import { assert } from "@effect/vitest"
import { type Duration, Effect, Exit, type Layer, Queue, Scope, Stream } from "effect"
import { type ServiceInstance, ServiceRegistry } from "../src/ServiceRegistry.ts"
import { unique } from "./Fixtures.ts"
import { describeAdapter, eventually, type SuiteOptions, within } from "./Suite.ts"

let nextPort = 20_000 + Math.floor(Math.random() * 20_000)

const makeInstance = (service: string, meta?: Readonly<Record<string, string>>): ServiceInstance => ({
  id: unique(service),
  service,
  host: "127.0.0.1",
  port: nextPort++,
  ...(meta === undefined ? {} : { meta })
})

const ids = (instances: ReadonlyArray<ServiceInstance>) => instances.map((i) => i.id).sort()

const sameIds = (expected: ReadonlyArray<ServiceInstance>) => (instances: ReadonlyArray<ServiceInstance>) =>
  JSON.stringify(ids(instances)) === JSON.stringify(ids(expected))

/** The ServiceRegistry contract: registered while the scope lives, found by service, watched. */
export const serviceRegistrySuite = (
  name: string,
  adapter: Layer.Layer<ServiceRegistry, unknown>,
  options: SuiteOptions & { readonly patience?: Duration.Input } = {}
) => {
  const patience = options.patience ?? "5 seconds"
  describeAdapter(`ServiceRegistry conformance: ${name}`, adapter, options, (it) => {
    it.effect("an instance is registered while its scope is open", () =>
      Effect.gen(function*() {
        const registry = yield* ServiceRegistry
        const service = unique("svc")
        const instance = makeInstance(service, { zone: "a", version: "1.2.3" })
        const scope = yield* Scope.make()
        yield* registry.register(instance).pipe(Scope.provide(scope))
        const found = yield* eventually(registry.healthy(service), sameIds([instance]), "the registered instance", patience)
        assert.deepStrictEqual(found, [instance])
        yield* Scope.close(scope, Exit.void)
        yield* eventually(registry.healthy(service), sameIds([]), "the instance to go after its scope closed", patience)
      }))

    it.effect("healthy(service) gives only that service's instances", () =>
      Effect.gen(function*() {
        const registry = yield* ServiceRegistry
        const [chat, db] = [unique("chat"), unique("db")]
        const chatInstances = [makeInstance(chat), makeInstance(chat)]
        const dbInstance = makeInstance(db)
        yield* Effect.forEach([...chatInstances, dbInstance], registry.register, { discard: true })
        const foundChat = yield* eventually(registry.healthy(chat), sameIds(chatInstances), "both chat instances", patience)
        const foundDb = yield* eventually(registry.healthy(db), sameIds([dbInstance]), "the db instance", patience)
        assert.deepStrictEqual(ids(foundChat), ids(chatInstances))
        assert.deepStrictEqual(foundDb, [dbInstance])
        assert.deepStrictEqual(yield* registry.healthy(unique("nobody")), [])
      }))

    it.effect("watch emits the current instances, then each change", () =>
      Effect.gen(function*() {
        const registry = yield* ServiceRegistry
        const service = unique("svc")
        const resident = makeInstance(service)
        yield* registry.register(resident)
        yield* eventually(registry.healthy(service), sameIds([resident]), "the resident instance", patience)

        const emissions = yield* Queue.unbounded<ReadonlyArray<ServiceInstance>>()
        yield* registry.watch(service).pipe(
          Stream.runForEach((instances) => Queue.offer(emissions, instances)),
          Effect.forkScoped
        )
        const first = yield* Queue.take(emissions).pipe(within(patience, "the first emission"))
        assert.deepStrictEqual(first, [resident])

        const seen: Array<ReadonlyArray<ServiceInstance>> = [first]
        const awaitEmission = (predicate: (instances: ReadonlyArray<ServiceInstance>) => boolean, what: string) =>
          Queue.take(emissions).pipe(
            Effect.tap((instances) => Effect.sync(() => seen.push(instances))),
            Effect.repeat({ until: predicate }),
            within(patience, what)
          )

        const guest = makeInstance(service)
        const guestScope = yield* Scope.make()
        yield* registry.register(guest).pipe(Scope.provide(guestScope))
        yield* awaitEmission(sameIds([resident, guest]), "an emission with the new instance")
        // Another service's change must not show up in this watch.
        yield* registry.register(makeInstance(unique("other")))
        yield* Scope.close(guestScope, Exit.void)
        yield* awaitEmission(sameIds([resident]), "an emission without the departed instance")
        for (const instances of seen) assert.isTrue(instances.every((i) => i.service === service))
      }))
  })
}
