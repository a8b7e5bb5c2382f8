import { assert, describe, it } from "@effect/vitest"
import { UserId } from "@im/domain/Ids"
import { SessionStore } from "@im/ports/SessionStore"
import { Duration, Effect, Layer, Redacted } from "effect"
import { TestClock } from "effect/testing"
import { Sessions } from "../src/Sessions.ts"
import { Tokens } from "../src/Tokens.ts"

const tokens = Layer.succeed(Tokens, Tokens.make(Redacted.make("a-secret-of-at-least-thirty-two-chars"), Duration.hours(1), Duration.days(30)))
const sessions = Sessions.layer.pipe(Layer.provideMerge(Layer.merge(tokens, SessionStore.layerMemory)))
const alice = UserId.make("u_alice")

const reasonOf = <A, R>(effect: Effect.Effect<A, { readonly _tag: string; readonly reason?: string }, R>) =>
  Effect.flip(effect).pipe(Effect.map((error) => error.reason ?? error._tag))

describe("Sessions", () => {
  it.effect("a login's access token is accepted while its session lives", () =>
    Effect.gen(function*() {
      const s = yield* Sessions
      const issued = yield* s.start(alice)
      const claims = yield* s.authenticate(issued.token)
      assert.strictEqual(claims.user, alice)
      assert.isTrue(yield* s.isActive(claims.session))
    }).pipe(Effect.provide(sessions)))

  it.effect("refresh answers a new pair and refuses the old refresh token from then on", () =>
    Effect.gen(function*() {
      const s = yield* Sessions
      const first = yield* s.start(alice)
      const session = (yield* s.authenticate(first.token)).session
      yield* TestClock.adjust(Duration.minutes(1))
      const second = yield* s.refresh(first.refresh_token)
      assert.strictEqual(second.session, session)
      assert.strictEqual(second.user, alice)
      assert.notStrictEqual(second.refresh_token, first.refresh_token)
      assert.strictEqual(second.refresh_expires_at, first.refresh_expires_at + Duration.toMillis(Duration.minutes(1)))
      assert.strictEqual(yield* reasonOf(s.refresh(first.refresh_token)), "revoked")
      const third = yield* s.refresh(second.refresh_token)
      assert.strictEqual((yield* s.authenticate(third.token)).session, session)
      // The earlier access tokens of the session stay good until they expire: same session.
      assert.strictEqual((yield* s.authenticate(first.token)).session, session)
    }).pipe(Effect.provide(sessions)))

  it.effect("an access token does not refresh, and a refresh token does not authenticate", () =>
    Effect.gen(function*() {
      const s = yield* Sessions
      const issued = yield* s.start(alice)
      assert.strictEqual(yield* reasonOf(s.refresh(issued.token)), "invalid")
      assert.strictEqual(yield* reasonOf(s.authenticate(issued.refresh_token)), "invalid")
      // Neither attempt spent the refresh token.
      yield* s.refresh(issued.refresh_token)
    }).pipe(Effect.provide(sessions)))

  it.effect("end refuses the session's access and refresh tokens; the user's other sessions go on", () =>
    Effect.gen(function*() {
      const s = yield* Sessions
      const phone = yield* s.start(alice)
      const laptop = yield* s.start(alice)
      const ended = yield* s.authenticate(phone.token)
      yield* s.end(ended.session)
      assert.strictEqual(yield* reasonOf(s.authenticate(phone.token)), "revoked")
      assert.strictEqual(yield* reasonOf(s.refresh(phone.refresh_token)), "revoked")
      assert.isFalse(yield* s.isActive(ended.session))
      assert.strictEqual((yield* s.authenticate(laptop.token)).user, alice)
      yield* s.refresh(laptop.refresh_token)
    }).pipe(Effect.provide(sessions)))

  it.effect("a session that was not refreshed in time is over", () =>
    Effect.gen(function*() {
      const s = yield* Sessions
      const issued = yield* s.start(alice)
      yield* TestClock.adjust(Duration.days(30))
      assert.strictEqual(yield* reasonOf(s.refresh(issued.refresh_token)), "expired")
      assert.strictEqual(yield* reasonOf(s.authenticate(issued.token)), "expired")
    }).pipe(Effect.provide(sessions)))
})
