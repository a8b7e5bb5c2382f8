import { Passwords } from "@im/auth/Passwords"
import { Tokens } from "@im/auth/Tokens"
import { Db } from "@im/db/Db"
import { InvalidCredentials, ServiceUnavailable, Unauthorized, UserNotFound } from "@im/domain/Errors"
import { UserId } from "@im/domain/Ids"
import type { User } from "@im/domain/User"
import type { PortError } from "@im/ports/PortError"
import { UserStore } from "@im/ports/UserStore"
import { Clock, Effect, Layer, Option, Redacted } from "effect"
import { HttpApiBuilder, HttpApiScalar } from "effect/http-api"
import { randomBytes } from "node:crypto"
import { Authorization, CurrentUser, ImApi } from "./Api.ts"
import { GroupsHandlers } from "./GroupsHandlers.ts"
import { DescribeRequestErrors } from "./RequestErrors.ts"
import { WsDirectory } from "./WsDirectory.ts"

const DEFAULT_PULL_LIMIT = 200

const storeUnavailable = (error: PortError) =>
  Effect.logError("user store failed", error).pipe(
    Effect.andThen(Effect.fail(new ServiceUnavailable({ message: "storage is unavailable, try again" })))
  )

export const AuthorizationLive = Layer.effect(
  Authorization,
  Effect.gen(function*() {
    const tokens = yield* Tokens
    return Authorization.of({
      bearer: (httpEffect, { credential }) =>
        tokens.verify(Redacted.value(credential)).pipe(
          Effect.mapError((rejected) => new Unauthorized({ message: rejected.message })),
          Effect.flatMap((user) => Effect.provideService(httpEffect, CurrentUser, user))
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
    const tokens = yield* Tokens
    const gateways = yield* WsDirectory
    // Login spends the same time whether or not the account exists.
    const decoyHash = yield* passwords.hash(randomBytes(16).toString("hex"))

    return handlers
      .handle("register", ({ payload }) =>
        Effect.gen(function*() {
          const user = {
            id: UserId.make(`u_${randomBytes(12).toString("base64url")}`),
            account: payload.account,
            name: payload.name,
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
          const issued = yield* tokens.issue(user.id)
          const ws_url = yield* gateways.pick
          return { ...issued, user, ...(ws_url === undefined ? {} : { ws_url }) }
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
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
    const found = (user: Option.Option<User>, id: string) =>
      Option.match(user, {
        onNone: () => Effect.fail(new UserNotFound({ message: `no user ${id}` })),
        onSome: Effect.succeed
      })
    return handlers
      .handle("me", () =>
        Effect.gen(function*() {
          const me = yield* CurrentUser
          return yield* found(yield* users.findById(me), me)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("update", ({ payload }) =>
        Effect.gen(function*() {
          const me = yield* CurrentUser
          return yield* found(yield* users.rename(me, payload.name), me)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("search", ({ query }) =>
        users.findByAccount(query.account).pipe(
          Effect.map(Option.match({ onNone: () => [], onSome: ({ password_hash: _, ...user }) => [user] })),
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
  Layer.provide([SystemHandlers, AuthHandlers, InboxHandlers, UsersHandlers, GroupsHandlers, GatewayHandlers]),
  Layer.provide(AuthorizationLive)
)
