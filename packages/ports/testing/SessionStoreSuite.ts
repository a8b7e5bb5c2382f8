import { assert } from "@effect/vitest"
import { SessionId } from "@im/domain/Ids"
import { Clock, Effect, type Layer } from "effect"
import { type SessionRecord, SessionStore } from "../src/SessionStore.ts"
import { freshUserId, unique } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

const HOUR = 3_600_000

const makeSession = (now: number, overrides: Partial<SessionRecord> = {}): SessionRecord => ({
  id: SessionId.make(unique("sn")),
  user: freshUserId(),
  refresh_id: unique("r"),
  created_at: now,
  expires_at: now + HOUR,
  ...overrides
})

/**
 * The SessionStore contract: a session is live from create until revoke or expiry, and exactly
 * one refresh id of it is good at a time.
 */
export const sessionStoreSuite = (name: string, adapter: Layer.Layer<SessionStore, unknown>, options: SuiteOptions = {}) =>
  describeAdapter(`SessionStore conformance: ${name}`, adapter, options, (it) => {
    it.effect("a created session is live; an unknown one is not", () =>
      Effect.gen(function*() {
        const sessions = yield* SessionStore
        const session = makeSession(yield* Clock.currentTimeMillis)
        assert.isFalse(yield* sessions.isActive(session.id))
        yield* sessions.create(session)
        assert.isTrue(yield* sessions.isActive(session.id))
        assert.isFalse(yield* sessions.isActive(SessionId.make(unique("sn"))))
      }))

    it.effect("rotate takes the current refresh id once; the old one is refused from then on", () =>
      Effect.gen(function*() {
        const sessions = yield* SessionStore
        const now = yield* Clock.currentTimeMillis
        const session = makeSession(now)
        yield* sessions.create(session)
        const second = unique("r")
        assert.isTrue(yield* sessions.rotate(session.id, { from: session.refresh_id, to: second, expires_at: now + 2 * HOUR }))
        // The same call again (a retry whose answer was lost) is done already.
        assert.isTrue(yield* sessions.rotate(session.id, { from: session.refresh_id, to: second, expires_at: now + 2 * HOUR }))
        // Any other use of the old refresh id is refused, and changes nothing.
        assert.isFalse(yield* sessions.rotate(session.id, { from: session.refresh_id, to: unique("r"), expires_at: now + HOUR }))
        assert.isFalse(yield* sessions.rotate(session.id, { from: unique("r"), to: unique("r"), expires_at: now + HOUR }))
        const third = unique("r")
        assert.isTrue(yield* sessions.rotate(session.id, { from: second, to: third, expires_at: now + HOUR }))
        assert.isTrue(yield* sessions.isActive(session.id))
        assert.isFalse(yield* sessions.rotate(SessionId.make(unique("sn")), { from: third, to: unique("r"), expires_at: now + HOUR }))
      }))

    it.effect("creating a session again changes nothing", () =>
      Effect.gen(function*() {
        const sessions = yield* SessionStore
        const now = yield* Clock.currentTimeMillis
        const session = makeSession(now)
        yield* sessions.create(session)
        yield* sessions.create(session)
        yield* sessions.create({ ...session, refresh_id: unique("r") })
        assert.isTrue(yield* sessions.rotate(session.id, { from: session.refresh_id, to: unique("r"), expires_at: now + HOUR }))
      }))

    it.effect("revoke ends one session for good; the user's other sessions stay", () =>
      Effect.gen(function*() {
        const sessions = yield* SessionStore
        const now = yield* Clock.currentTimeMillis
        const ended = makeSession(now)
        const other = makeSession(now, { user: ended.user })
        yield* sessions.create(ended)
        yield* sessions.create(other)
        yield* sessions.revoke(ended.id)
        assert.isFalse(yield* sessions.isActive(ended.id))
        assert.isFalse(yield* sessions.rotate(ended.id, { from: ended.refresh_id, to: unique("r"), expires_at: now + HOUR }))
        assert.isTrue(yield* sessions.isActive(other.id))
        yield* sessions.revoke(ended.id)
        yield* sessions.revoke(SessionId.make(unique("sn")))
        assert.isFalse(yield* sessions.isActive(ended.id))
        assert.isTrue(yield* sessions.rotate(other.id, { from: other.refresh_id, to: unique("r"), expires_at: now + HOUR }))
      }))

    it.effect("a session is over at its expiry, which rotate moves", () =>
      Effect.gen(function*() {
        const sessions = yield* SessionStore
        const now = yield* Clock.currentTimeMillis
        const expired = makeSession(now - 2 * HOUR, { expires_at: now - HOUR })
        yield* sessions.create(expired)
        assert.isFalse(yield* sessions.isActive(expired.id))
        assert.isFalse(yield* sessions.rotate(expired.id, { from: expired.refresh_id, to: unique("r"), expires_at: now + HOUR }))

        const session = makeSession(now)
        yield* sessions.create(session)
        assert.isTrue(yield* sessions.rotate(session.id, { from: session.refresh_id, to: unique("r"), expires_at: now - 1 }))
        assert.isFalse(yield* sessions.isActive(session.id))
        // A new session of the same user is live, whatever its older sessions became.
        const next = makeSession(now, { user: session.user })
        yield* sessions.create(next)
        assert.isTrue(yield* sessions.isActive(next.id))
        assert.isFalse(yield* sessions.isActive(session.id))
      }))
  })
