import { numberedMessage } from "@im/ports/testing/Fixtures"
import { assert, describe, it } from "@effect/vitest"
import { CloseCodes } from "@im/domain/Frames"
import { GatewayId, SessionId, UserId } from "@im/domain/Ids"
import type { Delivery } from "@im/domain/Message"
import { PortError } from "@im/ports/PortError"
import { Presence } from "@im/ports/Presence"
import { recordingVital } from "@im/ports/testing/Vitals"
import { Vital } from "@im/ports/Vital"
import { Deferred, Duration, Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Gateway } from "../src/Gateway.ts"
import { PING } from "../src/GatewayRoutes.ts"
import { MAX_UNANSWERED_FRAMES, MAX_UNSENT_BYTES, type SessionSocket, SocketSession } from "../src/SocketSession.ts"

const alice = UserId.make("u_alice")
const bob = UserId.make("u_bob")
const carol = UserId.make("u_carol")
const gatewayId = GatewayId.make("gw-test")

const makeGateway = (options: { readonly sendQueueCapacity?: number } = {}) =>
  Gateway.make({
    id: gatewayId,
    heartbeatTimeout: Duration.seconds(4),
    sendTimeout: Duration.seconds(10),
    sendQueueCapacity: options.sendQueueCapacity ?? 100,
    dropMarkedPushes: false
  })

/** A socket that records what it is sent: frames, and closes as `close <code> <reason>`. */
const recordingSocket = () => {
  const written: Array<string> = []
  /** How many frames each call to the socket carried. */
  const calls: Array<number> = []
  const socket: SessionSocket = {
    sendAll: (frames) => {
      calls.push(frames.length)
      written.push(...frames)
    },
    close: (code, reason) => {
      written.push(`close ${code} ${reason}`)
    },
    bufferedAmount: 0,
    pause: () => void written.push("pause"),
    resume: () => void written.push("resume")
  }
  return { socket, written, calls }
}

/** A session of `user` on `gateway`, attached. */
const openSession = Effect.fnUntraced(function*(gateway: Gateway["Service"], user: UserId, id: string) {
  const { calls, socket, written } = recordingSocket()
  const session = new SocketSession(id, user, SessionId.make(`sn-${id}`), socket, gateway, gateway.now())
  yield* gateway.attach(session)
  return { session, written, calls }
})

const delivery = (user: UserId, seq: number): Delivery => ({ user_id: user, seq, message: numberedMessage(seq, bob, user) })

/** Lets the gateway's writer fiber run. */
const settle = Effect.forEach(Array.from({ length: 50 }), () => Effect.yieldNow, { discard: true })

const presenceOf = Effect.fnUntraced(function*(user: UserId) {
  const presence = yield* Presence
  const found = yield* presence.lookup([user])
  return found.get(user) ?? []
})

