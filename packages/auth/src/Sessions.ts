import { SessionId, type UserId } from "@im/domain/Ids"
import type { PortError } from "@im/ports/PortError"
import { SessionStore } from "@im/ports/SessionStore"
import { Clock, Context, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { type AccessClaims, type IssuedTokens, TokenRejected, Tokens } from "./Tokens.ts"

const freshId = (prefix: string) => `${prefix}${randomBytes(16).toString("base64url")}`

/**
 * Login sessions: what a login opens, a refresh continues and a logout ends. Tokens are signed
 * and name their session; a token is accepted only while its session is live in the
 * SessionStore, and a refresh token only once.
 */
export class Sessions extends Context.Service<Sessions, {
  /** Opens a session for a user who proved who they are; its first pair of tokens. */
  readonly start: (user: UserId) => Effect.Effect<IssuedTokens, PortError>
  /** A new pair for a refresh token of a live session; that refresh token is refused from then on. */
  readonly refresh: (refreshToken: string) => Effect.Effect<IssuedTokens & AccessClaims, TokenRejected | PortError>
  /** The user and session of an access token whose session is live. */
  readonly authenticate: (token: string | undefined) => Effect.Effect<AccessClaims, TokenRejected | PortError>
  readonly isActive: (session: SessionId) => Effect.Effect<boolean, PortError>
  /** Ends a session: its access and refresh tokens are refused from now on, everywhere. */
  readonly end: (session: SessionId) => Effect.Effect<void, PortError>
}>()("@im/auth/Sessions") {
  static readonly layer = Layer.effect(
    Sessions,
    Effect.gen(function*() {
      const tokens = yield* Tokens
      const store = yield* SessionStore

      const start = Effect.fn("Sessions.start")(function*(user: UserId) {
        const session = SessionId.make(freshId("sn_"))
        const refresh_id = freshId("")
        const issued = yield* tokens.issue({ user, session, refresh_id })
        yield* store.create({
          id: session,
          user,
          refresh_id,
          created_at: yield* Clock.currentTimeMillis,
          expires_at: issued.refresh_expires_at
        })
        return issued
      })

      const refresh = Effect.fn("Sessions.refresh")(function*(refreshToken: string) {
        const claims = yield* tokens.verifyRefresh(refreshToken)
        const next = freshId("")
        const issued = yield* tokens.issue({ ...claims, refresh_id: next })
        const rotated = yield* store.rotate(claims.session, {
          from: claims.refresh_id,
          to: next,
          expires_at: issued.refresh_expires_at
        })
        if (!rotated) return yield* new TokenRejected({ reason: "revoked" })
        return { ...issued, user: claims.user, session: claims.session }
      })

      const authenticate = Effect.fn("Sessions.authenticate")(function*(token: string | undefined) {
        const claims = yield* tokens.verify(token)
        if (!(yield* store.isActive(claims.session))) return yield* new TokenRejected({ reason: "revoked" })
        return claims
      })

      return Sessions.of({
        start,
        refresh,
        authenticate,
        isActive: store.isActive,
        end: Effect.fn("Sessions.end")(function*(session: SessionId) {
          yield* store.revoke(session)
        })
      })
    })
  )
}
