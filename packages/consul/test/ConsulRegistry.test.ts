import { type ServiceInstance, ServiceRegistry } from "@im/ports/ServiceRegistry"
import { eventually, within } from "@im/ports/testing/Suite"
import { serviceRegistrySuite } from "@im/ports/testing/ServiceRegistrySuite"
import { assert, layer } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Queue, Scope, Stream } from "effect"
import * as ConsulRegistry from "../src/ConsulRegistry.ts"
import { ConsulStandInService, type RecordedRequest } from "../src/ConsulStandIn.ts"

// Short times, so that a TTL runs out and a blocking query ends within a test.
const options = {
  checkTtl: Duration.seconds(1),
  deregisterCriticalAfter: Duration.minutes(1),
  watchWait: Duration.seconds(2),
  requestTimeout: Duration.millis(500)
}

/** The adapter pointed at a fresh double; the double stays reachable for the tests. */
const withDouble = Layer.effect(
  ServiceRegistry,
  Effect.gen(function*() {
    const double = yield* ConsulStandInService
    return yield* ConsulRegistry.make({ address: double.address, ...options })
  })
).pipe(Layer.provideMerge(ConsulStandInService.layer))

serviceRegistrySuite("consul (against ConsulStandIn)", withDouble, { patience: "5 seconds" })

let port = 31_000
const instance = (service: string, meta?: Readonly<Record<string, string>>): ServiceInstance => ({
  id: `${service}-${crypto.randomUUID()}`,
  service,
  host: "127.0.0.1",
  port: port++,
  ...(meta === undefined ? {} : { meta })
})
const freshService = () => `svc-${crypto.randomUUID()}`

const healthPath = (service: string) => `/v1/health/service/${service}`

