import { AccountTaken } from "@im/domain/Errors"
import type { UserId } from "@im/domain/Ids"
import type { User } from "@im/domain/User"
import { Context, Effect, Layer, Option } from "effect"
import type { PortError } from "./PortError.ts"

/** A user with the secret the server keeps about them. */
export interface UserRecord extends User {
  readonly password_hash: string
}

export class UserStore extends Context.Service<UserStore, {
  /** Fails with AccountTaken when the account exists (accounts compare case-insensitively). */
  readonly create: (user: UserRecord) => Effect.Effect<void, AccountTaken | PortError>
  readonly findByAccount: (account: string) => Effect.Effect<Option.Option<UserRecord>, PortError>
  readonly findById: (id: UserId) => Effect.Effect<Option.Option<User>, PortError>
  /** The ids among `ids` that belong to a user. */
  readonly existing: (ids: ReadonlyArray<UserId>) => Effect.Effect<ReadonlySet<UserId>, PortError>
  /** Renames the user; the updated user, or none if there is no such user. */
  readonly rename: (id: UserId, name: string) => Effect.Effect<Option.Option<User>, PortError>
}>()("@im/ports/UserStore") {
  static readonly layerMemory = Layer.sync(UserStore, () => {
    const byId = new Map<UserId, UserRecord>()
    const byAccount = new Map<string, UserRecord>()
    const publicView = ({ password_hash: _, ...user }: UserRecord): User => user
    return UserStore.of({
      create: (user) =>
        Effect.suspend(() => {
          const key = user.account.toLowerCase()
          if (byAccount.has(key) || byId.has(user.id)) {
            return Effect.fail(new AccountTaken({ message: `account ${user.account} is taken` }))
          }
          byAccount.set(key, user)
          byId.set(user.id, user)
          return Effect.void
        }),
      findByAccount: (account) => Effect.sync(() => Option.fromNullishOr(byAccount.get(account.toLowerCase()))),
      findById: (id) => Effect.sync(() => Option.map(Option.fromNullishOr(byId.get(id)), publicView)),
      existing: (ids) => Effect.sync(() => new Set(ids.filter((id) => byId.has(id)))),
      rename: (id, name) =>
        Effect.sync(() => {
          const user = byId.get(id)
          if (user === undefined) return Option.none()
          const renamed = { ...user, name }
          byId.set(id, renamed)
          byAccount.set(user.account.toLowerCase(), renamed)
          return Option.some(publicView(renamed))
        })
    })
  })
}
