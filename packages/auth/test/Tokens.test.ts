import { assert, describe, it } from "@effect/vitest"
import { UserId } from "@im/domain/Ids"
import { Duration, Effect, Redacted } from "effect"
import { TestClock } from "effect/testing"
import { Passwords } from "../src/Passwords.ts"
import { Tokens } from "../src/Tokens.ts"

const tokens = Tokens.make(Redacted.make("a-secret-of-at-least-thirty-two-chars"), Duration.hours(1))
const alice = UserId.make("u_alice")

describe("Tokens", () => {
  it.effect("a token names its user until it expires", () =>
    Effect.gen(function*() {
      const { token } = yield* tokens.issue(alice)
      assert.strictEqual(yield* tokens.verify(token), alice)
      yield* TestClock.adjust(Duration.hours(1))
      const error = yield* Effect.flip(tokens.verify(token))
      assert.strictEqual(error.reason, "expired")
    }))

  it.effect("refuses missing, malformed, tampered and foreign tokens", () =>
    Effect.gen(function*() {
      const { token } = yield* tokens.issue(alice)
      const [payload, signature] = token.split(".")
      const forged = Buffer.from(JSON.stringify({ sub: "u_mallory", exp: 9e15 })).toString("base64url")
      const other = Tokens.make(Redacted.make("another-secret-of-thirty-two-chars!!"), Duration.hours(1))
      const foreign = (yield* other.issue(alice)).token
      const reasons = yield* Effect.forEach(
        [undefined, "", "garbage", `${forged}.${signature}`, `${payload}.${signature}x`, `${token}.x`, foreign],
        (candidate) => Effect.flip(tokens.verify(candidate)).pipe(Effect.map((e) => e.reason))
      )
      assert.deepStrictEqual(reasons, ["missing", "missing", "invalid", "invalid", "invalid", "invalid", "invalid"])
    }))
})

describe("Passwords", () => {
  it.live("verifies the right password only", () =>
    Effect.gen(function*() {
      const passwords = yield* Passwords
      const hash = yield* passwords.hash("correct horse battery")
      assert.isFalse(hash.includes("correct horse"))
      assert.isTrue(yield* passwords.verify("correct horse battery", hash))
      assert.isFalse(yield* passwords.verify("correct horse battery!", hash))
      assert.isFalse(yield* passwords.verify("correct horse battery", "not-a-hash"))
    }).pipe(Effect.provide(Passwords.layer)))
})
