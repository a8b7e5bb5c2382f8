import { AccountTaken } from "@im/domain/Errors"
import type { UserId } from "@im/domain/Ids"
import type { User } from "@im/domain/User"
import { type UserRecord, UserStore } from "@im/ports/UserStore"
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { chunks, portCall, toNumber } from "./SqlErrors.ts"

const ID_CHUNK = 10_000

interface UserRow {
  readonly id: string
  readonly account: string
  readonly name: string
  readonly created_at: bigint
}

interface UserRecordRow extends UserRow {
  readonly password_hash: string
}

const toUser = (row: UserRow): User => ({
  id: row.id as UserId,
  account: row.account,
  name: row.name,
  created_at: toNumber(row.created_at)
})

/**
 * Users in the `users` table. `account_lower` carries the case-insensitive uniqueness, so the
 * database decides a race between two registrations of one account.
 */
export const layer: Layer.Layer<UserStore, never, SqlClient.SqlClient> = Layer.effect(
  UserStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const create = Effect.fn("SqlUserStore.create")(function*(user: UserRecord) {
      const accountLower = user.account.toLowerCase()
      const inserted = yield* sql<{ readonly id: string }>`
        INSERT INTO users ${
        sql.insert({
          id: user.id,
          account: user.account,
          account_lower: accountLower,
          name: user.name,
          password_hash: user.password_hash,
          created_at: user.created_at
        })
      }
        ON CONFLICT DO NOTHING
        RETURNING id`.pipe(portCall("UserStore", "create"))
      if (inserted.length > 0) return
      // Nothing inserted: the account or the id is taken, unless by this very record, written by
      // an earlier attempt whose answer was lost (the adapter retries after a dropped connection).
      const mine = yield* sql<{ readonly id: string }>`
        SELECT id FROM users
        WHERE id = ${user.id} AND account_lower = ${accountLower} AND password_hash = ${user.password_hash}`.pipe(
        portCall("UserStore", "create")
      )
      if (mine.length === 0) return yield* new AccountTaken({ message: `account ${user.account} is taken` })
    })

    const findByAccount = Effect.fn("SqlUserStore.findByAccount")(function*(account: string) {
      const rows = yield* sql<UserRecordRow>`
        SELECT id, account, name, created_at, password_hash FROM users
        WHERE account_lower = ${account.toLowerCase()}`.pipe(portCall("UserStore", "findByAccount"))
      return Option.map(Option.fromNullishOr(rows[0]), (row): UserRecord => ({ ...toUser(row), password_hash: row.password_hash }))
    })

    const findById = Effect.fn("SqlUserStore.findById")(function*(id: UserId) {
      const rows = yield* sql<UserRow>`SELECT id, account, name, created_at FROM users WHERE id = ${id}`.pipe(
        portCall("UserStore", "findById")
      )
      return Option.map(Option.fromNullishOr(rows[0]), toUser)
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
        RETURNING id, account, name, created_at`.pipe(portCall("UserStore", "rename"))
      return Option.map(Option.fromNullishOr(rows[0]), toUser)
    })

    return UserStore.of({ create, findByAccount, findById, existing, rename })
  })
)
