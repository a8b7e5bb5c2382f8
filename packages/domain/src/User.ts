import { Schema } from "effect"
import { UserId } from "./Ids.ts"
import { Millis } from "./Message.ts"

/** A login name: 3 to 32 letters, digits, dots, dashes or underscores. */
export const Account = Schema.String.pipe(
  Schema.check(Schema.isPattern(/^[A-Za-z0-9._-]{3,32}$/, { message: "account must be 3-32 letters, digits, '.', '_' or '-'" }))
)

export const DisplayName = Schema.String.pipe(
  Schema.check(Schema.isNonEmpty({ message: "name must not be empty" }), Schema.isMaxLength(64))
)

export const Password = Schema.String.pipe(
  Schema.check(Schema.isMinLength(8, { message: "password must have at least 8 characters" }), Schema.isMaxLength(256))
)

/** A user as others may see it. */
export const User = Schema.Struct({
  id: UserId,
  account: Account,
  name: DisplayName,
  created_at: Millis
})
export type User = typeof User.Type
