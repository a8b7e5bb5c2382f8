import { Schema } from "effect"

/** A user's id, chosen by the server at registration. */
export const UserId = Schema.String.pipe(
  Schema.check(Schema.isNonEmpty(), Schema.isMaxLength(64)),
  Schema.brand("UserId")
)
export type UserId = typeof UserId.Type

/** A group's id. */
export const GroupId = Schema.String.pipe(
  Schema.check(Schema.isNonEmpty(), Schema.isMaxLength(64)),
  Schema.brand("GroupId")
)
export type GroupId = typeof GroupId.Type

/** The client's id for one of its sends, unique per sender: the key of idempotent send. */
export const LocalId = Schema.String.pipe(
  Schema.check(Schema.isNonEmpty(), Schema.isMaxLength(64)),
  Schema.brand("LocalId")
)
export type LocalId = typeof LocalId.Type

/** The server's id of a message; the same (sender, local_id) always gives the same server_id. */
export const ServerId = Schema.String.pipe(
  Schema.check(Schema.isNonEmpty(), Schema.isMaxLength(64)),
  Schema.brand("ServerId")
)
export type ServerId = typeof ServerId.Type

/** A login session: what a login's access and refresh tokens name, and what logout ends. */
export const SessionId = Schema.String.pipe(
  Schema.check(Schema.isNonEmpty(), Schema.isMaxLength(64)),
  Schema.brand("SessionId")
)
export type SessionId = typeof SessionId.Type

/** The id of one ws gateway instance. */
export const GatewayId = Schema.String.pipe(Schema.check(Schema.isNonEmpty()), Schema.brand("GatewayId"))
export type GatewayId = typeof GatewayId.Type

/** A number of a user's inbox sequence: 1, 2, 3, … (0 means "nothing yet"). */
export const Seq = Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))