describe("Gateway", () => {
  it.effect("writes each session's frames in the order they were offered, whoever offered them", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const a = yield* openSession(gateway, alice, "a-1")
      const b = yield* openSession(gateway, bob, "b-1")
      assert.isTrue(a.session.offer("first"))
      yield* gateway.deliver([delivery(alice, 1), delivery(bob, 2), delivery(alice, 3)])
      assert.isTrue(a.session.offer("last"))
      assert.deepStrictEqual(a.written, [], "nothing is written before the writer runs")
      yield* settle
      assert.deepStrictEqual(
        a.written.map((frame) => frame.startsWith("{") ? JSON.parse(frame).seq : frame),
        ["first", 1, 3, "last"]
      )
      assert.deepStrictEqual(b.written.map((frame) => JSON.parse(frame).seq), [2])
      assert.isTrue(b.session.offer("again"))
      yield* settle
      assert.strictEqual(b.written.at(-1), "again")
      assert.strictEqual(a.written.length, 4)
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("hands a socket the frames offered to it in one go in one write, even with the writer idle and waiting", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const a = yield* openSession(gateway, alice, "a-1")
      const b = yield* openSession(gateway, bob, "b-1")
      yield* settle
      yield* gateway.deliver([delivery(alice, 1), delivery(bob, 2), delivery(alice, 3), delivery(alice, 4)])
      assert.isTrue(a.session.offer("after"))
      yield* settle
      assert.deepStrictEqual(a.calls, [4], "alice's four frames in one call")
      assert.deepStrictEqual(b.calls, [1])
      assert.isTrue(a.session.offer("later"))
      yield* settle
      assert.deepStrictEqual(a.calls, [4, 1])
      assert.strictEqual(a.written.at(-1), "later")
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("a message frame is the entry as docs/protocol.md says, the message shared by the members it goes to", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const a = yield* openSession(gateway, alice, "a-1")
      const b = yield* openSession(gateway, bob, "b-1")
      const shared = delivery(alice, 7).message
      yield* gateway.deliver([{ user_id: alice, seq: 7, message: shared }, { user_id: bob, seq: 12, message: shared }])
      yield* settle
      assert.deepStrictEqual(a.written.map((frame) => JSON.parse(frame)), [{ type: "message", seq: 7, message: shared }])
      assert.deepStrictEqual(b.written.map((frame) => JSON.parse(frame)), [{ type: "message", seq: 12, message: shared }])
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("refuses frames past WS_SEND_QUEUE, and a delivery finding a full queue closes the session as too slow", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway({ sendQueueCapacity: 3 })
      const a = yield* openSession(gateway, alice, "a-1")
      assert.isTrue(a.session.offer("1"))
      assert.isTrue(a.session.offer("2"))
      assert.isTrue(a.session.offer("3"))
      assert.isFalse(a.session.offer("4"), "the fourth frame does not fit")
      yield* gateway.deliver([delivery(alice, 5)])
      assert.deepStrictEqual(a.written, ["close 1008 too slow"])
      yield* settle
      assert.deepStrictEqual(a.written, ["close 1008 too slow", "1", "2", "3"])
      assert.isTrue(a.session.offer("6"), "a written queue takes frames again")
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("closes a session silent past the heartbeat timeout with 4008, ends it and removes its presence", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const silent = yield* openSession(gateway, alice, "a-1")
      const talking = yield* openSession(gateway, bob, "b-1")
      assert.deepStrictEqual(yield* presenceOf(alice), [gatewayId])

      for (let second = 1; second <= 4; second++) {
        yield* TestClock.adjust("1 second")
        talking.session.onMessage(Buffer.from(`{"type":"ping"}`), false)
      }
      yield* settle
      assert.deepStrictEqual(silent.written, [], "4 s of silence is not yet past the timeout")
      assert.strictEqual(yield* gateway.connections, 2)

      // The sweep runs every second (a quarter of the timeout): the next one finds it silent.
      yield* TestClock.adjust("1 second")
      talking.session.onMessage(Buffer.from(`{"type":"ping"}`), false)
      yield* settle
      assert.deepStrictEqual(silent.written, [`close ${CloseCodes.heartbeatTimeout} heartbeat timeout`])
      assert.deepStrictEqual(yield* presenceOf(alice), [], "ended without waiting for the peer's close")
      assert.strictEqual(yield* gateway.connections, 1)
      assert.isTrue(silent.session.offer("late"))
      yield* settle
      assert.strictEqual(silent.written.length, 1, "an ended session is sent nothing")
      assert.deepStrictEqual(talking.written, [], "a session heard from within the timeout stays open")
      assert.deepStrictEqual(yield* presenceOf(bob), [gatewayId])
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("answers a session's frames one at a time, in the order they arrived, after the previous answer is done", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const { socket } = recordingSocket()
      const answered: Array<string> = []
      const release = yield* Deferred.make<void>()
      class Answering extends SocketSession {
        override answer(frame: string | Uint8Array) {
          return Effect.gen(function*() {
            answered.push(`start ${String(frame)}`)
            if (frame === "slow") yield* Deferred.await(release)
            answered.push(`end ${String(frame)}`)
          })
        }
      }
      const session = new Answering("a-1", alice, SessionId.make("sn-a-1"), socket, gateway, gateway.now())
      yield* gateway.attach(session)
      session.onMessage(Buffer.from("slow"), false)
      session.onMessage(Buffer.from("second"), false)
      yield* settle
      session.onMessage(Buffer.from("third"), false)
      yield* settle
      assert.deepStrictEqual(answered, ["start slow"], "nothing else is answered while a frame is")
      yield* Deferred.succeed(release, undefined)
      yield* settle
      assert.deepStrictEqual(answered, ["start slow", "end slow", "start second", "end second", "start third", "end third"])
      session.onMessage(Buffer.from([1, 2]), true)
      yield* settle
      assert.deepStrictEqual(answered.slice(6), ["start 1,2", "end 1,2"], "a binary frame reaches the handler as bytes")
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("answers a frame at once, without a fiber, only when no frame waits before it, never a binary one, nothing once ended", () =>
    Effect.gen(function*() {
      const real = yield* makeGateway()
      let fibers = 0
      const gateway: Gateway["Service"] = { ...real, run: (effect) => (fibers++, real.run(effect)) }
      const { socket } = recordingSocket()
      const answered: Array<string> = []
      const release = yield* Deferred.make<void>()
      class Quick extends SocketSession {
        protected override answerAtOnce(data: Buffer) {
          if (data.toString() !== "quick") return false
          answered.push("at once: quick")
          return true
        }
        override answer(frame: string | Uint8Array) {
          return Effect.gen(function*() {
            if (frame === "slow") yield* Deferred.await(release)
            answered.push(`in a fiber: ${String(frame)}`)
          })
        }
      }
      const session = new Quick("a-1", alice, SessionId.make("sn-a-1"), socket, gateway, gateway.now())
      yield* gateway.attach(session)

      session.onMessage(Buffer.from("quick"), false)
      assert.deepStrictEqual(answered, ["at once: quick"])
      assert.strictEqual(fibers, 0, "no fiber for it")

      session.onMessage(Buffer.from("slow"), false)
      session.onMessage(Buffer.from("quick"), false)
      yield* settle
      assert.deepStrictEqual(answered, ["at once: quick"], "behind a frame being answered, it waits its turn")
      yield* Deferred.succeed(release, undefined)
      yield* settle
      assert.deepStrictEqual(answered.slice(1), ["in a fiber: slow", "in a fiber: quick"])
      assert.strictEqual(fibers, 1)

      session.onMessage(Buffer.from("quick"), true)
      yield* settle
      assert.deepStrictEqual(answered.slice(3), ["in a fiber: 113,117,105,99,107"], "a binary frame takes the general path")

      yield* session.end()
      session.onMessage(Buffer.from("quick"), false)
      yield* settle
      assert.strictEqual(answered.length, 4, "an ended session answers nothing")
    }).pipe(Effect.provide(Presence.layerMemory)))

  it("the ping answered at once is the one the clients write", () => {
    // @im/client, the web client and the bench send JSON.stringify({ type: "ping" }).
    assert.strictEqual(PING.toString(), JSON.stringify({ type: "ping" }))
  })

  it.effect("a client whose socket holds MAX_UNSENT_BYTES not yet sent is too slow: a delivery closes it (1008)", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const { socket, written } = recordingSocket()
      const session = new SocketSession("a-1", alice, SessionId.make("sn-a-1"), socket, gateway, gateway.now())
      yield* gateway.attach(session)
      yield* gateway.deliver([delivery(alice, 1)])
      yield* settle
      assert.strictEqual(written.length, 1)
      ;(socket as { bufferedAmount: number }).bufferedAmount = MAX_UNSENT_BYTES + 1
      yield* gateway.deliver([delivery(alice, 2)])
      yield* settle
      assert.deepStrictEqual(written.slice(1), ["close 1008 too slow"])
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("a session that attaches after closeAll (shutdown) is closed the same way at once", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      yield* gateway.closeAll(1001, "server shutting down")
      const late = yield* openSession(gateway, alice, "late")
      assert.deepStrictEqual(late.written, ["close 1001 server shutting down"])
      assert.deepStrictEqual(yield* presenceOf(alice), [])
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("stops reading a peer whose frames wait for their answer, and reads on once they are taken", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const { socket, written } = recordingSocket()
      const release = yield* Deferred.make<void>()
      const answered: Array<string> = []
      class Answering extends SocketSession {
        override answer(frame: string | Uint8Array) {
          return Effect.andThen(frame === "slow" ? Deferred.await(release) : Effect.void, Effect.sync(() => answered.push(String(frame))))
        }
      }
      const session = new Answering("a-1", alice, SessionId.make("sn-a-1"), socket, gateway, gateway.now())
      yield* gateway.attach(session)
      session.onMessage(Buffer.from("slow"), false)
      yield* settle
      for (let i = 1; i < MAX_UNANSWERED_FRAMES; i++) session.onMessage(Buffer.from(`f${i}`), false)
      assert.deepStrictEqual(written, [], "below the limit the socket is read on")
      session.onMessage(Buffer.from(`f${MAX_UNANSWERED_FRAMES}`), false)
      session.onMessage(Buffer.from("late"), false)
      assert.deepStrictEqual(written, ["pause"], "paused once, at the limit")
      yield* Deferred.succeed(release, undefined)
      yield* settle
      assert.deepStrictEqual(written, ["pause", "resume"])
      assert.strictEqual(answered.length, MAX_UNANSWERED_FRAMES + 2, "every frame answered, the late one too")
      assert.strictEqual(answered.at(-1), "late")
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("a session whose socket closed detaches and leaves Presence, and takes no more frames", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const a = yield* openSession(gateway, alice, "a-1")
      const before = a.session.lastSeen
      yield* TestClock.adjust("2 seconds")
      a.session.onMessage(Buffer.from(`{"type":"ping"}`), false)
      assert.strictEqual(a.session.lastSeen, before + 2_000, "a frame is a sign of life")
      a.session.onClose(1000, Buffer.alloc(0))
      yield* settle
      assert.strictEqual(yield* gateway.connections, 0)
      assert.deepStrictEqual(yield* presenceOf(alice), [])
      assert.isTrue(a.session.offer("late"))
      yield* settle
      assert.deepStrictEqual(a.written, [])
      // Closing it again (shutdown, kick) sends nothing on a closed socket.
      yield* a.session.close(CloseCodes.goingAway, "server shutting down")
      assert.deepStrictEqual(a.written, [])
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("drops the frames of an ended session, and writes the others", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const a = yield* openSession(gateway, alice, "a-1")
      const b = yield* openSession(gateway, bob, "b-1")
      assert.isTrue(a.session.offer("lost"))
      yield* a.session.end()
      a.session.offer("a late push")
      b.session.offer("first")
      yield* settle
      b.session.offer("second")
      yield* settle
      assert.deepStrictEqual(a.written, [])
      assert.deepStrictEqual(b.written, ["first", "second"])
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("closeAll closes every session (1001), even past sockets that refuse their close frame, and takes them out of Presence at once", () =>
    Effect.gen(function*() {
      const gateway = yield* makeGateway()
      const refusing: SessionSocket = {
        sendAll: () => {},
        close: () => {
          throw new Error("the socket is gone")
        },
        bufferedAmount: 0,
        pause: () => {},
        resume: () => {}
      }
      const leaving = Array.from({ length: 3 }, (_, i) => new SocketSession(`c-${i}`, alice, SessionId.make(`sn-c-${i}`), refusing, gateway, 0))
      yield* Effect.forEach(leaving, gateway.attach, { discard: true })
      const b = yield* openSession(gateway, bob, "b-1")
      assert.deepStrictEqual(yield* presenceOf(bob), [gatewayId])
      yield* gateway.closeAll(CloseCodes.goingAway, "server shutting down")
      assert.deepStrictEqual(b.written, ["close 1001 server shutting down"])
      // Not waiting for the sockets to close: by then the gateway may be gone.
      assert.deepStrictEqual([yield* presenceOf(alice), yield* presenceOf(bob)], [[], []])
      assert.strictEqual(yield* gateway.connections, 0)
    }).pipe(Effect.provide(Presence.layerMemory)))

  it.effect("interrupts the fibers it runs (answers to frames) when the gateway stops", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const gateway = yield* makeGateway().pipe(Scope.provide(scope))
      const reading = gateway.run(Effect.never)
      yield* Effect.yieldNow
      assert.isUndefined(reading.pollUnsafe())
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Fiber.await(reading)
      assert.isTrue(Exit.hasInterrupts(exit))
    }).pipe(Effect.provide(Presence.layerMemory)))
})

describe("Gateway and a presence store that loses its data", () => {
  /**
   * Presence in memory that can forget everything at once, as a Redis restarted without
   * persistence does; `holdRestores` makes each restore wait until `releaseRestore`.
   */
  const forgetfulPresence = Effect.gen(function*() {
    const fresh = Effect.provide(Effect.service(Presence), Presence.layerMemory)
    let current = yield* fresh
    let gate: Deferred.Deferred<void> | undefined
    const restores: Array<number> = []
    let failUnregisters = 0
    let failRegisters = 0
    const failure = (operation: string) => Effect.fail(new PortError({ port: "Presence", operation, retryable: true }))
    const presence = Presence.of({
      register: (...args) => Effect.suspend(() => failRegisters-- > 0 ? failure("register") : current.register(...args)),
      unregister: (...args) =>
        Effect.suspend(() =>
          failUnregisters-- > 0 ? failure("unregister") : current.unregister(...args)
        ),
      refresh: (gateway, run) => Effect.suspend(() => current.refresh(gateway, run)),
      restore: (gateway, run, entries) =>
        Effect.suspend(() => {
          restores.push(entries.length)
          return Effect.andThen(gate === undefined ? Effect.void : Deferred.await(gate), Effect.suspend(() => current.restore(gateway, run, entries)))
        }),
      lookup: (users) => Effect.suspend(() => current.lookup(users))
    })
    return {
      presence,
      restores,
      forget: Effect.map(fresh, (emptied) => void (current = emptied)),
      failNextUnregister: Effect.sync(() => void (failUnregisters = 1)),
      failNextRegister: Effect.sync(() => void (failRegisters = 1)),
      holdRestores: Effect.sync(() => void (gate = Deferred.makeUnsafe<void>())),
      releaseRestore: Effect.suspend(() => gate === undefined ? Effect.void : Deferred.succeed(gate, undefined))
    }
  })

  type ForgetfulStore = Effect.Success<typeof forgetfulPresence>

  /** `body` with a gateway on a forgetful store (`before` runs on the store before the gateway starts). */
  const withGateway = <A, E>(
    body: (store: ForgetfulStore, gateway: Gateway["Service"]) => Effect.Effect<A, E, Scope.Scope | Presence>,
    before: (store: ForgetfulStore) => Effect.Effect<void> = () => Effect.void
  ) =>
    Effect.gen(function*() {
      const store = yield* forgetfulPresence
      yield* before(store)
      return yield* Effect.flatMap(makeGateway(), (gateway) => body(store, gateway)).pipe(
        Effect.provideService(Presence, store.presence),
        Effect.scoped
      )
    })

  it.effect("the next refresh registers every session again", () =>
    withGateway((store, gateway) =>
      Effect.gen(function*() {
        yield* openSession(gateway, alice, "a-1")
        yield* openSession(gateway, bob, "b-1")
        yield* TestClock.adjust("2 seconds")
        assert.deepStrictEqual(yield* presenceOf(alice), [gatewayId])
        const restoresBefore = store.restores.length
        yield* store.forget
        assert.deepStrictEqual(yield* presenceOf(alice), [], "the store restarted empty")
        // Refreshes come every heartbeat timeout / 3 (4 s here).
        yield* TestClock.adjust("2 seconds")
        assert.deepStrictEqual(yield* presenceOf(alice), [gatewayId])
        assert.deepStrictEqual(yield* presenceOf(bob), [gatewayId])
        assert.deepStrictEqual(store.restores.slice(restoresBefore), [2], "one restore of both sessions")
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual(store.restores.length, restoresBefore + 1, "known again: no more restores")
      })
    ))

  it.effect("a session that leaves while its gateway restores is not left behind in the store", () =>
    withGateway((store, gateway) =>
      Effect.gen(function*() {
        yield* openSession(gateway, alice, "a-1")
        const b = yield* openSession(gateway, bob, "b-1")
        yield* TestClock.adjust("2 seconds")
        yield* store.forget
        yield* store.holdRestores
        yield* TestClock.adjust("2 seconds")
        // The restore took both sessions; bob's leaves before it is written.
        yield* gateway.detach(b.session)
        yield* store.releaseRestore
        yield* settle
        assert.deepStrictEqual(yield* presenceOf(alice), [gatewayId])
        assert.deepStrictEqual(yield* presenceOf(bob), [], "bob left: his connection is not registered again")
      })
    ))

  it.effect("a session that arrives while its gateway restores is registered after it", () =>
    withGateway((store, gateway) =>
      Effect.gen(function*() {
        yield* openSession(gateway, alice, "a-1")
        yield* TestClock.adjust("2 seconds")
        yield* store.forget
        yield* store.holdRestores
        yield* TestClock.adjust("2 seconds")
        // The restore took alice's session; bob's registers before it is written, which replaces it.
        yield* openSession(gateway, bob, "b-1")
        yield* store.releaseRestore
        yield* settle
        assert.deepStrictEqual(yield* presenceOf(alice), [gatewayId])
        assert.deepStrictEqual(yield* presenceOf(bob), [gatewayId], "bob arrived meanwhile: registered again")
      })
    ))

  it.effect("what a run before this one left under the same gateway id goes at the first refresh", () =>
    withGateway(
      (_, gateway) =>
        Effect.gen(function*() {
          yield* openSession(gateway, alice, "a-1")
          yield* TestClock.adjust("2 seconds")
          assert.deepStrictEqual(yield* presenceOf(carol), [])
          assert.deepStrictEqual(yield* presenceOf(alice), [gatewayId])
        }),
      // The gateway's previous process died without unregistering carol's connection.
      (store) => store.presence.restore(gatewayId, "a run before", [{ user: carol, connection: "c-dead" }]).pipe(Effect.orDie)
    ))

  it.effect("an unregister that fails leaves no connection behind: the next refresh tries it again", () =>
    withGateway((store, gateway) =>
      Effect.gen(function*() {
        yield* openSession(gateway, alice, "a-1")
        const b = yield* openSession(gateway, bob, "b-1")
        yield* TestClock.adjust("2 seconds")
        yield* store.failNextUnregister
        yield* gateway.detach(b.session)
        assert.deepStrictEqual(yield* presenceOf(bob), [gatewayId], "the failed unregister left it")
        yield* TestClock.adjust("2 seconds")
        assert.deepStrictEqual(yield* presenceOf(bob), [])
        assert.deepStrictEqual(yield* presenceOf(alice), [gatewayId])
      })
    ))

  it.effect("a session detached while its register is retried is not left registered", () =>
    withGateway((store, gateway) =>
      Effect.gen(function*() {
        yield* TestClock.adjust("2 seconds")
        const { socket } = recordingSocket()
        const session = new SocketSession("b-1", bob, SessionId.make("sn-b-1"), socket, gateway, gateway.now())
        yield* store.failNextRegister
        const attaching = yield* Effect.forkChild(gateway.attach(session))
        yield* settle
        // Its first register failed; it leaves before the retry, which then succeeds.
        yield* gateway.detach(session)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(attaching)
        assert.deepStrictEqual(yield* presenceOf(bob), [])
      })
    ))
})

describe("Gateway's loops under Vital", () => {
  it.live("a presence refresh that dies tells the service's Vital: the gateway stops rather than go unfound", () =>
    Effect.gen(function*() {
      const { told, vital } = yield* recordingVital
      const presence = yield* Effect.provide(Effect.service(Presence), Presence.layerMemory)
      const what = yield* Effect.scoped(Effect.gen(function*() {
        yield* makeGateway()
        return yield* Deferred.await(told)
      })).pipe(
        Effect.provideService(Presence, Presence.of({ ...presence, refresh: () => Effect.die("the store's client broke") })),
        Effect.provideService(Vital, vital),
        Effect.timeout("2 seconds")
      )
      assert.strictEqual(what, "refreshing the gateway's presence")
    }))
})
