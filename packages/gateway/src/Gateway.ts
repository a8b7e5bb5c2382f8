import * as Settings from "@im/ports/Settings"
import { CloseCodes } from "@im/domain/Frames"
import { GatewayId, type SessionId, type UserId } from "@im/domain/Ids"
import type { Delivery } from "@im/domain/Message"
import * as Metrics from "@im/observability/Metrics"
import { Presence } from "@im/ports/Presence"
import { Clock, Config, Context, Duration, Effect, type Fiber, FiberSet, Layer, LogLevel, Metric, Schedule } from "effect"
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import { Outbox } from "./SocketSession.ts"
import * as Vital from "@im/ports/Vital"

/** One open, authenticated WebSocket of a user. */
export interface Session {
  readonly id: string
  readonly user: UserId
  /** The login session whose token opened the socket: a logout closes its sockets. */
  readonly sid: SessionId
  /** Queues a frame for the socket; false when the session's queue is full (a too-slow client). */
  readonly offer: (frame: string) => boolean
  readonly close: (code: number, reason: string) => Effect.Effect<void>
  /** When the peer was last heard from (epoch ms): the heartbeat sweep expires it once too old. */
  readonly lastSeen?: number
  /** Ends a silent session (closed with 4008); sessions without it are never swept. */
  readonly expire?: Effect.Effect<void>
}

export interface GatewayConfig {
  readonly id: GatewayId
  readonly heartbeatTimeout: Duration.Duration
  /**
   * How long a send or typing frame may wait for chat before it is answered `unavailable`: a
   * session answers its frames one at a time, so a call that never returns would hold every
   * later frame of the socket, and the client's send, while the socket stays open.
   */
  readonly sendTimeout: Duration.Duration
  /** Frames queued for one socket before the session is dropped as too slow. */
  readonly sendQueueCapacity: number
  /** Test hook: pushes whose content starts with `__drop_push__` are not sent. Off in production. */
  readonly dropMarkedPushes: boolean
}

export const DROP_PUSH_MARKER = "__drop_push__"

/**
 * The ws service. It holds this instance's sessions, registers them in Presence, and delivers
 * pushed entries to the sockets of their users. The WebSocket route lives in `GatewayRoutes`.
 */
