import { AccountTaken, EmailTaken } from "@im/domain/Errors"
import type { UserId } from "@im/domain/Ids"
import type { Profile, User } from "@im/domain/User"
import { Context, Effect, Layer, Option } from "effect"
import type { PortError } from "./PortError.ts"

/** A user with the secret the server keeps about them. */
export interface UserRecord extends Profile {
  readonly password_hash: string
}

/** What `update` changes: a field left out stays; `null` removes an avatar or an email. */
export interface ProfileChanges {
  readonly name?: string
  readonly avatar?: string | null
  readonly email?: string | null
}

export class UserStore extends Context.Service<UserStore, {
  /**
   * Fails with AccountTaken when the account exists, EmailTaken when the email belongs to
   * another user (both compare case-insensitively); nothing is stored then.
   */
  readonly create: (user: UserRecord) => Effect.Effect<void, AccountTaken | EmailTaken | PortError>
  readonly findByAccount: (account: string) => Effect.Effect<Option.Option<UserRecord>, PortError>
  /** The public view of the user with this email (case-insensitive). */
  readonly findByEmail: (email: string) => Effect.Effect<Option.Option<User>, PortError>
  /** The public view: never the email. */
  readonly findById: (id: UserId) => Effect.Effect<Option.Option<User>, PortError>
  /** The user's own view, with the email. */
  readonly findProfile: (id: UserId) => Effect.Effect<Option.Option<Profile>, PortError>
  /** The ids among `ids` that belong to a user. */
  readonly existing: (ids: ReadonlyArray<UserId>) => Effect.Effect<ReadonlySet<UserId>, PortError>
  /** Renames the user; the updated user, or none if there is no such user. */
  readonly rename: (id: UserId, name: string) => Effect.Effect<Option.Option<User>, PortError>
  /**
   * Applies the changes at once; the updated profile, or none if there is no such user. Fails
   * with EmailTaken, changing nothing, when the new email belongs to another user.
   */
  readonly update: (id: UserId, changes: ProfileChanges) => Effect.Effect<Option.Option<Profile>, EmailTaken | PortError>
}>()("@im/ports/UserStore") {
  static readonly layerMemory = Layer.sync(UserStore, () => {
    const byId = new Map<UserId, UserRecord>()
    const byAccount = new Map<string, UserId>()
    const byEmail = new Map<string, UserId>()
    const profileView = ({ password_hash: _, ...profile }: UserRecord): Profile => profile
    const publicView = (record: UserRecord): User => {
      const { email: _, ...user } = profileView(record)
      return user
    }
    const emailTaken = (email: string) => new EmailTaken({ message: `email ${email} belongs to another user` })
    return UserStore.of({
      create: (user) =>
        Effect.suspend((): Effect.Effect<void, AccountTaken | EmailTaken> => {
          const key = user.account.toLowerCase()
          if (byAccount.has(key) || byId.has(user.id)) {
            return Effect.fail(new AccountTaken({ message: `account ${user.account} is taken` }))
          }
          if (user.email !== undefined && byEmail.has(user.email.toLowerCase())) return Effect.fail(emailTaken(user.email))
          byAccount.set(key, user.id)
          if (user.email !== undefined) byEmail.set(user.email.toLowerCase(), user.id)
          byId.set(user.id, user)
          return Effect.void
        }),
      findByAccount: (account) =>
        Effect.sync(() => Option.fromNullishOr(byId.get(byAccount.get(account.toLowerCase()) ?? ("" as UserId)))),
      findByEmail: (email) =>
        Effect.sync(() =>
          Option.map(Option.fromNullishOr(byId.get(byEmail.get(email.toLowerCase()) ?? ("" as UserId))), publicView)
        ),
      findById: (id) => Effect.sync(() => Option.map(Option.fromNullishOr(byId.get(id)), publicView)),
      findProfile: (id) => Effect.sync(() => Option.map(Option.fromNullishOr(byId.get(id)), profileView)),
      existing: (ids) => Effect.sync(() => new Set(ids.filter((id) => byId.has(id)))),
      rename: (id, name) =>
        Effect.sync(() => {
          const user = byId.get(id)
          if (user === undefined) return Option.none()
          const renamed = { ...user, name }
          byId.set(id, renamed)
          return Option.some(publicView(renamed))
        }),
      update: (id, changes) =>
        Effect.suspend(() => {
          const user = byId.get(id)
          if (user === undefined) return Effect.succeed(Option.none())
          const email = changes.email
          if (typeof email === "string") {
            const owner = byEmail.get(email.toLowerCase())
            if (owner !== undefined && owner !== id) return Effect.fail(emailTaken(email))
          }
          const { avatar: _avatar, email: _email, ...rest } = user
          const updated: UserRecord = {
            ...rest,
            ...(changes.name === undefined ? {} : { name: changes.name }),
            ...(changes.avatar === undefined ? pick(user, "avatar") : changes.avatar === null ? {} : { avatar: changes.avatar }),
            ...(email === undefined ? pick(user, "email") : email === null ? {} : { email })
          }
          if (email !== undefined && user.email !== undefined) byEmail.delete(user.email.toLowerCase())
          if (typeof email === "string") byEmail.set(email.toLowerCase(), id)
          byId.set(id, updated)
          return Effect.succeed(Option.some(profileView(updated)))
        })
    })
  })
}

/** `{ [key]: value }` when the record has the key, else `{}`: keeps optional keys absent. */
const pick = <A, K extends keyof A>(record: A, key: K): Partial<Pick<A, K>> =>
  record[key] === undefined ? {} : ({ [key]: record[key] } as unknown as Pick<A, K>)
