import * as Settings from "@im/ports/Settings"
import { PortError } from "@im/ports/PortError"
import { type ServiceInstance, ServiceRegistry } from "@im/ports/ServiceRegistry"
import { Config, Duration, Effect, Layer, Schedule, Schema, Stream } from "effect"
import Consul from "consul"
import { EventEmitter } from "node:events"
import type { IncomingMessage } from "node:http"
import * as Vital from "@im/ports/Vital"

const PORT = "ServiceRegistry"

export interface ConsulRegistryOptions {
  /** The agent's HTTP API: `host:port` or `http(s)://host:port`. */
  readonly address: string
  /** The TTL of an instance's health check; the heartbeat passes it three times per TTL. */
  readonly checkTtl: Duration.Duration
  /** How long a critical instance stays registered before Consul removes it (Consul's minimum is 1m). */
  readonly deregisterCriticalAfter: Duration.Duration
  /** How long one blocking query of `watch` waits for a change. */
  readonly watchWait: Duration.Duration
  /** The time allowed to one ordinary request (and added to a blocking query's wait). */
  readonly requestTimeout: Duration.Duration
}

/** One entry of `GET /v1/health/service/:service`: what this adapter reads of it. */
const HealthEntry = Schema.Struct({
  Node: Schema.optional(Schema.Struct({ Address: Schema.optional(Schema.String) })),
  Service: Schema.Struct({
    ID: Schema.String,
    Service: Schema.String,
    Address: Schema.optional(Schema.String),
    Port: Schema.Number,
    Meta: Schema.optional(Schema.NullOr(Schema.Record(Schema.String, Schema.String)))
  })
})
const decodeHealth = Schema.decodeUnknownEffect(Schema.Array(HealthEntry))

/** The instances in a health answer, in id order; an empty Meta is no meta. */
const toInstances = (entries: ReadonlyArray<typeof HealthEntry.Type>): ReadonlyArray<ServiceInstance> =>
  entries
    .map(({ Node, Service }): ServiceInstance => {
      const meta = Service.Meta ?? {}
      return {
        id: Service.ID,
        service: Service.Service,
        // An empty service address means "the node's address" in Consul.
        host: Service.Address !== undefined && Service.Address !== "" ? Service.Address : Node?.Address ?? "",
        port: Service.Port,
        ...(Object.keys(meta).length === 0 ? {} : { meta })
      }
    })
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))

const sameInstances = (a: ReadonlyArray<ServiceInstance>, b: ReadonlyArray<ServiceInstance>) =>
  JSON.stringify(a) === JSON.stringify(b)

