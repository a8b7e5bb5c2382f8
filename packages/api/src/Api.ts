import {
  AccountTaken,
  AlreadyMember,
  EmailTaken,
  Forbidden,
  GroupNotFound,
  InvalidCredentials,
  InvalidRange,
  JoinRequestNotFound,
  ServiceUnavailable,
  Unauthorized,
  UnknownUsers,
  UserNotFound
} from "@im/domain/Errors"
import {
  Group,
  GroupInfoPatch,
  GroupMember,
  GroupName,
  JoinAnswer,
  JoinMessage,
  JoinRequest,
  JoinRequestId,
  MAX_GROUP_MEMBERS
} from "@im/domain/Group"
import { GroupId, SessionId, UserId } from "@im/domain/Ids"
import { PullPage } from "@im/domain/Message"
import { Account, Avatar, DisplayName, Email, Password, Profile, User } from "@im/domain/User"
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
import { FilesApi } from "./FilesApi.ts"
import { FriendsApi } from "./FriendsApi.ts"
import { ConversationsApi, MessagesApi } from "./MessagesApi.ts"
import { documentRequestErrors } from "./RequestErrors.ts"

/** The authenticated caller of a route, provided by the Authorization middleware. */
export class CurrentUser extends Context.Service<CurrentUser, UserId>()("@im/api/CurrentUser") {}

/** The login session of the caller's token, provided by the Authorization middleware. */
export class CurrentSession extends Context.Service<CurrentSession, SessionId>()("@im/api/CurrentSession") {}

/** A bearer access token of a live session; 503 when the sessions cannot be checked now. */
export class Authorization extends HttpApiMiddleware.Service<Authorization, { provides: CurrentUser | CurrentSession }>()(
  "@im/api/Authorization",
  {
    security: { bearer: HttpApiSecurity.bearer },
    error: [Unauthorized, ServiceUnavailable]
  }
) {}

export class SystemApi extends HttpApiGroup.make("system", { topLevel: true }).add(
  HttpApiEndpoint.get("health", "/health", {
    success: Schema.Struct({ status: Schema.Literal("ok") })
  }).annotate(OpenApi.Description, "200 when the server is ready to serve.")
) {}

export const RegisterRequest = Schema.Struct({
  account: Account,
  password: Password,
  name: DisplayName,
  email: Schema.optionalKey(Email)
})

export const LoginRequest = Schema.Struct({
  account: Schema.String.pipe(Schema.check(Schema.isMaxLength(64))),
  password: Schema.String.pipe(Schema.check(Schema.isMaxLength(256)))
})

/** An access token and the refresh token that gets the next pair, each with its expiry (ms). */
export const TokenPair = Schema.Struct({
  token: Schema.String,
  expires_at: Schema.Int,
  refresh_token: Schema.String,
  refresh_expires_at: Schema.Int
})

export const LoginResponse = Schema.Struct({
  ...TokenPair.fields,
  user: Profile,
  /** The WebSocket to connect to when the server runs gateways of its own (the cluster). */
  ws_url: Schema.optionalKey(Schema.String)
})

