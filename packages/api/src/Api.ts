import {
  AccountTaken,
  Forbidden,
  GroupNotFound,
  InvalidCredentials,
  InvalidRange,
  ServiceUnavailable,
  Unauthorized,
  UnknownUsers,
  UserNotFound
} from "@im/domain/Errors"
import { Group, GroupMember, GroupName, MAX_GROUP_MEMBERS } from "@im/domain/Group"
import { GroupId, UserId } from "@im/domain/Ids"
import { PullPage } from "@im/domain/Message"
import { Account, DisplayName, Password, User } from "@im/domain/User"
import { Context, Schema } from "effect"
import {
  HttpApi,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpApiMiddleware,
  HttpApiSchema,
  HttpApiSecurity,
  OpenApi
} from "effect/http-api"

/** The authenticated caller of a route, provided by the Authorization middleware. */
export class CurrentUser extends Context.Service<CurrentUser, UserId>()("@im/api/CurrentUser") {}

export class Authorization extends HttpApiMiddleware.Service<Authorization, { provides: CurrentUser }>()(
  "@im/api/Authorization",
  {
    security: { bearer: HttpApiSecurity.bearer },
    error: Unauthorized
  }
) {}

export class SystemApi extends HttpApiGroup.make("system", { topLevel: true }).add(
  HttpApiEndpoint.get("health", "/health", {
    success: Schema.Struct({ status: Schema.Literal("ok") })
  }).annotate(OpenApi.Description, "200 when the server is ready to serve.")
) {}

export const RegisterRequest = Schema.Struct({ account: Account, password: Password, name: DisplayName })

export const LoginRequest = Schema.Struct({
  account: Schema.String.pipe(Schema.check(Schema.isMaxLength(64))),
  password: Schema.String.pipe(Schema.check(Schema.isMaxLength(256)))
})

export const LoginResponse = Schema.Struct({
  token: Schema.String,
  expires_at: Schema.Int,
  user: User,
  /** The WebSocket to connect to when the server runs gateways of its own (the cluster). */
  ws_url: Schema.optionalKey(Schema.String)
})

export class AuthApi extends HttpApiGroup.make("auth")
  .add(
    HttpApiEndpoint.post("register", "/register", {
      payload: RegisterRequest,
      success: User.pipe(HttpApiSchema.status(201)),
      error: [AccountTaken, ServiceUnavailable]
    }).annotate(OpenApi.Description, "Create an account. Accounts are unique, case-insensitively."),
    HttpApiEndpoint.post("login", "/login", {
      payload: LoginRequest,
      success: LoginResponse,
      error: [InvalidCredentials, ServiceUnavailable]
    }).annotate(OpenApi.Description, "Exchange account and password for a bearer token.")
  )
  .prefix("/auth")
  .annotateMerge(OpenApi.annotations({ title: "Accounts" }))
{}

const SeqParam = Schema.NumberFromString.pipe(Schema.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)))