/** A Go duration for Consul: `10s`, `1m`, `1500ms`. */
export const goDuration = (duration: Duration.Duration): string => {
  const ms = Math.max(1, Math.round(Duration.toMillis(duration)))
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

/** Parses `CONSUL_HTTP_ADDR` as Consul's own CLI does: a scheme is optional, http by default. */
const parseAddress = (address: string) => {
  const url = new URL(/^[a-z]+:\/\//i.test(address) ? address : `http://${address}`)
  const secure = url.protocol === "https:"
  return { host: url.hostname, port: url.port === "" ? (secure ? 443 : 8500) : Number(url.port), secure }
}

const statusOf = (error: unknown): number | undefined => {
  const status = (error as { statusCode?: unknown } | undefined)?.statusCode
  return typeof status === "number" ? status : undefined
}

/** 5xx, 429, time-outs and socket errors pass; other 4xx answers are refusals. */
const isTransient = (error: unknown): boolean => {
  const status = statusOf(error)
  return status === undefined || status >= 500 || status === 429
}

/**
 * A request context for the client (papi): `cancel` aborts the HTTP request, so an interrupted
 * call does not leave a blocking query hanging; `includeResponse` gives the headers too.
 */
const requestContext = (signal: AbortSignal) => {
  const ctx = Object.assign(new EventEmitter(), { includeResponse: true })
  signal.addEventListener("abort", () => ctx.emit("cancel"), { once: true })
  return ctx
}

/**
 * The registry on a Consul agent, through the `consul` client. `register` adds the instance
 * with a TTL check that starts passing, runs a heartbeat fiber that passes the check, and
 * deregisters when the scope closes; an instance whose heartbeat stops turns critical after
 * the TTL and disappears from `healthy`. `healthy` asks the health endpoint for passing
 * instances only. `watch` runs blocking queries (`index` + `wait`), emits when the healthy set
 * changes, and backs off and goes on when the agent fails or does not answer.
 */
export const make = Effect.fnUntraced(function*(options: ConsulRegistryOptions) {
  const consul = yield* Effect.acquireRelease(
    Effect.try({
      try: () => new Consul(parseAddress(options.address)),
      catch: (cause) => new PortError({ port: PORT, operation: "start", retryable: false, cause })
    }),
    (consul) => Effect.sync(() => consul.destroy())
  )
  const timeout = Duration.toMillis(options.requestTimeout)
  const heartbeatEvery = Duration.divideUnsafe(options.checkTtl, 3)

  /** One client call: errors become PortError, transient ones are retried a few times, soon. */
  const call = <A>(operation: string, run: (signal: AbortSignal) => Promise<A>) =>
    Effect.tryPromise({
      try: run,
      catch: (cause) => new PortError({ port: PORT, operation, retryable: isTransient(cause), cause })
    }).pipe(
      Effect.retry({
        schedule: Schedule.exponential("50 millis", 2).pipe(Schedule.jittered),
        times: 3,
        while: (error) => error.retryable
      })
    )

  const checkIdOf = (instance: ServiceInstance) => `service:${instance.id}`

  type RegisterOptions = Parameters<typeof consul.agent.service.register>[0]

  const registerOnce = (instance: ServiceInstance) =>
    call("register", () =>
      consul.agent.service.register({
        name: instance.service,
        id: instance.id,
        address: instance.host,
        port: instance.port,
        ...(instance.meta === undefined ? {} : { meta: { ...instance.meta } }),
        // The client's typings ask every check for a `timeout`; a TTL check has none.
        check: {
          checkid: checkIdOf(instance),
          name: `${instance.service} heartbeat`,
          ttl: goDuration(options.checkTtl),
          status: "passing",
          deregistercriticalserviceafter: goDuration(options.deregisterCriticalAfter)
        },
        timeout
      } as unknown as RegisterOptions))

  const pass = (instance: ServiceInstance) =>
    call("heartbeat", () => consul.agent.check.pass({ id: checkIdOf(instance), timeout } as { id: string }))

  /** Passes the check every third of the TTL; when the agent lost the check (404), registers again. */
  const heartbeat = (instance: ServiceInstance) =>
    pass(instance).pipe(
      Effect.catchIf(
        (error) => statusOf(error.cause) === 404,
        () => Effect.logWarning(`the agent lost ${instance.id}; registering it again`).pipe(Effect.andThen(registerOnce(instance)))
      ),
      Effect.catch((error) => Effect.logWarning(`heartbeat of ${instance.id} failed: ${error.message}`)),
      Effect.repeat(Schedule.spaced(heartbeatEvery)),
      Effect.annotateLogs({ service: "ConsulRegistry", instance: instance.id })
    )

  const register = Effect.fn("ConsulRegistry.register")(function*(instance: ServiceInstance) {
    yield* Effect.acquireRelease(
      registerOnce(instance),
      () =>
        call("deregister", () => consul.agent.service.deregister({ id: instance.id, timeout } as { id: string })).pipe(
          Effect.catch((error) =>
            // The TTL check goes critical without heartbeats, and Consul removes the instance later.
            Effect.logWarning(`could not deregister ${instance.id}: ${error.message}`)
          )
        )
    )
    // Forked after acquiring: the scope stops the heartbeat before it deregisters. Without it the
    // check goes critical and the instance is no longer found (Vital: the service stops).
    yield* Vital.forkScoped(`the heartbeat of ${instance.id}`, Effect.sleep(heartbeatEvery).pipe(Effect.andThen(heartbeat(instance))))
  })

  interface HealthAnswer {
    readonly instances: ReadonlyArray<ServiceInstance>
    readonly index: bigint
  }

  /** `GET /v1/health/service/:service?passing=true`, blocking when `index` > 0. */
  const query = (operation: string, service: string, index: bigint) =>
    Effect.gen(function*() {
      const blocking = index > 0n
      const [res, body] = yield* call(operation, (signal) =>
        consul.health.service({
          service,
          passing: true,
          ...(blocking ? { index: index.toString(), wait: goDuration(options.watchWait) } : {}),
          // Consul adds up to wait/16 of jitter to a blocking query.
          timeout: blocking ? timeout + Duration.toMillis(options.watchWait) * (17 / 16) : timeout,
          ctx: requestContext(signal)
        } as { service: string }) as unknown as Promise<[IncomingMessage, unknown]>)
      const entries = yield* decodeHealth(body ?? []).pipe(
        Effect.mapError((cause) => new PortError({ port: PORT, operation, retryable: false, cause }))
      )
      const header = res.headers["x-consul-index"]
      let next = 0n
      try {
        next = BigInt(typeof header === "string" ? header : "0")
      } catch {
        next = 0n
      }
      return { instances: toInstances(entries), index: next } satisfies HealthAnswer
    })

  const healthy = Effect.fn("ConsulRegistry.healthy")(function*(service: string) {
    return (yield* query("healthy", service, 0n)).instances
  })

  const watchBackoff = Schedule.exponential("100 millis", 2).pipe(
    Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(5)))),
    Schedule.jittered
  )

  const watch = (service: string): Stream.Stream<ReadonlyArray<ServiceInstance>, PortError> =>
    Stream.suspend(() => {
      let index = 0n
      const poll = Effect.gen(function*() {
        const answer = yield* query("watch", service, index).pipe(
          Effect.tapError((error) =>
            error.retryable ? Effect.logWarning(`watch of ${service} failed, retrying: ${error.message}`) : Effect.void
          ),
          Effect.retry({ schedule: watchBackoff, while: (error) => error.retryable })
        )
        const previous = index
        // Consul's rules for blocking queries: an index that goes backwards means the state was
        // reset (start again from 0); an index below 1 is never valid to block on.
        const next = answer.index < 1n ? 1n : answer.index
        index = next < previous ? 0n : next
        // No change reported: a wait ran out or a spurious wake-up; do not spin on a broken agent.
        if (next === previous) yield* Effect.sleep("50 millis")
        return answer.instances
      })
      return Stream.fromEffectRepeat(poll).pipe(Stream.changesWith(sameInstances))
    })

  return ServiceRegistry.of({ register, healthy, watch })
})