export class Gateway extends Context.Service<Gateway, {
  readonly config: GatewayConfig
  /** Pushes each entry to every open session of its user on this gateway. */
  readonly deliver: (deliveries: ReadonlyArray<Delivery>) => Effect.Effect<void>
  /** Offers a live-only frame to every open session of the users on this gateway; a full queue drops it. */
  readonly signal: (users: ReadonlyArray<UserId>, frame: string) => Effect.Effect<void>
  /** Closes every session of the user on this gateway (only those of login session `sid`, when given); returns how many. */
  readonly kick: (user: UserId, reason: string, sid?: SessionId) => Effect.Effect<number>
  /** Closes every session on this gateway. */
  readonly closeAll: (code: number, reason: string) => Effect.Effect<void>
  readonly attach: (session: Session) => Effect.Effect<void>
  readonly detach: (session: Session) => Effect.Effect<void>
  readonly connections: Effect.Effect<number>
  /** Where sessions queue their frames; they are written in one go for the whole gateway. */
  readonly outbox: Outbox
  /**
   * Runs an effect in a fiber of the gateway, with the gateway's context (shared by all
   * sessions, not a request's own grown copy), until it ends or the gateway stops: a session's
   * answers to its frames, its detaching once its socket closed.
   */
  readonly run: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
  /** Adds one to a counter at once, outside any fiber, with the gateway's context. */
  readonly increment: (counter: Metric.Counter<number>) => void
  /** The time (epoch ms) by the gateway's clock. */
  readonly now: () => number
}>()("@im/gateway/Gateway") {
  static readonly configFromEnv = Config.all({
    id: Config.String("GATEWAY_ID").pipe(
      Config.withDefault(`ws-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`),
      Config.map((id) => GatewayId.make(id))
    ),
    heartbeatTimeout: Settings.positiveDuration("WS_HEARTBEAT_TIMEOUT", Duration.seconds(60)),
    sendTimeout: Settings.positiveDuration("WS_SEND_TIMEOUT", Duration.seconds(10)),
    sendQueueCapacity: Settings.int("WS_SEND_QUEUE", 4096, { minimum: 1 }),
    dropMarkedPushes: Config.Boolean("WS_TEST_HOOKS").pipe(Config.withDefault(false))
  })

  static readonly make = Effect.fnUntraced(function*(config: GatewayConfig) {
    const presence = yield* Presence
    const sessions = new Map<UserId, Set<Session>>()
    let count = 0
    const deliveredCount = Metrics.gatewayDeliveries({ outcome: "delivered" })
    const tooSlowCount = Metrics.gatewayDeliveries({ outcome: "too_slow" })
    const noSessionCount = Metrics.gatewayDeliveries({ outcome: "no_session" })
    const droppedCount = Metrics.gatewayDeliveries({ outcome: "dropped" })
    // The gauge shows 0 from the start, not only once someone connected.
    yield* Metric.modify(Metrics.gatewayConnections, 0)

    /** This process's run of the gateway, for Presence: a run before it under the same id left entries this one replaces. */
    const presenceRun = randomUUID()
    /**
     * Sessions gone whose unregister failed: the refreshes would keep them alive in Presence, so
     * each refresh tries them again.
     */
    const unregisterLater = new Set<Session>()
    const isAttached = (session: Session) => sessions.get(session.user)?.has(session) === true
    const unregister = (session: Session) =>
      presence.unregister(session.user, config.id, session.id).pipe(
        Effect.andThen(Effect.sync(() => void unregisterLater.delete(session))),
        Effect.catch((error) => {
          unregisterLater.add(session)
          return Effect.logWarning("presence unregister failed; the next refresh tries again", error)
        })
      )

    /** Set by `closeAll` (shutdown): a session attaching after it is closed the same way at once. */
    let closing: { readonly code: number; readonly reason: string } | undefined

    const attach = Effect.fn("Gateway.attach")(function*(session: Session) {
      let own = sessions.get(session.user)
      if (own === undefined) sessions.set(session.user, own = new Set())
      own.add(session)
      count++
      yield* Metric.modify(Metrics.gatewayConnections, 1)
      yield* presence.register(session.user, config.id, session.id).pipe(
        Effect.retry({ schedule: Schedule.exponential("50 millis"), times: 3 }),
        Effect.orDie
      )
      // Detached while its register was retried: the register may have landed after the unregister.
      if (!isAttached(session)) yield* unregister(session)
      if (closing !== undefined) yield* Effect.andThen(session.close(closing.code, closing.reason), detach(session))
    })

    const detach = Effect.fn("Gateway.detach")(function*(session: Session) {
      const own = sessions.get(session.user)
      if (own === undefined || !own.delete(session)) return
      count--
      yield* Metric.modify(Metrics.gatewayConnections, -1)
      if (own.size === 0) sessions.delete(session.user)
      yield* unregister(session)
    })

    const deliver = Effect.fn("Gateway.deliver")(function*(deliveries: ReadonlyArray<Delivery>) {
      const tooSlow: Array<Session> = []
      const encoded = new Map<string, string>()
      const debug = yield* LogLevel.isEnabled("Debug")
      let delivered = 0
      let slow = 0
      let noSession = 0
      let dropped = 0
      for (const delivery of deliveries) {
        const own = sessions.get(delivery.user_id)
        if (own === undefined) {
          noSession++
          continue
        }
        if (config.dropMarkedPushes && delivery.message.content.startsWith(DROP_PUSH_MARKER)) {
          dropped++
          yield* Effect.logDebug("test hook: push dropped", { user: delivery.user_id, seq: delivery.seq })
          continue
        }
        if (debug) yield* Effect.logDebug("delivered", { server_id: delivery.message.server_id, user: delivery.user_id, seq: delivery.seq })
        // A group message goes to every member: its JSON is made once per call, not per member.
        let json = encoded.get(delivery.message.server_id)
        if (json === undefined) encoded.set(delivery.message.server_id, json = JSON.stringify(delivery.message))
        const frame = `{"type":"message","seq":${delivery.seq},"message":${json}}`
        const before = tooSlow.length
        for (const session of own) {
          if (!session.offer(frame)) tooSlow.push(session)
        }
        if (tooSlow.length === before) delivered++
        else slow++
      }
      yield* Metrics.increment(deliveredCount, delivered)
      if (slow > 0) yield* Metrics.increment(tooSlowCount, slow)
      if (noSession > 0) yield* Metrics.increment(noSessionCount, noSession)
      if (dropped > 0) yield* Metrics.increment(droppedCount, dropped)
      // A client that cannot keep up is dropped; it pulls what it missed when it reconnects.
      yield* Effect.forEach(tooSlow, (session) => session.close(1008, "too slow"), { discard: true })
    })

    const signal = (users: ReadonlyArray<UserId>, frame: string) =>
      Effect.sync(() => {
        for (const user of users) {
          for (const session of sessions.get(user) ?? []) session.offer(frame)
        }
      })

    const kick = Effect.fn("Gateway.kick")(function*(user: UserId, reason: string, sid?: SessionId) {
      const own = [...(sessions.get(user) ?? [])].filter((session) => sid === undefined || session.sid === sid)
      yield* Effect.forEach(own, (session) => session.close(CloseCodes.kicked, reason), { discard: true })
      return own.length
    })

    /**
     * Replaces what Presence holds of this gateway with its sessions, when it does not know this
     * run of the gateway: at start (a run before this one may have left entries under the same
     * id), or after the store lost its data (a Redis restarted empty: the pusher would find none
     * of this gateway's users, and they would get no push until they reconnect). Sessions
     * attached or detached meanwhile are registered or unregistered again after it, as their own
     * calls may have gone before the restore's. A restore that fails leaves the gateway unknown,
     * and the next refresh restores again.
     */
    const restorePresence = Effect.gen(function*() {
      const held = [...sessions.values()].flatMap((own) => [...own])
      yield* presence.restore(config.id, presenceRun, held.map((session) => ({ user: session.user, connection: session.id })))
      const restored = new Set(held)
      const added = [...sessions.values()].flatMap((own) => [...own]).filter((session) => !restored.has(session))
      yield* Effect.forEach(added, (session) => presence.register(session.user, config.id, session.id), { discard: true })
      for (const session of held) if (!isAttached(session)) unregisterLater.add(session)
      if (held.length > 0) {
        yield* Effect.logWarning("presence did not know this gateway's sessions (its store lost its data, or another gateway runs under the same id?); they are registered again", {
          sessions: held.length + added.length
        })
      }
    })

    /** Keeps this gateway's entries alive, restores them when the store forgot them, and retries failed unregisters. */
    const refreshPresence = Effect.gen(function*() {
      const known = yield* presence.refresh(config.id, presenceRun)
      // A gateway shutting down restores nothing: another process under its id may have started.
      if (!known && closing === undefined) yield* restorePresence
      const later = [...unregisterLater].filter((session) => !isAttached(session))
      unregisterLater.clear()
      yield* Effect.forEach(later, unregister, { discard: true })
    })

    // Keep this gateway's presence entries alive while it runs: without it they expire, and
    // nothing is pushed here any more (Vital: the gateway stops instead).
    yield* Vital.forkScoped(
      "refreshing the gateway's presence",
      refreshPresence.pipe(
        Effect.catch((error) => Effect.logWarning("presence refresh failed", error)),
        Effect.repeat(Schedule.spaced(Duration.millis(Duration.toMillis(config.heartbeatTimeout) / 3)))
      )
    )

    /**
     * Shutdown: sends every session its close frame and detaches it at once (Presence forgets
     * it), without waiting for its socket to close: by then the gateway's fibers are gone, and a
     * session left in Presence would draw pushes to a gateway that no longer runs.
     */
    const closeAll = Effect.fn("Gateway.closeAll")(function*(code: number, reason: string) {
      closing = { code, reason }
      yield* Effect.forEach(
        [...sessions.values()].flatMap((own) => [...own]),
        (session) => Effect.andThen(session.close(code, reason), detach(session)),
        { concurrency: 100, discard: true }
      )
    })

    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const context = yield* Effect.context<never>()
    const clock = yield* Clock.Clock
    const outbox = new Outbox(config.sendQueueCapacity)

    // One sweep for the whole gateway rather than a sleeping fiber per session: every quarter of
    // the timeout, a session silent for longer than the timeout is expired (closed with 4008).
    const limit = Duration.toMillis(config.heartbeatTimeout)
    const sweep = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const silent: Array<Effect.Effect<void>> = []
      for (const own of sessions.values()) {
        for (const session of own) {
          if (session.expire !== undefined && session.lastSeen !== undefined && now - session.lastSeen > limit) {
            silent.push(session.expire)
          }
        }
      }
      yield* Effect.all(silent, { concurrency: "unbounded", discard: true })
    })
    yield* Vital.forkScoped("expiring silent sessions", sweep.pipe(Effect.repeat(Schedule.spaced(Duration.millis(Math.max(10, limit / 4))))))

    // On shutdown, tell every client still here to come back later.
    yield* Effect.addFinalizer(() => closeAll(CloseCodes.goingAway, "server shutting down"))

    return Gateway.of({
      config,
      deliver,
      signal,
      kick,
      closeAll,
      attach,
      detach,
      connections: Effect.sync(() => count),
      outbox,
      run: (effect) => run(effect),
      increment: (counter) => counter.updateUnsafe(1, context),
      now: () => clock.currentTimeMillisUnsafe()
    })
  }, Effect.annotateLogs({ service: "ws" }))

  static readonly layer = Layer.effect(Gateway, Effect.flatMap(Gateway.configFromEnv, Gateway.make))

  /**
   * On shutdown, closes every session (1001) before the layers below it are released: built on
   * top of the HTTP server, it lets the server's graceful close finish at once instead of
   * waiting for WebSockets that would only close after it.
   */
  static readonly closeSessionsOnShutdown = Layer.effectDiscard(Effect.gen(function*() {
    const gateway = yield* Gateway
    yield* Effect.addFinalizer(() => gateway.closeAll(CloseCodes.goingAway, "server shutting down"))
  }))
}
