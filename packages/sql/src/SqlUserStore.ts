import { AccountTaken, EmailTaken } from "@im/domain/Errors"
import type { UserId } from "@im/domain/Ids"
import type { Profile, User } from "@im/domain/User"
import { type ProfileChanges, type UserRecord, UserStore } from "@im/ports/UserStore"
import { Effect, Layer, Option } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { chunks, portCall, toNumber } from "./SqlErrors.ts"

const ID_CHUNK = 10_000

interface UserRow {
  readonly id: string
  readonly account: string
  readonly name: string
  readonly avatar: string | null
  readonly created_at: bigint
}

interface ProfileRow extends UserRow {
  readonly email: string | null
}

interface UserRecordRow extends ProfileRow {
  readonly password_hash: string
}

const toUser = (row: UserRow): User => ({
  id: row.id as UserId,
  account: row.account,
  name: row.name,
  ...(row.avatar === null ? {} : { avatar: row.avatar }),
  created_at: toNumber(row.created_at)
})

const toProfile = (row: ProfileRow): Profile => ({ ...toUser(row), ...(row.email === null ? {} : { email: row.email }) })

const emailTaken = (email: string) => new EmailTaken({ message: `email ${email} belongs to another user` })

/** The one unique index an update can hit is the email's: that answer is data, not a failure. */
const uniqueViolationAs = <B>(value: B) => <A, R>(effect: Effect.Effect<A, SqlError.SqlError, R>) =>
  Effect.catchIf(effect, (error) => error.reason._tag === "UniqueViolation", () => Effect.succeed(value))

/**
 * Users in the `users` table. `account_lower` and `email_lower` carry the case-insensitive
 * uniqueness, so the database decides a race between two registrations of one account or email.
 */
export const layer: Layer.Layer<UserStore, never, SqlClient.SqlClient> = Layer.effect(
  UserStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const create = Effect.fn("SqlUserStore.create")(function*(user: UserRecord) {
      const accountLower = user.account.toLowerCase()
      const emailLower = user.email?.toLowerCase() ?? null
      const inserted = yield* sql<{ readonly id: string }>`
        INSERT INTO users ${
        sql.insert({
          id: user.id,
          account: user.account,
          account_lower: accountLower,
          name: user.name,
          avatar: user.avatar ?? null,
          email: user.email ?? null,
          email_lower: emailLower,
          password_hash: user.password_hash,
          created_at: user.created_at
        })
      }
        ON CONFLICT DO NOTHING
        RETURNING id`.pipe(portCall("UserStore", "create"))
      if (inserted.length > 0) return
      // Nothing inserted: the account, the email or the id is taken, unless by this very record,
      // written by an earlier attempt whose answer was lost (the adapter retries after a dropped
      // connection).
      const holders = yield* sql<{ readonly id: string; readonly account_lower: string; readonly password_hash: string }>`
        SELECT id, account_lower, password_hash FROM users
        WHERE id = ${user.id} OR account_lower = ${accountLower} OR email_lower = ${emailLower}`.pipe(
        portCall("UserStore", "create")
      )
      const mine = holders.some((row) =>
        row.id === user.id && row.account_lower === accountLower && row.password_hash === user.password_hash
      )
      if (mine) return
      if (holders.some((row) => row.id === user.id || row.account_lower === accountLower) || user.email === undefined) {
        return yield* new AccountTaken({ message: `account ${user.account} is taken` })
      }
      return yield* emailTaken(user.email)
    })

    const findByAccount = Effect.fn("SqlUserStore.findByAccount")(function*(account: string) {
      const rows = yield* sql<UserRecordRow>`
        SELECT id, account, name, avatar, email, created_at, password_hash FROM users
        WHERE account_lower = ${account.toLowerCase()}`.pipe(portCall("UserStore", "findByAccount"))
      return Option.map(Option.fromNullishOr(rows[0]), (row): UserRecord => ({ ...toProfile(row), password_hash: row.password_hash }))
    })

    const findByEmail = Effect.fn("SqlUserStore.findByEmail")(function*(email: string) {
      const rows = yield* sql<UserRow>`
        SELECT id, account, name, avatar, created_at FROM users
        WHERE email_lower = ${email.toLowerCase()}`.pipe(portCall("UserStore", "findByEmail"))
      return Option.map(Option.fromNullishOr(rows[0]), toUser)
    })

    const findById = Effect.fn("SqlUserStore.findById")(function*(id: UserId) {
      const rows = yield* sql<UserRow>`SELECT id, account, name, avatar, created_at FROM users WHERE id = ${id}`.pipe(
        portCall("UserStore", "findById")
      )
      return Option.map(Option.fromNullishOr(rows[0]), toUser)
    })

    const findProfile = Effect.fn("SqlUserStore.findProfile")(function*(id: UserId) {
      const rows = yield* sql<ProfileRow>`
        SELECT id, account, name, avatar, email, created_at FROM users WHERE id = ${id}`.pipe(
        portCall("UserStore", "findProfile")
      )
      return Option.map(Option.fromNullishOr(rows[0]), toProfile)
    })

    const existing = Effect.fn("SqlUserStore.existing")(function*(ids: ReadonlyArray<UserId>) {
      const rows = yield* Effect.forEach(
        chunks([...new Set(ids)], ID_CHUNK),
        (part) => sql<{ readonly id: string }>`SELECT id FROM users WHERE id IN ${sql.in(part)}`
      ).pipe(portCall("UserStore", "existing"))
      return new Set(rows.flat().map((row) => row.id as UserId))
    })

    const rename = Effect.fn("SqlUserStore.rename")(function*(id: UserId, name: string) {
      const rows = yield* sql<UserRow>`
        UPDATE users SET name = ${name} WHERE id = ${id}
        RETURNING id, account, name, avatar, created_at`.pipe(portCall("UserStore", "rename"))
      return Option.map(Option.fromNullishOr(rows[0]), toUser)
    })

    const update = Effect.fn("SqlUserStore.update")(function*(id: UserId, changes: ProfileChanges) {
      const set: Record<string, string | null> = {}
      if (changes.name !== undefined) set["name"] = changes.name
      if (changes.avatar !== undefined) set["avatar"] = changes.avatar
      if (changes.email !== undefined) {
        set["email"] = changes.email
        set["email_lower"] = changes.email?.toLowerCase() ?? null
      }
      if (Object.keys(set).length === 0) return yield* findProfile(id)
      // One statement: either every change is made, or (the email is taken) none.
      const rows = yield* sql<ProfileRow>`
        UPDATE users SET ${sql.update(set)} WHERE id = ${id}
        RETURNING id, account, name, avatar, email, created_at`.pipe(
        uniqueViolationAs("email taken" as const),
        portCall("UserStore", "update")
      )
      if (rows === "email taken") return yield* emailTaken(changes.email ?? "")
      return Option.map(Option.fromNullishOr(rows[0]), toProfile)
    })

    return UserStore.of({ create, findByAccount, findByEmail, findById, findProfile, existing, rename, update })
  })
)
