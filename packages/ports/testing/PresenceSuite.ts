import type { GatewayId, UserId } from "@im/domain/Ids"
import { assert } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { Presence } from "../src/Presence.ts"
import { freshGatewayId, freshUserId, unique } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

const gatewaysOf = (found: ReadonlyMap<UserId, ReadonlyArray<GatewayId>>, user: UserId) =>
  [...(found.get(user) ?? [])].sort()

/** The Presence contract: which gateways hold at least one connection of each user. */
export const presenceSuite = (name: string, adapter: Layer.Layer<Presence, unknown>, options: SuiteOptions = {}) =>
  describeAdapter(`Presence conformance: ${name}`, adapter, options, (it) => {
    it.effect("register, lookup, unregister", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const user = freshUserId()
        const gateway = freshGatewayId()
        const connection = unique("c")
        yield* presence.register(user, gateway, connection)
        const found = yield* presence.lookup([user])
        assert.deepStrictEqual(gatewaysOf(found, user), [gateway])
        yield* presence.unregister(user, gateway, connection)
        assert.isFalse((yield* presence.lookup([user])).has(user))
      }))

    it.effect("users without connections are absent from the answer", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const [online, offline] = [freshUserId(), freshUserId()]
        const gateway = freshGatewayId()
        yield* presence.register(online, gateway, unique("c"))
        const found = yield* presence.lookup([offline, online])
        assert.deepStrictEqual([...found.keys()], [online])
        assert.deepStrictEqual(gatewaysOf(found, online), [gateway])
        assert.strictEqual((yield* presence.lookup([])).size, 0)
      }))

    it.effect("a user stays present until the last connection on a gateway is gone", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const user = freshUserId()
        const gateway = freshGatewayId()
        const [first, second] = [unique("c"), unique("c")]
        yield* presence.register(user, gateway, first)
        yield* presence.register(user, gateway, second)
        assert.deepStrictEqual(gatewaysOf(yield* presence.lookup([user]), user), [gateway])
        yield* presence.unregister(user, gateway, first)
        assert.deepStrictEqual(gatewaysOf(yield* presence.lookup([user]), user), [gateway])
        yield* presence.unregister(user, gateway, second)
        assert.isFalse((yield* presence.lookup([user])).has(user))
      }))

    it.effect("a user on several gateways is found on each, and leaves them one by one", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const user = freshUserId()
        const [east, west] = [freshGatewayId(), freshGatewayId()]
        const [phone, laptop] = [unique("c"), unique("c")]
        yield* presence.register(user, east, phone)
        yield* presence.register(user, west, laptop)
        assert.deepStrictEqual(gatewaysOf(yield* presence.lookup([user]), user), [east, west].sort())
        yield* presence.unregister(user, east, phone)
        assert.deepStrictEqual(gatewaysOf(yield* presence.lookup([user]), user), [west])
      }))

    it.effect("many users at once, each with its own gateways", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const users = Array.from({ length: 20 }, freshUserId)
        const gateways = [freshGatewayId(), freshGatewayId(), freshGatewayId()]
        yield* Effect.forEach(users, (user, i) => presence.register(user, gateways[i % 3]!, unique("c")), { discard: true })
        const found = yield* presence.lookup([...users, freshUserId()])
        assert.strictEqual(found.size, users.length)
        users.forEach((user, i) => assert.deepStrictEqual(gatewaysOf(found, user), [gateways[i % 3]!]))
      }))

    it.effect("registering a connection twice is one connection; unknown unregisters change nothing", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const user = freshUserId()
        const gateway = freshGatewayId()
        const connection = unique("c")
        yield* presence.register(user, gateway, connection)
        yield* presence.register(user, gateway, connection)
        yield* presence.unregister(user, gateway, unique("c"))
        yield* presence.unregister(user, freshGatewayId(), connection)
        yield* presence.unregister(freshUserId(), gateway, connection)
        assert.deepStrictEqual(gatewaysOf(yield* presence.lookup([user]), user), [gateway])
        yield* presence.unregister(user, gateway, connection)
        assert.isFalse((yield* presence.lookup([user])).has(user))
      }))

    it.effect("refresh does not know a gateway until this run of it restores its connections; restore registers each of them", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const gateway = freshGatewayId()
        const [one, two] = [freshUserId(), freshUserId()]
        const [c1, c2, c3] = [unique("c"), unique("c"), unique("c")]
        assert.isFalse(yield* presence.refresh(gateway, "run-1"), "never restored")
        yield* presence.restore(gateway, "run-1", [{ user: one, connection: c1 }, { user: one, connection: c2 }, { user: two, connection: c3 }])
        assert.isTrue(yield* presence.refresh(gateway, "run-1"))
        assert.isFalse(yield* presence.refresh(gateway, "run-2"), "another run of the gateway")
        const found = yield* presence.lookup([one, two])
        assert.deepStrictEqual([gatewaysOf(found, one), gatewaysOf(found, two)], [[gateway], [gateway]])
        // Each connection was registered: the user stays until the last one is gone.
        yield* presence.unregister(one, gateway, c1)
        assert.deepStrictEqual(gatewaysOf(yield* presence.lookup([one]), one), [gateway])
        yield* presence.unregister(one, gateway, c2)
        assert.isFalse((yield* presence.lookup([one])).has(one))
      }))

    it.effect("restore replaces what the gateway had (a run before, a failed unregister), and only that gateway's", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const [gateway, other] = [freshGatewayId(), freshGatewayId()]
        const [kept, dropped, elsewhere] = [freshUserId(), freshUserId(), freshUserId()]
        yield* presence.restore(gateway, "old", [{ user: dropped, connection: unique("c") }])
        yield* presence.register(kept, gateway, unique("c"))
        yield* presence.register(dropped, other, unique("c"))
        yield* presence.register(elsewhere, other, unique("c"))
        yield* presence.restore(gateway, "new", [{ user: kept, connection: unique("c") }])
        const found = yield* presence.lookup([kept, dropped, elsewhere])
        assert.deepStrictEqual([gatewaysOf(found, kept), gatewaysOf(found, dropped), gatewaysOf(found, elsewhere)], [[gateway], [other], [other]])
        assert.isTrue(yield* presence.refresh(gateway, "new"))
        assert.isFalse(yield* presence.refresh(gateway, "old"))
      }))

    it.effect("a restore of more connections than one call carries registers them all", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const gateway = freshGatewayId()
        const users = Array.from({ length: 1_234 }, () => freshUserId())
        yield* presence.restore(gateway, "run", users.map((user) => ({ user, connection: unique("c") })))
        const found = yield* presence.lookup(users)
        assert.strictEqual(users.filter((user) => gatewaysOf(found, user)[0] === gateway).length, users.length)
        assert.isTrue(yield* presence.refresh(gateway, "run"))
      }))

    it.effect("refresh keeps a gateway's entries", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const user = freshUserId()
        const gateway = freshGatewayId()
        yield* presence.register(user, gateway, unique("c"))
        yield* presence.refresh(gateway, "run")
        yield* presence.refresh(freshGatewayId(), "run")
        assert.deepStrictEqual(gatewaysOf(yield* presence.lookup([user]), user), [gateway])
      }))
  })
