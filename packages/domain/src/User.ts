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

/** An email address: private to its user, unique case-insensitively, at most 254 characters. */
export const Email = Schema.String.pipe(
  Schema.check(
    Schema.isMaxLength(254, { message: "email must have at most 254 characters" }),
    Schema.isPattern(/^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/, { message: "email must look like name@example.com" })
  )
)

/** A picture of the user: a URL or a stored file's reference, 1-512 characters without spaces. */
export const Avatar = Schema.String.pipe(
  Schema.check(
    Schema.isPattern(/^[^\s\u0000-\u001f\u007f]{1,512}$/, {
      message: "avatar must be 1-512 characters without spaces or control characters"
    })
  )
)

/** A user as others may see it. */
export const User = Schema.Struct({
  id: UserId,
  account: Account,
  name: DisplayName,
  avatar: Schema.optionalKey(Avatar),
  created_at: Millis
})
export type User = typeof User.Type

/** A user as they see themselves: the public view and their private email. */
export const Profile = Schema.Struct({
  ...User.fields,
  email: Schema.optionalKey(Email)
})
export type Profile = typeof Profile.Type