export class AuthApi extends HttpApiGroup.make("auth")
  .add(
    HttpApiEndpoint.post("register", "/register", {
      payload: RegisterRequest,
      success: Profile.pipe(HttpApiSchema.status(201)),
      error: [AccountTaken, EmailTaken, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Create an account. Accounts, and emails when given, are unique, case-insensitively. The email stays private."
    ),
    HttpApiEndpoint.post("login", "/login", {
      payload: LoginRequest,
      success: LoginResponse,
      error: [InvalidCredentials, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Exchange account and password for a new login session: an access token (the bearer token) and a refresh token."
    ),
    HttpApiEndpoint.post("refresh", "/refresh", {
      payload: Schema.Struct({ refresh_token: Schema.String.pipe(Schema.check(Schema.isMaxLength(2048))) }),
      success: TokenPair,
      error: [Unauthorized, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Exchange the session's current refresh token for a new pair. The refresh token given is refused from then on; " +
        "401 when it is expired, used already, or its session ended."
    ),
    HttpApiEndpoint.post("logout", "/logout", {
      success: HttpApiSchema.NoContent,
      error: ServiceUnavailable
    }).middleware(Authorization).annotate(
      OpenApi.Description,
      "End the caller's login session: its access and refresh tokens are refused from now on, and its open " +
        "WebSockets are closed (4009). The user's other sessions go on."
    )
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
    }).annotate(
      OpenApi.Description,
      "Create a group (join_approval off): the caller is its owner, member_ids its first members; all of them get a " +
        "group_created notice."
    ),
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
    }).annotate(
      OpenApi.Description,
      "Add users to a group (at most 2,000 members): any member may invite, only the owner and admins when the group has " +
        "join_approval. Answers the ones that were not members yet; the members get a member_joined notice."
    ),
    HttpApiEndpoint.delete("remove", "/:group_id/members/:user_id", {
      params: { group_id: GroupId, user_id: UserId },
      success: HttpApiSchema.NoContent,
      error: [GroupNotFound, Forbidden, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Leave (your own id) or remove a member (owner: anyone; admin: members). The owner cannot leave. The members and " +
        "the one who went get a member_left or member_removed notice."
    ),
    HttpApiEndpoint.patch("update", "/:group_id", {
      params: { group_id: GroupId },
      payload: GroupInfoPatch,
      success: Group,
      error: [GroupNotFound, Forbidden, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Owner or admin: change the group's name, avatar, announcement (null removes them) or join_approval. " +
        "Members get a group_updated notice."
    ),
    HttpApiEndpoint.delete("dismiss", "/:group_id", {
      params: { group_id: GroupId },
      success: HttpApiSchema.NoContent,
      error: [GroupNotFound, Forbidden, ServiceUnavailable]
    }).annotate(OpenApi.Description, "Owner: delete the group with its members and join requests; members get group_dismissed."),
    HttpApiEndpoint.put("setRole", "/:group_id/members/:user_id/role", {
      params: { group_id: GroupId, user_id: UserId },
      payload: Schema.Struct({ role: Schema.Literals(["admin", "member"]) }),
      success: GroupMember,
      error: [GroupNotFound, Forbidden, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Owner: make a member an admin, or an admin a plain member. Answers the member; members get role_changed."
    ),
    HttpApiEndpoint.post("transfer", "/:group_id/transfer", {
      params: { group_id: GroupId },
      payload: Schema.Struct({ user_id: UserId }),
      success: Group,
      error: [GroupNotFound, Forbidden, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Owner: hand the group to another member, who becomes the owner; the old owner becomes an admin. Members get " +
        "owner_transferred."
    ),
    HttpApiEndpoint.post("join", "/:group_id/join", {
      params: { group_id: GroupId },
      payload: Schema.Struct({ message: Schema.optionalKey(JoinMessage) }),
      success: JoinAnswer,
      error: [GroupNotFound, AlreadyMember, Forbidden, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Any user who knows the group's id: joins at once (status joined), or, when the group has join_approval, " +
        "makes a request an owner or admin decides (status pending; asking again answers the same request). Members get " +
        "member_joined; for a request, the owner and admins get join_requested."
    ),
    HttpApiEndpoint.get("joinRequests", "/:group_id/join-requests", {
      params: { group_id: GroupId },
      success: Schema.Array(JoinRequest),
      error: [GroupNotFound, Forbidden, ServiceUnavailable]
    }).annotate(OpenApi.Description, "Owner or admin: the pending requests to join, oldest first."),
    HttpApiEndpoint.post("acceptJoinRequest", "/:group_id/join-requests/:request_id/accept", {
      params: { group_id: GroupId, request_id: JoinRequestId },
      success: JoinRequest,
      error: [GroupNotFound, Forbidden, JoinRequestNotFound, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Owner or admin: accept a pending request; its user becomes a member (members get member_joined)."
    ),
    HttpApiEndpoint.post("rejectJoinRequest", "/:group_id/join-requests/:request_id/reject", {
      params: { group_id: GroupId, request_id: JoinRequestId },
      success: JoinRequest,
      error: [GroupNotFound, Forbidden, JoinRequestNotFound, ServiceUnavailable]
    }).annotate(OpenApi.Description, "Owner or admin: reject a pending request; its user gets a join_rejected notice.")
  )
  .middleware(Authorization)
  .prefix("/groups")
  .annotateMerge(OpenApi.annotations({ title: "Groups" }))
{}

/** `PATCH /users/me`: at least one field; a field left out stays as it is. */
export const ProfileChanges = Schema.Struct({
  name: Schema.optionalKey(DisplayName),
  avatar: Schema.optionalKey(Schema.NullOr(Avatar)),
  email: Schema.optionalKey(Schema.NullOr(Email))
}).check(
  Schema.makeFilter((changes) =>
    Object.keys(changes).length > 0 ? undefined : "give at least one of name, avatar and email"
  )
)

const SearchTerm = Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(254)))

/** `GET /users?account=` or `?email=`: exactly one of them. */
export const UserSearch = Schema.Struct({
  account: Schema.optionalKey(SearchTerm),
  email: Schema.optionalKey(SearchTerm)
}).check(
  Schema.makeFilter((query) =>
    (query.account === undefined) !== (query.email === undefined)
      ? undefined
      : "give exactly one of the query parameters account and email"
  )
)

export class UsersApi extends HttpApiGroup.make("users")
  .add(
    HttpApiEndpoint.get("me", "/me", {
      success: Profile,
      error: [UserNotFound, ServiceUnavailable]
    }).annotate(OpenApi.Description, "The caller's own profile, with their email."),
    HttpApiEndpoint.patch("update", "/me", {
      payload: ProfileChanges,
      success: Profile,
      error: [UserNotFound, EmailTaken, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Change the caller's name, avatar and/or email (null removes an avatar or an email). All or nothing: " +
        "a bad value (400) or a taken email (409) changes nothing."
    ),
    HttpApiEndpoint.get("search", "/", {
      query: UserSearch,
      success: Schema.Array(User),
      error: ServiceUnavailable
    }).annotate(
      OpenApi.Description,
      "Find a user by account or by email (exactly one of the two; exact, case-insensitive): zero or one user, " +
        "public fields only."
    ),
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
  .add(FilesApi.middleware(Authorization))
  .add(FriendsApi.middleware(Authorization))
  .add(ConversationsApi.middleware(Authorization))
  .add(MessagesApi.middleware(Authorization))
  .annotateMerge(OpenApi.annotations({
    transform: documentRequestErrors,
    title: "IM backend API",
    description: "Accounts, friends, groups, files, conversations and inbox sync. Live delivery and sending use the WebSocket at /ws: see docs/protocol.md."
  }))
{}