/**
 * `CONSUL_HTTP_ADDR` (default `127.0.0.1:8500`), `CONSUL_CHECK_TTL` (default 10 seconds),
 * `CONSUL_DEREGISTER_CRITICAL_AFTER` (default 1 minute), `CONSUL_WATCH_WAIT` (default 30
 * seconds) and `CONSUL_REQUEST_TIMEOUT` (default 5 seconds).
 */
export const layer: Layer.Layer<ServiceRegistry, PortError | Config.ConfigError> = Layer.effect(
  ServiceRegistry,
  Effect.gen(function*() {
    const options = yield* Config.all({
      address: Config.String("CONSUL_HTTP_ADDR").pipe(Config.withDefault("127.0.0.1:8500")),
      checkTtl: Settings.positiveDuration("CONSUL_CHECK_TTL", Duration.seconds(10)),
      deregisterCriticalAfter: Settings.positiveDuration("CONSUL_DEREGISTER_CRITICAL_AFTER", Duration.minutes(1)),
      watchWait: Settings.positiveDuration("CONSUL_WATCH_WAIT", Duration.seconds(30)),
      requestTimeout: Settings.positiveDuration("CONSUL_REQUEST_TIMEOUT", Duration.seconds(5))
    })
    return yield* make(options)
  }).pipe(Effect.annotateLogs({ service: "ConsulRegistry" }))
)
