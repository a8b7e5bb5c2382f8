import * as Settings from "@im/ports/Settings"
import { SessionId, UserId } from "@im/domain/Ids"
import { Clock, Config, Context, Data, Duration, Effect, Layer, Redacted, Schema } from "effect"
import { createHmac, timingSafeEqual } from "node:crypto"

/** Why a token was refused; the gateway tells the client in its close reason (`<reason> token`). */
export class TokenRejected extends Data.TaggedError("TokenRejected")<{
  /** `revoked`: its session ended (logout), or a refresh token that was used already. */
  readonly reason: "missing" | "invalid" | "expired" | "revoked"
}> {
  override get message() {
    return `${this.reason} token`
  }
}

/** What a login or a refresh answers: an access token and the refresh token to get the next. */
export interface IssuedTokens {
  readonly token: string
  readonly expires_at: number
  readonly refresh_token: string
  readonly refresh_expires_at: number
}

/** Who an access token speaks for, and in which login session. */
export interface AccessClaims {
  readonly user: UserId
  readonly session: SessionId
}

/** A refresh token also names which refresh of its session it is (`refresh_id`), used once. */
export interface RefreshClaims extends AccessClaims {
  readonly refresh_id: string
}

const Claims = Schema.Struct({
  sub: UserId,
  sid: SessionId,
  /** access or refresh: one is never accepted as the other. */
  typ: Schema.Literals(["access", "refresh"]),
  exp: Schema.Int,
  rid: Schema.optionalKey(Schema.String)
})
const decodeClaims = Schema.decodeUnknownOption(Schema.fromJsonString(Claims))

/**
 * Bearer tokens: `base64url(claims).base64url(HMAC-SHA256(claims))`, naming the user (`sub`),
 * the login session (`sid`), the kind (`typ`: access or refresh), the expiry (`exp`, ms) and, for a
 * refresh token, which refresh it is (`rid`). The signature makes them verifiable by every
 * instance of every service; whether their session is still live is the SessionStore's to say.
 */
export class Tokens extends Context.Service<Tokens, {
  readonly issue: (claims: RefreshClaims) => Effect.Effect<IssuedTokens>
  /** An access token's claims; refresh tokens are refused. */
  readonly verify: (token: string | undefined) => Effect.Effect<AccessClaims, TokenRejected>
  /** A refresh token's claims; access tokens are refused. */
  readonly verifyRefresh: (token: string | undefined) => Effect.Effect<RefreshClaims, TokenRejected>
}>()("@im/auth/Tokens") {
  static readonly make = (
    secret: Redacted.Redacted<string>,
    ttl: Duration.Duration,
    refreshTtl: Duration.Duration = Duration.days(30)
  ) => {
    const sign = (payload: string) => createHmac("sha256", Redacted.value(secret)).update(payload).digest()
    const seal = (claims: typeof Claims.Type) => {
      const payload = Buffer.from(JSON.stringify(claims)).toString("base64url")
      return `${payload}.${sign(payload).toString("base64url")}`
    }

    const issue = Effect.fn("Tokens.issue")(function*(claims: RefreshClaims) {
      const now = yield* Clock.currentTimeMillis
      const expires_at = now + Duration.toMillis(ttl)
      const refresh_expires_at = now + Duration.toMillis(refreshTtl)
      const common = { sub: claims.user, sid: claims.session }
      return {
        token: seal({ ...common, typ: "access", exp: expires_at }),
        expires_at,
        refresh_token: seal({ ...common, typ: "refresh", exp: refresh_expires_at, rid: claims.refresh_id }),
        refresh_expires_at
      }
    })

    const open = Effect.fnUntraced(function*(token: string | undefined, kind: "access" | "refresh") {
      if (token === undefined || token === "") return yield* new TokenRejected({ reason: "missing" })
      const [payload, signature, ...rest] = token.split(".")
      if (payload === undefined || signature === undefined || rest.length > 0) {
        return yield* new TokenRejected({ reason: "invalid" })
      }
      // The signature's text is compared, not its decoded bytes: base64url decoding skips
      // characters outside the alphabet and the last character's unused bits, so other texts
      // would pass for the same signature, and a token would have many spellings.
      const expected = Buffer.from(sign(payload).toString("base64url"))
      const given = Buffer.from(signature)
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return yield* new TokenRejected({ reason: "invalid" })
      }
      const claims = decodeClaims(Buffer.from(payload, "base64url").toString("utf8"))
      if (claims._tag === "None" || claims.value.typ !== kind) return yield* new TokenRejected({ reason: "invalid" })
      if (claims.value.exp <= (yield* Clock.currentTimeMillis)) return yield* new TokenRejected({ reason: "expired" })
      return claims.value
    })

    const verify = Effect.fn("Tokens.verify")(function*(token: string | undefined) {
      const claims = yield* open(token, "access")
      return { user: claims.sub, session: claims.sid }
    })

    const verifyRefresh = Effect.fn("Tokens.verifyRefresh")(function*(token: string | undefined) {
      const claims = yield* open(token, "refresh")
      if (claims.rid === undefined) return yield* new TokenRejected({ reason: "invalid" })
      return { user: claims.sub, session: claims.sid, refresh_id: claims.rid }
    })

    return Tokens.of({ issue, verify, verifyRefresh })
  }

  /** `AUTH_TOKEN_TTL` (access tokens, default 24 hours) and `AUTH_REFRESH_TTL` (refresh tokens, default 30 days). */
  static readonly lifetimes = Config.all({
    tokenTtl: Settings.positiveDuration("AUTH_TOKEN_TTL", Duration.hours(24)),
    refreshTtl: Settings.positiveDuration("AUTH_REFRESH_TTL", Duration.days(30))
  })

  /**
   * `AUTH_SECRET` (at least 32 characters), `AUTH_TOKEN_TTL` (access tokens, default 24 hours)
   * and `AUTH_REFRESH_TTL` (refresh tokens, default 30 days).
   */
  static readonly layer = Layer.effect(
    Tokens,
    Effect.gen(function*() {
      const secret = yield* Config.Redacted("AUTH_SECRET")
      if (Redacted.value(secret).length < 32) {
        return yield* Effect.die(new Error("AUTH_SECRET must have at least 32 characters"))
      }
      const { refreshTtl, tokenTtl } = yield* Tokens.lifetimes
      return Tokens.make(secret, tokenTtl, refreshTtl)
    })
  )
}