layer(withDouble, { excludeTestServices: true, timeout: "30 seconds" })("ConsulRegistry contract with the agent API", (it) => {
  it.effect("register: PUT /v1/agent/service/register with the instance and a passing TTL check", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      const chat = instance(freshService(), { zone: "a" })
      yield* registry.register(chat)
      const [request] = double.requests.filter((r) => r.path === "/v1/agent/service/register" && (r.body as any)?.ID === chat.id)
      assert.isDefined(request)
      assert.strictEqual(request!.method, "PUT")
      assert.deepStrictEqual(request!.body, {
        Name: chat.service,
        ID: chat.id,
        Meta: { zone: "a" },
        Address: "127.0.0.1",
        Port: chat.port,
        Check: {
          CheckID: `service:${chat.id}`,
          Name: `${chat.service} heartbeat`,
          TTL: "1s",
          Status: "passing",
          DeregisterCriticalServiceAfter: "1m"
        }
      })
      // Without meta, no Meta at all.
      const plain = instance(freshService())
      yield* registry.register(plain)
      const plainBody = double.requests.find((r) => (r.body as any)?.ID === plain.id)!.body as Record<string, unknown>
      assert.notProperty(plainBody, "Meta")
      assert.strictEqual(double.statusOf(chat.id), "passing")
    }))

  it.effect("the heartbeat passes the check about three times per TTL; closing the scope stops it and deregisters", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      const db = instance(freshService())
      const scope = yield* Scope.make()
      yield* registry.register(db).pipe(Scope.provide(scope))
      yield* Effect.sleep("1200 millis")
      const passes = double.requestsTo("PUT", `/v1/agent/check/pass/service:${db.id}`)
      assert.isAtLeast(passes.length, 2)
      assert.isAtMost(passes.length, 5)
      assert.strictEqual(passes[0]!.rawUrl, `/v1/agent/check/pass/service%3A${encodeURIComponent(db.id)}`)
      // Well past the TTL, the heartbeat kept it passing.
      assert.strictEqual(double.statusOf(db.id), "passing")

      yield* Scope.close(scope, Exit.void)
      const deregistered = double.requestsTo("PUT", `/v1/agent/service/deregister/${db.id}`)
      assert.strictEqual(deregistered.length, 1)
      assert.strictEqual(deregistered[0]!.status, 200)
      const passesAtClose = double.requestsTo("PUT", `/v1/agent/check/pass/service:${db.id}`).length
      yield* Effect.sleep("800 millis")
      assert.strictEqual(double.requestsTo("PUT", `/v1/agent/check/pass/service:${db.id}`).length, passesAtClose)
      assert.strictEqual(double.statusOf(db.id), undefined)
    }))

  it.effect("healthy: GET /v1/health/service/:service?passing=true, no blocking", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      const service = freshService()
      const api = instance(service, { version: "2" })
      yield* registry.register(api)
      assert.deepStrictEqual(yield* registry.healthy(service), [api])
      const [request] = double.requestsTo("GET", healthPath(service))
      assert.deepStrictEqual(request!.query, { passing: "true" })
      assert.strictEqual(request!.rawUrl, `${healthPath(service)}?passing=true`)
    }))

  it.effect("a missed heartbeat makes the instance critical and unhealthy; a later pass makes it healthy again", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      const service = freshService()
      const pusher = instance(service)
      yield* registry.register(pusher)
      yield* eventually(registry.healthy(service), (found) => found.length === 1, "the instance")

      double.fault({ method: "PUT", path: `/v1/agent/check/pass/service:${pusher.id}`, times: Infinity, respond: { status: 500 } })
      yield* eventually(registry.healthy(service), (found) => found.length === 0, "the instance to turn unhealthy", "4 seconds")
      assert.strictEqual(double.statusOf(pusher.id), "critical")

      double.clearFaults()
      yield* eventually(registry.healthy(service), (found) => found.length === 1, "the instance to be healthy again", "4 seconds")
      assert.strictEqual(double.statusOf(pusher.id), "passing")
    }))

  it.effect("an agent that lost the check (404) gets the instance registered again", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      const service = freshService()
      const ws = instance(service)
      yield* registry.register(ws)
      double.fault({ method: "PUT", path: `/v1/agent/check/pass/service:${ws.id}`, times: 1, respond: { status: 404, body: "Unknown check ID" } })
      yield* eventually(
        Effect.sync(() => double.requests.filter((r) => r.path === "/v1/agent/service/register" && (r.body as any)?.ID === ws.id).length),
        (n) => n === 2,
        "a second registration"
      )
      assert.deepStrictEqual(yield* registry.healthy(service), [ws])
    }))

  it.effect("500s: healthy retries a few times, then fails with a retryable PortError", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      const service = freshService()
      double.fault({ path: healthPath(service), times: 100, respond: { status: 500, body: "rpc error: No cluster leader" } })
      const error = yield* Effect.flip(registry.healthy(service))
      double.clearFaults()
      assert.strictEqual(error._tag, "PortError")
      assert.strictEqual(error.operation, "healthy")
      assert.isTrue(error.retryable)
      assert.strictEqual(double.requestsTo("GET", healthPath(service)).length, 4)
      assert.deepStrictEqual(yield* registry.healthy(service), [])
    }))

  it.effect("a refusal (403) fails at once with a non-retryable PortError", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      const service = freshService()
      double.fault({ path: healthPath(service), times: 100, respond: { status: 403, body: "Permission denied" } })
      const error = yield* Effect.flip(registry.healthy(service))
      double.clearFaults()
      assert.isFalse(error.retryable)
      assert.strictEqual(double.requestsTo("GET", healthPath(service)).length, 1)
    }))

  it.effect("an agent that does not answer: healthy times out per request and fails with a PortError", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      const service = freshService()
      double.fault({ path: healthPath(service), times: 100, respond: "hang" })
      const started = Date.now()
      const error = yield* Effect.flip(registry.healthy(service)).pipe(within("10 seconds", "healthy to give up"))
      double.clearFaults()
      assert.isTrue(error.retryable)
      // Four attempts of 500 ms each, plus short backoffs.
      assert.isBelow(Date.now() - started, 4_000)
      assert.strictEqual(double.requestsTo("GET", healthPath(service)).length, 4)
    }))

  it.effect("register fails with a PortError when the agent refuses it", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      double.fault({ path: "/v1/agent/service/register", times: 1, respond: { status: 400, body: "Invalid service address" } })
      const error = yield* Effect.flip(registry.register(instance(freshService())))
      assert.strictEqual(error.operation, "register")
      assert.isFalse(error.retryable)
    }))

  const startWatch = (service: string) =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const emissions = yield* Queue.unbounded<ReadonlyArray<ServiceInstance>>()
      yield* registry.watch(service).pipe(
        Stream.runForEach((instances) => Queue.offer(emissions, instances)),
        Effect.forkScoped
      )
      const next = (predicate: (found: ReadonlyArray<ServiceInstance>) => boolean, what: string, patience: Duration.Input = "5 seconds") =>
        Queue.take(emissions).pipe(Effect.repeat({ until: predicate }), within(patience, what))
      return { next }
    })

  const watchRequests = (requests: ReadonlyArray<RecordedRequest>, service: string) =>
    requests.filter((r) => r.method === "GET" && r.path === healthPath(service))

  it.effect("watch: a plain read first, then blocking queries on the last X-Consul-Index", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      const service = freshService()
      const { next } = yield* startWatch(service)
      yield* next((found) => found.length === 0, "the first, empty emission")
      const first = instance(service)
      yield* registry.register(first)
      yield* next((found) => found.length === 1, "the registered instance")
      const second = instance(service)
      yield* registry.register(second)
      yield* next((found) => found.length === 2, "both instances")

      const requests = watchRequests(double.requests, service)
      assert.deepStrictEqual(requests[0]!.query, { passing: "true" })
      assert.isAtLeast(requests.length, 3)
      for (let i = 1; i < requests.length; i++) {
        assert.deepStrictEqual(requests[i]!.query, {
          passing: "true",
          index: String(requests[i - 1]!.answeredIndex),
          wait: "2s"
        })
      }
    }))

  it.effect("watch: an index that goes backwards starts the queries over from a plain read", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      const service = freshService()
      const resident = instance(service)
      yield* registry.register(resident)
      const { next } = yield* startWatch(service)
      yield* next((found) => found.length === 1, "the resident instance")
      yield* eventually(
        Effect.sync(() => watchRequests(double.requests, service).filter((r) => r.query["index"] !== undefined).length),
        (n) => n > 0,
        "a blocking query"
      )
      const before = watchRequests(double.requests, service).length
      double.resetIndex()
      yield* eventually(
        Effect.sync(() => watchRequests(double.requests, service).length),
        (n) => n >= before + 2,
        "the queries after the reset"
      )
      const after = watchRequests(double.requests, service).slice(before - 1)
      // The blocking query in flight answered with a lower index...
      assert.isBelow(after[0]!.answeredIndex!, Number(after[0]!.query["index"]))
      // ...so the watch read again without an index, then blocked on the new one.
      assert.deepStrictEqual(after[1]!.query, { passing: "true" })
      if (after[2] !== undefined) assert.strictEqual(after[2].query["index"], String(after[1]!.answeredIndex))
      // Nothing changed for the watcher: no new emission, and a later change still arrives.
      const guest = instance(service)
      yield* registry.register(guest)
      yield* next((found) => found.length === 2, "the new instance after the reset")
    }))

  it.effect("watch recovers from 500s and from a blocking query that never answers", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const double = yield* ConsulStandInService
      const service = freshService()
      const { next } = yield* startWatch(service)
      yield* next((found) => found.length === 0, "the first emission")
      yield* eventually(
        Effect.sync(() => watchRequests(double.requests, service).filter((r) => r.query["index"] !== undefined).length),
        (n) => n > 0,
        "a blocking query"
      )

      // The query in flight fails, the next three fail, the one after hangs past its time-out.
      double.fault({ path: healthPath(service), times: 3, respond: { status: 500 } })
      double.failBlocked(500)
      yield* eventually(
        Effect.sync(() => watchRequests(double.requests, service).filter((r) => r.status === 500).length),
        (n) => n >= 4,
        "the failed queries"
      )
      double.fault({ path: healthPath(service), times: 1, respond: "hang" })
      const app = instance(service)
      yield* registry.register(app)
      yield* next((found) => found.length === 1 && found[0]!.id === app.id, "the instance after the failures", "10 seconds")
      const failures = watchRequests(double.requests, service).filter((r) => r.status === 500 || r.status === undefined)
      assert.isAtLeast(failures.length, 5)
    }), 20_000)
})
