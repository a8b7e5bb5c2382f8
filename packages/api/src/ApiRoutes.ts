import { Passwords } from "@im/auth/Passwords"
import { Sessions } from "@im/auth/Sessions"
import { Db } from "@im/db/Db"
import { InvalidCredentials, ServiceUnavailable, Unauthorized, UserNotFound } from "@im/domain/Errors"
import { UserId } from "@im/domain/Ids"
import type { Profile, User } from "@im/domain/User"
import type { PortError } from "@im/ports/PortError"
import { UserStore } from "@im/ports/UserStore"
import { Clock, Effect, Layer, Option, Redacted } from "effect"
import { HttpApiBuilder, HttpApiScalar } from "effect/http-api"
import { randomBytes } from "node:crypto"
import { Authorization, CurrentSession, CurrentUser, ImApi } from "./Api.ts"
import { FilesHandlers } from "./FilesHandlers.ts"
import { FriendsHandlers } from "./FriendsHandlers.ts"
import { GroupsHandlers } from "./GroupsHandlers.ts"
import { MessagesHandlers } from "./MessagesHandlers.ts"
import { LiveSessions } from "./LiveSessions.ts"
import { DescribeRequestErrors } from "./RequestErrors.ts"
import { storeUnavailable } from "./StoreUnavailable.ts"
import { WsDirectory } from "./WsDirectory.ts"

const DEFAULT_PULL_LIMIT = 200

const sessionsUnavailable = (error: PortError) =>
  Effect.logError("session store failed", error).pipe(
    Effect.andThen(Effect.fail(new ServiceUnavailable({ message: "sessions cannot be checked now, try again" })))
  )

/** A bearer access token whose session is live (not logged out): its user and session. */
export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.gen(function*() {
    const sessions = yield* Sessions
    return Authorization.of({
      bearer: (httpEffect, { credential }) =>
        sessions.authenticate(Redacted.value(credential)).pipe(
          Effect.catchTags({
            TokenRejected: (rejected) => Effect.fail(new Unauthorized({ message: rejected.message })),
            PortError: sessionsUnavailable
          }),
          Effect.flatMap(({ session, user }) =>
            httpEffect.pipe(Effect.provideService(CurrentUser, user), Effect.provideService(CurrentSession, session))
          )
        )
    })
  })
)

const SystemHandlers = HttpApiBuilder.group(ImApi, "system", (handlers) =>
  Effect.succeed(handlers.handle("health", () => Effect.succeed({ status: "ok" as const }))))

