import { UserId } from "@im/domain/Ids"
import { Clock, Config, Context, Data, Duration, Effect, Layer, Redacted, Schema } from "effect"
import { createHmac, timingSafeEqual } from "node:crypto"

/** Why a token was refused; the gateway tells the client in its close reason. */
export class TokenRejected extends Data.TaggedError("TokenRejected")<{
  readonly reason: "missing" | "invalid" | "expired"
}> {
  override get message() {
    return `${this.reason} token`
  }
}

export interface IssuedToken {
  readonly token: string
  readonly expires_at: number
}

const Claims = Schema.Struct({ sub: UserId, exp: Schema.Int })
const decodeClaims = Schema.decodeUnknownOption(Schema.fromJsonString(Claims))

/**
 * Bearer tokens: `base64url(claims).base64url(HMAC-SHA256(claims))`, naming the user (`sub`)
 * and the expiry (`exp`, ms). Stateless, so every instance of every service can verify them.
 */
export class Tokens extends Context.Service<Tokens, {
  readonly issue: (user: UserId) => Effect.Effect<IssuedToken>
  readonly verify: (token: string | undefined) => Effect.Effect<UserId, TokenRejected>
}>()("@im/auth/Tokens") {
  static readonly make = (secret: Redacted.Redacted<string>, ttl: Duration.Duration) => {
    const sign = (payload: string) => createHmac("sha256", Redacted.value(secret)).update(payload).digest()

    const issue = Effect.fn("Tokens.issue")(function*(user: UserId) {
      const expires_at = (yield* Clock.currentTimeMillis) + Duration.toMillis(ttl)
      const payload = Buffer.from(JSON.stringify({ sub: user, exp: expires_at })).toString("base64url")
      return { token: `${payload}.${sign(payload).toString("base64url")}`, expires_at }
    })

    const verify = Effect.fn("Tokens.verify")(function*(token: string | undefined) {
      if (token === undefined || token === "") return yield* new TokenRejected({ reason: "missing" })
      const [payload, signature, ...rest] = token.split(".")
      if (payload === undefined || signature === undefined || rest.length > 0) {
        return yield* new TokenRejected({ reason: "invalid" })
      }
      const expected = sign(payload)
      const given = Buffer.from(signature, "base64url")
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return yield* new TokenRejected({ reason: "invalid" })
      }
      const claims = decodeClaims(Buffer.from(payload, "base64url").toString("utf8"))
      if (claims._tag === "None") return yield* new TokenRejected({ reason: "invalid" })
      if (claims.value.exp <= (yield* Clock.currentTimeMillis)) return yield* new TokenRejected({ reason: "expired" })
      return claims.value.sub
    })

    return Tokens.of({ issue, verify })
  }

  /** `AUTH_SECRET` (at least 32 characters) and `AUTH_TOKEN_TTL` (default 24 hours). */
  static readonly layer = Layer.effect(
    Tokens,
    Effect.gen(function*() {
      const secret = yield* Config.Redacted("AUTH_SECRET")
      if (Redacted.value(secret).length < 32) {
        return yield* Effect.die(new Error("AUTH_SECRET must have at least 32 characters"))
      }
      const ttl = yield* Config.Duration("AUTH_TOKEN_TTL").pipe(Config.withDefault(Duration.hours(24)))
      return Tokens.make(secret, ttl)
    })
  )
}
