import { assert, describe, it } from "@effect/vitest"
import { SessionId, UserId } from "@im/domain/Ids"
import { Duration, Effect, Redacted } from "effect"
import { TestClock } from "effect/testing"
import { createHmac } from "node:crypto"
import { Passwords } from "../src/Passwords.ts"
import { Tokens } from "../src/Tokens.ts"

const SECRET = "a-secret-of-at-least-thirty-two-chars"
const tokens = Tokens.make(Redacted.make(SECRET), Duration.hours(1), Duration.days(30))
const alice = UserId.make("u_alice")
const claims = { user: alice, session: SessionId.make("sn_1"), refresh_id: "r1" }

describe("Tokens", () => {
  it.effect("an access token names its user and session until it expires", () =>
    Effect.gen(function*() {
      const issued = yield* tokens.issue(claims)
      assert.strictEqual(issued.expires_at, Duration.toMillis(Duration.hours(1)))
      assert.strictEqual(issued.refresh_expires_at, Duration.toMillis(Duration.days(30)))
      assert.deepStrictEqual(yield* tokens.verify(issued.token), { user: alice, session: claims.session })
      yield* TestClock.adjust(Duration.hours(1))
      const error = yield* Effect.flip(tokens.verify(issued.token))
      assert.strictEqual(error.reason, "expired")
    }))

  it.effect("a refresh token names its refresh and outlives the access token until its own expiry", () =>
    Effect.gen(function*() {
      const { refresh_token } = yield* tokens.issue(claims)
      yield* TestClock.adjust(Duration.days(29))
      assert.deepStrictEqual(yield* tokens.verifyRefresh(refresh_token), claims)
      yield* TestClock.adjust(Duration.days(1))
      assert.strictEqual((yield* Effect.flip(tokens.verifyRefresh(refresh_token))).reason, "expired")
    }))

  it.effect("an access token is no refresh token, and a refresh token no access token", () =>
    Effect.gen(function*() {
      const { refresh_token, token } = yield* tokens.issue(claims)
      assert.strictEqual((yield* Effect.flip(tokens.verify(refresh_token))).reason, "invalid")
      assert.strictEqual((yield* Effect.flip(tokens.verifyRefresh(token))).reason, "invalid")
    }))

  it.effect("refuses missing, malformed, tampered, foreign and old-style tokens", () =>
    Effect.gen(function*() {
      const { token } = yield* tokens.issue(claims)
      const [payload, signature] = token.split(".")
      const forged = Buffer.from(JSON.stringify({ sub: "u_mallory", sid: "sn_1", typ: "access", exp: 9e15 })).toString(
        "base64url"
      )
      const other = Tokens.make(Redacted.make("another-secret-of-thirty-two-chars!!"), Duration.hours(1))
      const foreign = (yield* other.issue(claims)).token
      // Signed with the right secret, but without a session or a kind: what tokens looked like before.
      const sign = (body: object) => {
        const encoded = Buffer.from(JSON.stringify(body)).toString("base64url")
        return `${encoded}.${createHmac("sha256", SECRET).update(encoded).digest("base64url")}`
      }
      const reasons = yield* Effect.forEach(
        [undefined, "", "garbage", `${forged}.${signature}`, `${payload}.${signature}x`, `${token}.x`, foreign, sign({ sub: alice, exp: 9e15 }),
          sign({ sub: alice, sid: "sn_1", typ: "admin", exp: 9e15 })],
        (candidate) => Effect.flip(tokens.verify(candidate)).pipe(Effect.map((e) => e.reason))
      )
      assert.deepStrictEqual(reasons, ["missing", "missing", "invalid", "invalid", "invalid", "invalid", "invalid", "invalid", "invalid"])
      // The same signing, with the claims of today: accepted (so the two above were refused for their claims).
      assert.deepStrictEqual(yield* tokens.verify(sign({ sub: alice, sid: "sn_1", typ: "access", exp: 9e15 })), {
        user: alice,
        session: claims.session
      })
    }))

  it.effect("accepts only the signature's own spelling: not one with other unused bits, nor with characters base64url skips", () =>
    Effect.gen(function*() {
      const { token } = yield* tokens.issue(claims)
      const [payload, signature] = token.split(".") as [string, string]
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
      // 32 bytes are 43 characters, the last holding 4 bits of the signature and 2 unused ones.
      const last = alphabet.indexOf(signature.at(-1)!)
      const unusedBitsSet = `${signature.slice(0, -1)}${alphabet[last | 1]}`
      assert.notStrictEqual(unusedBitsSet, signature)
      assert.isTrue(Buffer.from(unusedBitsSet, "base64url").equals(Buffer.from(signature, "base64url")), "the same bytes once decoded")
      const reasons = yield* Effect.forEach(
        [`${payload}.${unusedBitsSet}`, `${payload}.${signature.slice(0, 10)}!${signature.slice(10)}`, `${payload}.${signature}=`],
        (candidate) => Effect.flip(tokens.verify(candidate)).pipe(Effect.map((e) => e.reason))
      )
      assert.deepStrictEqual(reasons, ["invalid", "invalid", "invalid"])
      assert.deepStrictEqual(yield* tokens.verify(`${payload}.${signature}`), { user: alice, session: claims.session })
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