const AuthHandlers = HttpApiBuilder.group(
  ImApi,
  "auth",
  Effect.fn(function*(handlers) {
    const users = yield* UserStore
    const passwords = yield* Passwords
    const sessions = yield* Sessions
    const live = yield* LiveSessions
    const gateways = yield* WsDirectory
    // Login spends the same time whether or not the account exists.
    const decoyHash = yield* passwords.hash(randomBytes(16).toString("hex"))

    return handlers
      .handle("register", ({ payload }) =>
        Effect.gen(function*() {
          const user: Profile = {
            id: UserId.make(`u_${randomBytes(12).toString("base64url")}`),
            account: payload.account,
            name: payload.name,
            ...(payload.email === undefined ? {} : { email: payload.email }),
            created_at: yield* Clock.currentTimeMillis
          }
          yield* users.create({ ...user, password_hash: yield* passwords.hash(payload.password) })
          yield* Effect.logInfo("user registered", { user: user.id })
          return user
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("login", ({ payload }) =>
        Effect.gen(function*() {
          const found = yield* users.findByAccount(payload.account)
          const valid = yield* passwords.verify(
            payload.password,
            Option.match(found, { onNone: () => decoyHash, onSome: (user) => user.password_hash })
          )
          if (Option.isNone(found) || !valid) {
            return yield* new InvalidCredentials({ message: "unknown account or wrong password" })
          }
          const { password_hash: _, ...user } = found.value
          const issued = yield* sessions.start(user.id)
          const ws_url = yield* gateways.pick
          return { ...issued, user, ...(ws_url === undefined ? {} : { ws_url }) }
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("refresh", ({ payload }) =>
        sessions.refresh(payload.refresh_token).pipe(
          Effect.map(({ expires_at, refresh_expires_at, refresh_token, token }) => ({
            token,
            expires_at,
            refresh_token,
            refresh_expires_at
          })),
          Effect.catchTags({
            TokenRejected: (rejected) => Effect.fail(new Unauthorized({ message: rejected.message })),
            PortError: sessionsUnavailable
          })
        ))
      .handle("logout", () =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const session = yield* CurrentSession
          yield* sessions.end(session)
          // After the session ended: a socket opened from now on is refused at its upgrade.
          const closed = yield* live.close(user, session, "logged out")
          yield* Effect.logInfo("logged out", { user, session, sockets_closed: closed })
        }).pipe(Effect.catchTag("PortError", sessionsUnavailable)))
  })
)

const InboxHandlers = HttpApiBuilder.group(
  ImApi,
  "inbox",
  Effect.fn(function*(handlers) {
    const db = yield* Db
    return handlers
      .handle("newest", () =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          return { seq: yield* db.newest(user) }
        }))
      .handle("pull", ({ query }) =>
        Effect.gen(function*() {
          const user = yield* CurrentUser
          const page = yield* db.pull({ user, after: query.after, until: query.until, limit: query.limit ?? DEFAULT_PULL_LIMIT })
          yield* Effect.logDebug("pulled", { user, server_ids: page.entries.map((entry) => entry.message.server_id) })
          return page
        }))
  })
)

const UsersHandlers = HttpApiBuilder.group(
  ImApi,
  "users",
  Effect.fn(function*(handlers) {
    const users = yield* UserStore
    const found = <A extends User>(user: Option.Option<A>, id: string) =>
      Option.match(user, {
        onNone: () => Effect.fail(new UserNotFound({ message: `no user ${id}` })),
        onSome: Effect.succeed
      })
    return handlers
      .handle("me", () =>
        Effect.gen(function*() {
          const me = yield* CurrentUser
          return yield* found(yield* users.findProfile(me), me)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("update", ({ payload }) =>
        Effect.gen(function*() {
          const me = yield* CurrentUser
          return yield* found(yield* users.update(me, payload), me)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("search", ({ query }) =>
        (query.email !== undefined
          ? users.findByEmail(query.email)
          : Effect.map(users.findByAccount(query.account ?? ""), Option.map(({ email: _e, password_hash: _h, ...user }): User => user))).pipe(
            Effect.map(Option.match({ onNone: (): Array<User> => [], onSome: (user) => [user] })),
            Effect.catchTag("PortError", storeUnavailable)
          ))
      .handle("get", ({ params }) =>
        Effect.flatMap(users.findById(params.user_id), (user) => found(user, params.user_id)).pipe(
          Effect.catchTag("PortError", storeUnavailable)
        ))
  })
)

const GatewayHandlers = HttpApiBuilder.group(
  ImApi,
  "gateway",
  Effect.fn(function*(handlers) {
    const gateways = yield* WsDirectory
    return handlers.handle("pick", () =>
      Effect.map(gateways.pick, (ws_url) => (ws_url === undefined ? {} : { ws_url })))
  })
)

/** The HTTP API's routes, `/openapi.json` and the `/docs` page. */
export const ApiRoutes = Layer.mergeAll(
  HttpApiBuilder.layer(ImApi, { openapiPath: "/openapi.json" }),
  HttpApiScalar.layer(ImApi, { path: "/docs" }),
  DescribeRequestErrors
).pipe(
  Layer.provide([SystemHandlers, AuthHandlers, InboxHandlers, UsersHandlers, GroupsHandlers, GatewayHandlers, FilesHandlers, FriendsHandlers, MessagesHandlers]),
  Layer.provide(AuthorizationLive)
)
