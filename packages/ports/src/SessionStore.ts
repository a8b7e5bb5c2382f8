import type { SessionId, UserId } from "@im/domain/Ids"
import { Clock, Context, Effect, Layer } from "effect"
import type { PortError } from "./PortError.ts"

/** One login session: what its tokens name, and which of its refresh tokens is still good. */
export interface SessionRecord {
  readonly id: SessionId
  readonly user: UserId
  /** The id of the session's one refresh token that may still be used. */
  readonly refresh_id: string
  readonly created_at: number
  /** When that refresh token expires (ms): past it the session is over. */
  readonly expires_at: number
}

/**
 * Which login sessions are live, shared by every instance of every service: a session is live
 * from `create` until `revoke` or its `expires_at` (read from the Effect clock). Tokens stay
 * signed and self-describing; this is what lets a server refuse them before they expire.
 */
export class SessionStore extends Context.Service<SessionStore, {
  /** Records a new session (again: no change). Also forgets the user's sessions that are over. */
  readonly create: (session: SessionRecord) => Effect.Effect<void, PortError>
  /**
   * Replaces a live session's refresh id `from` by `to` and moves its expiry; true when it did.
   * False, changing nothing, when the session is over or its refresh id is neither `from` nor
   * `to` (a refresh token used before). Seeing `to` already (a retried call) counts as done.
   */
  readonly rotate: (
    id: SessionId,
    rotation: { readonly from: string; readonly to: string; readonly expires_at: number }
  ) => Effect.Effect<boolean, PortError>
  /** Ends the session for good (an unknown or ended one: no change). */
  readonly revoke: (id: SessionId) => Effect.Effect<void, PortError>
  readonly isActive: (id: SessionId) => Effect.Effect<boolean, PortError>
}>()("@im/ports/SessionStore") {
  static readonly layerMemory = Layer.sync(SessionStore, () => {
    const sessions = new Map<SessionId, SessionRecord>()
    const live = (id: SessionId, now: number) => {
      const session = sessions.get(id)
      return session !== undefined && session.expires_at > now ? session : undefined
    }
    return SessionStore.of({
      create: (session) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          for (const [id, other] of sessions) {
            if (other.user === session.user && other.expires_at <= now) sessions.delete(id)
          }
          if (!sessions.has(session.id)) sessions.set(session.id, session)
        }),
      rotate: (id, { expires_at, from, to }) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const session = live(id, now)
          if (session === undefined || (session.refresh_id !== from && session.refresh_id !== to)) return false
          sessions.set(id, { ...session, refresh_id: to, expires_at })
          return true
        }),
      revoke: (id) => Effect.sync(() => void sessions.delete(id)),
      isActive: (id) => Effect.map(Clock.currentTimeMillis, (now) => live(id, now) !== undefined)
    })
  })
}