export class InboxApi extends HttpApiGroup.make("inbox")
  .add(
    HttpApiEndpoint.get("newest", "/newest", {
      success: Schema.Struct({ seq: Schema.Int }),
      error: ServiceUnavailable
    }).annotate(OpenApi.Description, "The highest seq stored in the caller's inbox (0 when empty)."),
    HttpApiEndpoint.get("pull", "/", {
      query: {
        after: SeqParam,
        limit: Schema.optional(SeqParam),
        until: Schema.optional(SeqParam)
      },
      success: PullPage,
      error: [InvalidRange, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "The caller's entries with after < seq ≤ until, ascending, at most limit (1-1000, default 200). " +
        "Every number in (after, through] is settled: returned or skipped for good; has_more says more remain."
    )
  )
  .middleware(Authorization)
  .prefix("/inbox")
  .annotateMerge(OpenApi.annotations({ title: "Inbox" }))
{}

const UserIds = Schema.Array(UserId).pipe(Schema.check(Schema.isMaxLength(MAX_GROUP_MEMBERS - 1)))

export class GroupsApi extends HttpApiGroup.make("groups")
  .add(
    HttpApiEndpoint.post("create", "/", {
      payload: Schema.Struct({ name: GroupName, member_ids: UserIds }),
      success: Group.pipe(HttpApiSchema.status(201)),
      error: [UnknownUsers, ServiceUnavailable]
    }).annotate(OpenApi.Description, "Create a group: the caller is its owner, member_ids its first members."),
    HttpApiEndpoint.get("mine", "/", {
      success: Schema.Array(Group),
      error: ServiceUnavailable
    }).annotate(OpenApi.Description, "The groups the caller is a member of."),
    HttpApiEndpoint.get("get", "/:group_id", {
      params: { group_id: GroupId },
      success: Group,
      error: [GroupNotFound, ServiceUnavailable]
    }).annotate(OpenApi.Description, "A group the caller is a member of (others get 404)."),
    HttpApiEndpoint.get("members", "/:group_id/members", {
      params: { group_id: GroupId },
      success: Schema.Array(GroupMember),
      error: [GroupNotFound, ServiceUnavailable]
    }).annotate(OpenApi.Description, "The members of a group the caller is a member of."),
    HttpApiEndpoint.post("invite", "/:group_id/members", {
      params: { group_id: GroupId },
      payload: Schema.Struct({ user_ids: UserIds }),
      success: Schema.Struct({ added: Schema.Array(UserId) }),
      error: [GroupNotFound, UnknownUsers, Forbidden, ServiceUnavailable]
    }).annotate(OpenApi.Description, "Add users to a group; any member may invite. Answers the ones that were not members yet."),
    HttpApiEndpoint.delete("remove", "/:group_id/members/:user_id", {
      params: { group_id: GroupId, user_id: UserId },
      success: HttpApiSchema.NoContent,
      error: [GroupNotFound, Forbidden, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Leave (your own id) or remove a member (owner: anyone; admin: members). The owner cannot leave."
    )
  )
  .middleware(Authorization)
  .prefix("/groups")
  .annotateMerge(OpenApi.annotations({ title: "Groups" }))
{}

export class UsersApi extends HttpApiGroup.make("users")
  .add(
    HttpApiEndpoint.get("me", "/me", {
      success: User,
      error: [UserNotFound, ServiceUnavailable]
    }).annotate(OpenApi.Description, "The caller's own profile."),
    HttpApiEndpoint.patch("update", "/me", {
      payload: Schema.Struct({ name: DisplayName }),
      success: User,
      error: [UserNotFound, ServiceUnavailable]
    }).annotate(OpenApi.Description, "Change the caller's display name."),
    HttpApiEndpoint.get("search", "/", {
      query: { account: Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(64))) },
      success: Schema.Array(User),
      error: ServiceUnavailable
    }).annotate(OpenApi.Description, "Find a user by account (exact, case-insensitive): zero or one user."),
    HttpApiEndpoint.get("get", "/:user_id", {
      params: { user_id: UserId },
      success: User,
      error: [UserNotFound, ServiceUnavailable]
    }).annotate(OpenApi.Description, "A user's public profile: id, account, name.")
  )
  .middleware(Authorization)
  .prefix("/users")
  .annotateMerge(OpenApi.annotations({ title: "Users" }))
{}

export class GatewayApi extends HttpApiGroup.make("gateway")
  .add(
    HttpApiEndpoint.get("pick", "/gateway", {
      success: Schema.Struct({ ws_url: Schema.optionalKey(Schema.String) })
    }).annotate(
      OpenApi.Description,
      "The WebSocket a client should connect to now: a healthy gateway of the cluster. Without ws_url, " +
        "the WebSocket is /ws on this server (standalone). Clients ask again when their gateway goes away."
    )
  )
  .middleware(Authorization)
  .annotateMerge(OpenApi.annotations({ title: "Gateway" }))
{}

export class ImApi extends HttpApi.make("im")
  .add(SystemApi)
  .add(AuthApi)
  .add(InboxApi)
  .add(UsersApi)
  .add(GroupsApi)
  .add(GatewayApi)
  .annotateMerge(OpenApi.annotations({
    title: "IM backend API",
    description: "Accounts and inbox sync. Live delivery and sending use the WebSocket at /ws: see docs/protocol.md."
  }))
{}
