import {
  type Group,
  type GroupInfoPatch,
  type GroupMember,
  isArrayOf,
  isGroup,
  isGroupMember,
  isJoinAnswer,
  isJoinRequest,
  type JoinAnswer,
  type JoinRequest
} from "./Groups.ts"
import { type LocalStore, MemoryLocalStore } from "./LocalStore.ts"
import { SyncEngine, type PullRange, type SyncStep } from "./SyncEngine.ts"
import {
  CloseCodes,
  type ClientFrame,
  type ContactChanges,
  type ContentType,
  decodeServerFrame,
  type FileInfo,
  type FileReference,
  type FriendRequest,
  type FriendRequests,
  type InboxEntry,
  isContactChanges,
  isFriendRequest,
  isFriendRequests,
  isErrorBody,
  isFileInfo,
  isNewestAnswer,
  isPullPage,
  isRetryable,
  isTokenPair,
  isUploadTicket,
  type LoginAnswer,
  MAX_CONTENT_LENGTH,
  type PullPage,
  type RegisterRequest,
  type SendErrorCode,
  type SendFrame,
  type TokenPair,
  type ServerFrame,
  type ConversationSummary,
  isUser,
  type Profile,
  type TypingSignal,
  type User
} from "./Wire.ts"

// Transport -----------------------------------------------------------------------------------

/** The part of `fetch` the SDK uses; the global `fetch` fits it. */
export type Fetch = (url: string, init: FetchInit) => Promise<FetchResponse>

export interface FetchInit {
  readonly method: string
  readonly headers: Record<string, string>
  /** A JSON text for the API; a file's bytes for an upload to a presigned URL. */
  readonly body?: string | Blob | ArrayBuffer | Uint8Array<ArrayBuffer>
  readonly signal?: AbortSignal
}

export interface FetchResponse {
  readonly ok: boolean
  readonly status: number
  readonly json: () => Promise<unknown>
}

/** The part of a WebSocket the SDK uses; the global `WebSocket` (browsers, Node ≥ 22) fits it. */
export interface WebSocketLike {
  addEventListener(
    type: "message" | "close" | "error",
    listener: (event: { readonly data?: unknown; readonly code?: number; readonly reason?: string }) => void
  ): void
  send(data: string): void
  close(code?: number, reason?: string): void
}

export type WebSocketConstructor = new (url: string) => WebSocketLike

export interface Timers {
  readonly setTimeout: (run: () => void, ms: number) => unknown
  readonly clearTimeout: (handle: unknown) => void
  readonly setInterval: (run: () => void, ms: number) => unknown
  readonly clearInterval: (handle: unknown) => void
}

type TimerHandle = Parameters<typeof globalThis.clearTimeout>[0]

const systemTimers: Timers = {
  setTimeout: (run, ms) => globalThis.setTimeout(run, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as TimerHandle),
  setInterval: (run, ms) => globalThis.setInterval(run, ms),
  clearInterval: (handle) => globalThis.clearInterval(handle as TimerHandle)
}

/** When the re-checks of numbers settled without an entry come, in multiples of `holeRecheckMs`. */
const RECHECK_DELAYS = [1, 5, 15] as const

/** The first and last of the numbers `[first, last]` that `entries` does not hold, if any. */
const missingSpan = (first: number, last: number, entries: ReadonlyArray<{ readonly seq: number }>): readonly [number, number] | undefined => {
  const got = new Set(entries.map((entry) => entry.seq))
  let from = 0
  let to = 0
  for (let seq = first; seq <= last; seq++) {
    if (got.has(seq)) continue
    if (from === 0) from = seq
    to = seq
  }
  return from === 0 ? undefined : [from, to]
}

// Public types --------------------------------------------------------------------------------

export type ClientStatus = "connecting" | "open" | "syncing" | "synced" | "closed" | "unauthorized"

/** To a user (`receiver_id`) or to a group the sender is a member of (`group_id`). */
export type SendInput = (
  | { readonly receiver_id: string; readonly group_id?: undefined }
  | { readonly group_id: string; readonly receiver_id?: undefined }
) & {
  readonly content: string
  /** Default `text`. */
  readonly content_type?: ContentType
  /** Default a fresh UUID. Sending a `local_id` again sends the same message (idempotent send). */
  readonly local_id?: string
}

export interface SendOutcome {
  readonly local_id: string
  readonly server_id: string
  readonly send_time: number
}

/**
 * Why a send failed for good: a code of the server's `send_result`, `connection_lost` when the
 * attempts ran out with the socket lost before a result, or `closed` by `close()`.
 */
export type SendFailureCode = SendErrorCode | "connection_lost" | "closed"

export type SendResult =
  | ({ readonly ok: true } & SendOutcome)
  | { readonly ok: false; readonly local_id: string; readonly code: SendFailureCode; readonly message: string }

export interface ImClientEvents {
  /** A newly stored inbox entry, once per `server_id`. */
  readonly message: (entry: InboxEntry) => void
  readonly status: (status: ClientStatus) => void
  /** The final outcome of a `send` (after its retries). */
  readonly sendResult: (result: SendResult) => void
  /** Someone is typing to this user or in one of its groups (live only, never stored). */
  readonly typing: (signal: TypingSignal) => void
  /**
   * The login session's tokens changed (login, refresh), or are gone (`undefined`: logout, or a
   * refused refresh). Keep them to resume later: `token`, `refreshToken`, `tokenExpiresAt`.
   */
  readonly tokens: (tokens: TokenPair | undefined) => void
}

export interface BackoffOptions {
  readonly initialDelayMs: number
  readonly maxDelayMs: number
}

export interface ImClientOptions {
  /** `http(s)://host:port` of the server; the socket goes to `ws(s)://host:port/ws`. */
  readonly baseUrl: string
  /** The WebSocket URL, when it is not `baseUrl`'s `/ws` (login's `ws_url` also sets it). */
  readonly wsUrl?: string
  /** Default a `MemoryLocalStore`. */
  readonly store?: LocalStore
  /** A token from an earlier `login`. */
  readonly token?: string
  /** The refresh token of that login (or of a later refresh): kept to get new tokens. */
  readonly refreshToken?: string
  /** When `token` expires (ms since the epoch): it is refreshed ahead of that. */
  readonly tokenExpiresAt?: number
  /** How long before its expiry the access token is refreshed; default 60 s. */
  readonly refreshMarginMs?: number
  readonly fetch?: Fetch
  readonly WebSocket?: WebSocketConstructor
  readonly timers?: Timers
  /** In [0, 1): the jitter of backoff delays. */
  readonly random?: () => number
  readonly newLocalId?: () => string
  readonly now?: () => number
  /** `limit` of a pull page; default 200. */
  readonly pageLimit?: number
  /** Reconnects and send retries; default 500 ms doubling to 30 s, each delay jittered down to half. */
  readonly backoff?: BackoffOptions
  /** Attempts per send, the first included; default 5. */
  readonly maxSendAttempts?: number
  /** Delay before pulling a gap again that the server answered short of (not settled yet); default 1 s. */
  readonly gapRetryMs?: number
  /** A socket without `welcome` this long after opening is dropped and tried again; default 10 s. */
  readonly welcomeTimeoutMs?: number
  /**
   * Numbers a pull answer settled without an entry are asked for again after this delay, then
   * after 5 and 15 times it (default 2 s, so 2, 10 and 30 s; 0: never), over reconnections:
   * several consumers write one inbox (a cluster's, and a group's fan-out beside one-to-one
   * chats), so an entry can be stored a while after a higher one. What is still missing after
   * the last was skipped for good.
   */
  readonly holeRecheckMs?: number
}

/** An HTTP error answer. `tag` is the body's `_tag` (`Unauthorized`, `AccountTaken`, …). */
export class HttpError extends Error {
  readonly status: number
  readonly tag: string
  constructor(status: number, tag: string, message: string) {
    super(message)
    this.name = "HttpError"
    this.status = status
    this.tag = tag
  }
}

export class SendError extends Error {
  readonly code: SendFailureCode
  readonly localId: string
  constructor(code: SendFailureCode, localId: string, message: string) {
    super(message)
    this.name = "SendError"
    this.code = code
    this.localId = localId
  }
}

/** `connect()` ended without a synced connection: the token was refused, or `close()` was called. */
export class ConnectError extends Error {
  readonly reason: "unauthorized" | "closed"
  constructor(reason: "unauthorized" | "closed", message: string) {
    super(message)
    this.name = "ConnectError"
    this.reason = reason
  }
}

// Client --------------------------------------------------------------------------------------

interface Session {
  readonly socket: WebSocketLike
  welcomed: boolean
  welcomeTimer: unknown
  /** When the last frame arrived (`now()`): a server silent past its heartbeat timeout is gone. */
  lastSeen: number
  heartbeat: unknown
  gapTimer: unknown
  /** HTTP requests of this session's sync, aborted when it ends. */
  readonly requests: Set<AbortController>
}

interface PendingSend {
  readonly frame: SendFrame
  readonly promise: Promise<SendOutcome>
  readonly resolve: (outcome: SendOutcome) => void
  readonly reject: (error: SendError) => void
  attempts: number
  /** queued: waits for an open socket; checking: looks for the entry in the store first. */
  state: "queued" | "checking" | "sent" | "waiting" | "done"
  retryTimer: unknown
}

type Listeners = { readonly [K in keyof ImClientEvents]: Set<ImClientEvents[K]> }

/**
 * A client of the IM server: HTTP for accounts and pulls, one WebSocket for sending and live
 * delivery, and the local copy of the user's inbox kept in sync as docs/protocol.md describes.
 */
export class ImClient {
  readonly #baseUrl: string
  #wsUrl: string | undefined
  readonly #holeRecheckMs: number
  /** Re-checks waiting (#recheck): they outlive a connection, not the client. */
  readonly #recheckTimers = new Set<unknown>()
  /** Login named the gateway: before reconnecting, ask the server for a healthy one. */
  #gatewayFromServer = false
  readonly #store: LocalStore
  readonly #fetch: Fetch
  readonly #WebSocket: WebSocketConstructor
  readonly #timers: Timers
  readonly #random: () => number
  readonly #newLocalId: () => string
  readonly #now: () => number
  readonly #pageLimit: number
  readonly #backoffOptions: BackoffOptions
  readonly #maxSendAttempts: number
  readonly #gapRetryMs: number
  readonly #welcomeTimeoutMs: number
  readonly #listeners: Listeners = { message: new Set(), status: new Set(), sendResult: new Set(), typing: new Set(), tokens: new Set() }

  #token: string | undefined
  #refreshToken: string | undefined
  #tokenExpiresAt: number | undefined
  readonly #refreshMarginMs: number
  /** The refresh under way: concurrent callers share it. */
  #refreshing: Promise<boolean> | undefined
  /** The socket refused the token (4001): refresh before reconnecting, once until a welcome. */
  #tokenRefused = false
  #refreshedForSocket = false
  #userId: string | undefined
  #status: ClientStatus = "closed"
  #engine: SyncEngine | undefined
  /** The seq last written to the store: never above what the store holds. */
  #storedSeq = 0
  #session: Session | undefined
  /** Between `connect()` and `close()` or a refused token: keep a socket open. */
  #running = false
  #reconnectTimer: unknown
  #reconnectAttempt = 0
  /** Sync work runs one task at a time, in the order the events arrived. */
  #work: Promise<void> = Promise.resolve()
  #connectWaiters: Array<{ readonly resolve: () => void; readonly reject: (error: ConnectError) => void }> = []
  readonly #sends = new Map<string, PendingSend>()

  constructor(options: ImClientOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/+$/, "")
    this.#wsUrl = options.wsUrl
    this.#holeRecheckMs = options.holeRecheckMs ?? 2_000
    this.#store = options.store ?? new MemoryLocalStore()
    this.#token = options.token
    this.#refreshToken = options.refreshToken
    this.#tokenExpiresAt = options.tokenExpiresAt
    this.#refreshMarginMs = options.refreshMarginMs ?? 60_000
    this.#fetch = options.fetch ?? ((url, init) => globalThis.fetch(url, init))
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket
    this.#timers = options.timers ?? systemTimers
    this.#random = options.random ?? Math.random
    this.#newLocalId = options.newLocalId ?? (() => globalThis.crypto.randomUUID())
    this.#now = options.now ?? Date.now
    this.#pageLimit = options.pageLimit ?? 200
    this.#backoffOptions = options.backoff ?? { initialDelayMs: 500, maxDelayMs: 30_000 }
    this.#maxSendAttempts = options.maxSendAttempts ?? 5
    this.#gapRetryMs = options.gapRetryMs ?? 1_000
    this.#welcomeTimeoutMs = options.welcomeTimeoutMs ?? 10_000
  }

  get token(): string | undefined {
    return this.#token
  }

  /** The refresh token of the login session, when known. */
  get refreshToken(): string | undefined {
    return this.#refreshToken
  }

  /** When `token` expires (ms since the epoch), when known. */
  get tokenExpiresAt(): number | undefined {
    return this.#tokenExpiresAt
  }

  /** The user, known after `login` or the socket's `welcome`. */
  get userId(): string | undefined {
    return this.#userId
  }

  get status(): ClientStatus {
    return this.#status
  }

  /** The local synced seq (0 until `connect()` has read the store). */
  get seq(): number {
    return this.#engine?.seq ?? this.#storedSeq
  }

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof ImClientEvents>(event: K, listener: ImClientEvents[K]): () => void {
    this.#listeners[event].add(listener)
    return () => {
      this.#listeners[event].delete(listener)
    }
  }

  /** The held inbox entries, ascending by seq. */
  messages(): Promise<ReadonlyArray<InboxEntry>> {
    return this.#store.entries()
  }

  // HTTP --------------------------------------------------------------------------------------

  async register(request: RegisterRequest): Promise<User> {
    return (await this.#request("POST", "/auth/register", { body: request })) as User
  }

  /**
   * Logs in (a new login session) and keeps its tokens: the access token for the socket and the
   * routes, the refresh token to get a new one before it expires or when it is refused.
   */
  async login(account: string, password: string): Promise<LoginAnswer> {
    const answer = (await this.#request("POST", "/auth/login", { body: { account, password } })) as LoginAnswer
    this.#setTokens(answer)
    this.#userId = answer.user.id
    if (typeof answer.ws_url === "string" && answer.ws_url !== "") {
      this.#wsUrl = answer.ws_url
      this.#gatewayFromServer = true
    }
    return answer
  }

  /** `GET /inbox/newest`: the highest seq in the server's copy of the inbox. */
  async newestSeq(signal?: AbortSignal): Promise<number> {
    const answer = await this.#request("GET", "/inbox/newest", { auth: true, ...(signal ? { signal } : {}) })
    if (!isNewestAnswer(answer)) throw new HttpError(200, "MalformedAnswer", "GET /inbox/newest: unexpected answer")
    return answer.seq
  }

  /** `GET /inbox`: one page of the entries with `after < seq ≤ until`. */
  async pullPage(
    query: { readonly after: number; readonly limit?: number; readonly until?: number },
    signal?: AbortSignal
  ): Promise<PullPage> {
    const params = new URLSearchParams({ after: String(query.after), limit: String(query.limit ?? this.#pageLimit) })
    if (query.until !== undefined) params.set("until", String(query.until))
    const answer = await this.#request("GET", `/inbox?${params}`, { auth: true, ...(signal ? { signal } : {}) })
    if (!isPullPage(answer)) throw new HttpError(200, "MalformedAnswer", "GET /inbox: unexpected answer")
    return answer
  }

  // Users -------------------------------------------------------------------------------------

  /** `GET /users/me`: the user's own profile, with their email. */
  async me(signal?: AbortSignal): Promise<Profile> {
    const answer = await this.#request("GET", "/users/me", { auth: true, ...(signal ? { signal } : {}) })
    if (!isUser(answer)) throw new HttpError(200, "MalformedAnswer", "GET /users/me: unexpected answer")
    return answer
  }

  /** `GET /users/{user_id}`: a user's public profile (`HttpError` 404 `UserNotFound` if none). */
  async user(userId: string, signal?: AbortSignal): Promise<User> {
    const path = `/users/${encodeURIComponent(userId)}`
    const answer = await this.#request("GET", path, { auth: true, ...(signal ? { signal } : {}) })
    if (!isUser(answer)) throw new HttpError(200, "MalformedAnswer", `GET ${path}: unexpected answer`)
    return answer
  }

  /** `GET /users?account=` (or `?email=`): the user with exactly that account or email, if any. */
  async findUser(query: { readonly account: string } | { readonly email: string }): Promise<User | undefined> {
    const params = new URLSearchParams("account" in query ? { account: query.account } : { email: query.email })
    const answer = await this.#request("GET", `/users?${params}`, { auth: true })
    if (!Array.isArray(answer) || !answer.every(isUser)) throw new HttpError(200, "MalformedAnswer", "GET /users: unexpected answer")
    return answer[0]
  }

  // Conversations, read receipts, recall -------------------------------------------------------

  /** `GET /conversations`: the user's conversations, newest first, with unread counts. */
  async conversations(signal?: AbortSignal): Promise<ReadonlyArray<ConversationSummary>> {
    const answer = await this.#request("GET", "/conversations", { auth: true, ...(signal ? { signal } : {}) })
    if (!Array.isArray(answer)) throw new HttpError(200, "MalformedAnswer", "GET /conversations: unexpected answer")
    return answer as ReadonlyArray<ConversationSummary>
  }

  /**
   * `POST /conversations/read`: the conversation with a user, or in a group, is read up to `seq`
   * of this user's inbox; the senders of what was newly read get a `read` notice.
   */
  async markRead(
    target: { readonly user_id: string } | { readonly group_id: string },
    seq: number
  ): Promise<ConversationSummary> {
    return (await this.#request("POST", "/conversations/read", { auth: true, body: { ...target, seq } })) as ConversationSummary
  }

  /** `POST /messages/{server_id}/recall`: takes back a message this user sent, within the server's window. */
  async recall(serverId: string): Promise<void> {
    await this.#request("POST", `/messages/${encodeURIComponent(serverId)}/recall`, { auth: true, body: {} })
  }

  // Files ---------------------------------------------------------------------------------------

  /**
   * Uploads a file: announces it (`POST /files`), then PUTs the bytes to the presigned URL it
   * got. Resolves with the reference to send as the JSON `content` of an image, file, voice or
   * video message (add `width`/`height`/`duration_ms` if known). Rejects with an `HttpError`:
   * `FileTooLarge` or `HttpApiSchemaError` (a type not allowed, a bad name) from the announce,
   * `UploadFailed` when the store refused the bytes.
   */
  async uploadFile(data: Blob | ArrayBuffer | Uint8Array, name: string, type: string): Promise<FileReference> {
    const body = data instanceof Uint8Array && !(data.buffer instanceof ArrayBuffer) ? new Uint8Array(data) : data
    const size = body instanceof Blob ? body.size : body.byteLength
    const ticket = await this.#request("POST", "/files", { auth: true, body: { name, content_type: type, size } })
    if (!isUploadTicket(ticket)) throw new HttpError(201, "MalformedAnswer", "POST /files: unexpected answer")
    const response = await this.#fetch(ticket.upload_url, {
      method: ticket.method,
      headers: { ...ticket.headers },
      body: body as Blob | ArrayBuffer | Uint8Array<ArrayBuffer>
    })
    if (!response.ok) {
      throw new HttpError(response.status, "UploadFailed", `the file store refused the upload: status ${response.status}`)
    }
    return { file_id: ticket.file_id, name, size, mime: type }
  }

  /**
   * `GET /files/{file_id}`: a file the user owns or was sent, with a short-lived `download_url`
   * (a plain GET gives the bytes). Others' files are `HttpError` 404 `FileNotFound`.
   */
  async fileInfo(fileId: string, signal?: AbortSignal): Promise<FileInfo> {
    const answer = await this.#request("GET", `/files/${encodeURIComponent(fileId)}`, { auth: true, ...(signal ? { signal } : {}) })
    if (!isFileInfo(answer)) throw new HttpError(200, "MalformedAnswer", "GET /files/{file_id}: unexpected answer")
    return answer
  }

  /** A short-lived URL to download the file (see `fileInfo`); ask again once it expired. */
  async fileUrl(fileId: string, signal?: AbortSignal): Promise<string> {
    return (await this.fileInfo(fileId, signal)).download_url
  }

  // Friends -----------------------------------------------------------------------------------

  /**
   * `POST /friends/requests`: asks a user to be friends, with an optional note (at most 256
   * characters). Asking again while it is pending gives the same request. Rejects with an
   * `HttpError`: `CannotFriendSelf`, `UserNotFound`, `AlreadyFriends`, `FriendRequestPending`
   * (they asked first: accept theirs), `UserBlocked` (you blocked them).
   */
  async sendFriendRequest(userId: string, message?: string): Promise<FriendRequest> {
    const body = message === undefined ? { user_id: userId } : { user_id: userId, message }
    const answer = await this.#request("POST", "/friends/requests", { auth: true, body })
    if (!isFriendRequest(answer)) throw new HttpError(201, "MalformedAnswer", "POST /friends/requests: unexpected answer")
    return answer
  }

  /** `GET /friends/requests`: the pending requests to and from the user, oldest first. */
  async friendRequests(signal?: AbortSignal): Promise<FriendRequests> {
    const answer = await this.#request("GET", "/friends/requests", { auth: true, ...(signal ? { signal } : {}) })
    if (!isFriendRequests(answer)) throw new HttpError(200, "MalformedAnswer", "GET /friends/requests: unexpected answer")
    return answer
  }

  /** Accepts a pending request addressed to the user (else `HttpError` 404 / 409). */
  async acceptFriendRequest(requestId: string): Promise<FriendRequest> {
    return this.#answerFriendRequest(requestId, "accept")
  }

  /** Rejects a pending request addressed to the user (else `HttpError` 404 / 409). */
  async rejectFriendRequest(requestId: string): Promise<FriendRequest> {
    return this.#answerFriendRequest(requestId, "reject")
  }

  async #answerFriendRequest(requestId: string, answer: "accept" | "reject"): Promise<FriendRequest> {
    const path = `/friends/requests/${encodeURIComponent(requestId)}/${answer}`
    const request = await this.#request("POST", path, { auth: true })
    if (!isFriendRequest(request)) throw new HttpError(200, "MalformedAnswer", `POST ${path}: unexpected answer`)
    return request
  }

  /** `DELETE /friends/{user_id}`: ends a friendship both ways (`HttpError` 404 `NotFriends` if none). */
  async deleteFriend(userId: string): Promise<void> {
    await this.#request("DELETE", `/friends/${encodeURIComponent(userId)}`, { auth: true })
  }

  /** Blocks a user: ends a friendship, refuses their requests and their one-to-one messages. */
  async blockUser(userId: string): Promise<void> {
    await this.#request("POST", `/friends/${encodeURIComponent(userId)}/block`, { auth: true })
  }

  /** Unblocks a user (`HttpError` 404 `NotBlocked` if not blocked); they are not friends again. */
  async unblockUser(userId: string): Promise<void> {
    await this.#request("DELETE", `/friends/${encodeURIComponent(userId)}/block`, { auth: true })
  }

  /**
   * `GET /friends?since=V`: the contact list's entries changed after version `since`
   * (tombstones for removals) and its current version, to keep for the next call; with
   * `since` 0 the whole list (`full`).
   */
  async contacts(since = 0, signal?: AbortSignal): Promise<ContactChanges> {
    const answer = await this.#request("GET", `/friends?since=${since}`, { auth: true, ...(signal ? { signal } : {}) })
    if (!isContactChanges(answer)) throw new HttpError(200, "MalformedAnswer", "GET /friends: unexpected answer")
    return answer
  }

  // Groups: thin calls of the group routes (docs/protocol.md, "Groups"). Refusals reject with an
  // `HttpError` whose `tag` is the server's: `GroupNotFound` (no such group, or not a member),
  // `Forbidden` (the role does not allow it), `AlreadyMember`, `JoinRequestNotFound`, …

  /** `POST /groups`: a new group owned by the user, with `memberIds` as its first members. */
  async createGroup(name: string, memberIds: ReadonlyArray<string> = []): Promise<Group> {
    return this.#group("POST", "/groups", { name, member_ids: memberIds }, isGroup)
  }

  /** `GET /groups`: the user's groups. */
  async groups(): Promise<ReadonlyArray<Group>> {
    return this.#group("GET", "/groups", undefined, isArrayOf(isGroup))
  }

  async group(groupId: string): Promise<Group> {
    return this.#group("GET", `/groups/${encodeURIComponent(groupId)}`, undefined, isGroup)
  }

  async groupMembers(groupId: string): Promise<ReadonlyArray<GroupMember>> {
    return this.#group("GET", `/groups/${encodeURIComponent(groupId)}/members`, undefined, isArrayOf(isGroupMember))
  }

  /** Adds users; answers those who were not members yet. */
  async inviteToGroup(groupId: string, userIds: ReadonlyArray<string>): Promise<ReadonlyArray<string>> {
    const path = `/groups/${encodeURIComponent(groupId)}/members`
    const answer = await this.#group("POST", path, { user_ids: userIds }, (u): u is { added: Array<string> } =>
      typeof u === "object" && u !== null && Array.isArray((u as { added?: unknown }).added))
    return answer.added
  }

  /** Removes a member (owner: anyone but themself; admin: plain members). */
  async removeGroupMember(groupId: string, userId: string): Promise<void> {
    await this.#request("DELETE", `/groups/${encodeURIComponent(groupId)}/members/${encodeURIComponent(userId)}`, { auth: true })
  }

  /** Leaves a group (the owner transfers it first). */
  async leaveGroup(groupId: string): Promise<void> {
    if (this.#userId === undefined) throw new HttpError(401, "Unauthorized", "not logged in")
    await this.removeGroupMember(groupId, this.#userId)
  }

  /** Owner or admin: changes the group's info; `null` removes the avatar or announcement. */
  async updateGroup(groupId: string, patch: GroupInfoPatch): Promise<Group> {
    return this.#group("PATCH", `/groups/${encodeURIComponent(groupId)}`, patch, isGroup)
  }

  /** Owner: deletes the group; its members get a `group_dismissed` notice. */
  async dismissGroup(groupId: string): Promise<void> {
    await this.#request("DELETE", `/groups/${encodeURIComponent(groupId)}`, { auth: true })
  }

  /** Owner: makes a member an admin, or an admin a plain member. */
  async setGroupRole(groupId: string, userId: string, role: "admin" | "member"): Promise<GroupMember> {
    const path = `/groups/${encodeURIComponent(groupId)}/members/${encodeURIComponent(userId)}/role`
    return this.#group("PUT", path, { role }, isGroupMember)
  }

  /** Owner: hands the group to another member; the user becomes an admin. */
  async transferGroup(groupId: string, userId: string): Promise<Group> {
    return this.#group("POST", `/groups/${encodeURIComponent(groupId)}/transfer`, { user_id: userId }, isGroup)
  }

  /** Joins at once, or (the group needs approval) asks to: `status` says which. */
  async joinGroup(groupId: string, message?: string): Promise<JoinAnswer> {
    const body = message === undefined ? {} : { message }
    return this.#group("POST", `/groups/${encodeURIComponent(groupId)}/join`, body, isJoinAnswer)
  }

  /** Owner or admin: the pending requests to join, oldest first. */
  async groupJoinRequests(groupId: string): Promise<ReadonlyArray<JoinRequest>> {
    return this.#group("GET", `/groups/${encodeURIComponent(groupId)}/join-requests`, undefined, isArrayOf(isJoinRequest))
  }

  /** Owner or admin: accepts a pending request; its user becomes a member. */
  async acceptJoinRequest(groupId: string, requestId: string): Promise<JoinRequest> {
    const path = `/groups/${encodeURIComponent(groupId)}/join-requests/${encodeURIComponent(requestId)}/accept`
    return this.#group("POST", path, undefined, isJoinRequest)
  }

  /** Owner or admin: rejects a pending request. */
  async rejectJoinRequest(groupId: string, requestId: string): Promise<JoinRequest> {
    const path = `/groups/${encodeURIComponent(groupId)}/join-requests/${encodeURIComponent(requestId)}/reject`
    return this.#group("POST", path, undefined, isJoinRequest)
  }

  async #group<A>(method: string, path: string, body: unknown, guard: (u: unknown) => u is A): Promise<A> {
    const answer = await this.#request(method, path, { auth: true, ...(body === undefined ? {} : { body }) })
    if (!guard(answer)) throw new HttpError(200, "MalformedAnswer", `${method} ${path}: unexpected answer`)
    return answer
  }

  /**
   * Trades the refresh token for a new pair (`POST /auth/refresh`); the old refresh token is
   * spent. False when there is none or the server refused it (the session is over: log in
   * again); rejects with an `HttpError` when the server could not be asked. Callers at the same
   * time share one refresh.
   */
  refresh(): Promise<boolean> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined
    })
    return this.#refreshing
  }

  async #refresh(): Promise<boolean> {
    const refreshToken = this.#refreshToken
    if (refreshToken === undefined) return false
    let answer: unknown
    try {
      answer = await this.#send("POST", "/auth/refresh", { body: { refresh_token: refreshToken } })
    } catch (error) {
      if (!(error instanceof HttpError && error.status === 401)) throw error
      if (this.#refreshToken === refreshToken) this.#setTokens(undefined)
      return false
    }
    if (!isTokenPair(answer)) throw new HttpError(200, "MalformedAnswer", "POST /auth/refresh: unexpected answer")
    this.#setTokens(answer)
    return true
  }

  /**
   * `POST /auth/logout`: ends this login session on the server (its tokens are refused from then
   * on, everywhere; the user's other sessions go on), after closing this client. The tokens are
   * forgotten, unless the server could not be asked (then it rejects, and may be called again).
   */
  async logout(): Promise<void> {
    this.close()
    if (this.#token === undefined && this.#refreshToken === undefined) return
    try {
      await this.#request("POST", "/auth/logout", { auth: true })
    } catch (error) {
      // 401: the session was over already.
      if (!(error instanceof HttpError && error.status === 401)) throw error
    }
    this.#setTokens(undefined)
  }

  #setTokens(tokens: TokenPair | undefined): void {
    this.#token = tokens?.token
    this.#tokenExpiresAt = tokens?.expires_at
    // An older server answers no refresh token.
    this.#refreshToken = typeof tokens?.refresh_token === "string" ? tokens.refresh_token : undefined
    this.#emit("tokens", tokens === undefined ? undefined : {
      token: tokens.token,
      expires_at: tokens.expires_at,
      refresh_token: tokens.refresh_token,
      refresh_expires_at: tokens.refresh_expires_at
    })
  }

  /** Refreshes the access token when it is about to expire (and a refresh token is known). */
  async #freshen(): Promise<void> {
    if (this.#refreshToken === undefined || this.#tokenExpiresAt === undefined) return
    if (this.#now() < this.#tokenExpiresAt - this.#refreshMarginMs) return
    await this.refresh().catch(() => false) // the request goes with the old token and says what holds
  }

  /** An HTTP call; with `auth`, the access token is refreshed near its expiry, and once on a 401. */
  async #request(
    method: string,
    path: string,
    options: { readonly body?: unknown; readonly auth?: boolean; readonly signal?: AbortSignal }
  ): Promise<unknown> {
    if (options.auth !== true) return this.#send(method, path, options)
    await this.#freshen()
    const used = this.#token
    try {
      return await this.#send(method, path, options)
    } catch (error) {
      if (!(error instanceof HttpError && error.status === 401) || used === undefined) throw error
      // Refreshed meanwhile by another call: try the new token; else refresh now.
      if (this.#token === used && !(await this.refresh().catch(() => false))) throw error
      if (this.#token === undefined || this.#token === used) throw error
      return this.#send(method, path, options)
    }
  }

  async #send(
    method: string,
    path: string,
    options: { readonly body?: unknown; readonly auth?: boolean; readonly signal?: AbortSignal }
  ): Promise<unknown> {
    const headers: Record<string, string> = { accept: "application/json" }
    if (options.body !== undefined) headers["content-type"] = "application/json"
    if (options.auth === true) {
      if (this.#token === undefined) throw new HttpError(401, "Unauthorized", "not logged in")
      headers["authorization"] = `Bearer ${this.#token}`
    }
    const response = await this.#fetch(`${this.#baseUrl}${path}`, {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {})
    })
    const body: unknown = await response.json().catch(() => undefined)
    if (!response.ok) {
      throw isErrorBody(body)
        ? new HttpError(response.status, body._tag, body.message)
        : new HttpError(response.status, "HttpError", `${method} ${path}: status ${response.status}`)
    }
    return body
  }

  // Connection --------------------------------------------------------------------------------

  /**
   * Opens the socket and keeps one open (reconnecting with backoff) until `close()` or a refused
   * token. A token the socket refuses (close code 4001: expired, revoked) is refreshed once
   * before the next attempt, and one about to expire before it. Resolves once the inbox is synced
   * for the first time; rejects with a `ConnectError` on a token that no refresh replaces, or
   * `close()`.
   */
  async connect(): Promise<void> {
    // Resuming from a refresh token alone: get an access token first.
    if (this.#token === undefined && this.#refreshToken !== undefined && !this.#running) await this.refresh().catch(() => false)
    if (this.#token === undefined) throw new ConnectError("unauthorized", "connect() needs a token: log in first")
    if (this.#running && this.#status === "synced") return
    const synced = new Promise<void>((resolve, reject) => this.#connectWaiters.push({ resolve, reject }))
    if (!this.#running) {
      this.#running = true
      this.#reconnectAttempt = 0
      if (this.#engine === undefined) {
        this.#storedSeq = await this.#store.getSeq()
        this.#engine = new SyncEngine(this.#storedSeq)
      }
      await this.#freshen()
      if (this.#running && this.#session === undefined) this.#open()
    }
    return synced
  }

  /** Stops everything: closes the socket, reconnects no more, fails the sends still pending. */
  close(): void {
    this.#running = false
    if (this.#reconnectTimer !== undefined) this.#timers.clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = undefined
    if (this.#session !== undefined) this.#end(this.#session, "closed")
    for (const pending of [...this.#sends.values()]) {
      this.#failSend(pending, "closed", "the client was closed")
    }
    this.#rejectConnect(new ConnectError("closed", "the client was closed"))
    for (const timer of this.#recheckTimers) this.#timers.clearTimeout(timer)
    this.#recheckTimers.clear()
    this.#setStatus("closed")
  }

  #open(): void {
    this.#reconnectTimer = undefined
    const url = new URL(this.#wsUrl ?? `${this.#baseUrl}/ws`)
    if (url.protocol === "http:" || url.protocol === "https:") url.protocol = url.protocol === "https:" ? "wss:" : "ws:"
    url.searchParams.set("token", this.#token ?? "")
    this.#setStatus("connecting")
    let socket: WebSocketLike
    try {
      socket = new this.#WebSocket(url.toString())
    } catch {
      this.#setStatus("closed")
      this.#scheduleReconnect()
      return
    }
    const session: Session = {
      socket,
      welcomed: false,
      welcomeTimer: undefined,
      lastSeen: this.#now(),
      heartbeat: undefined,
      gapTimer: undefined,
      requests: new Set()
    }
    this.#session = session
    session.welcomeTimer = this.#timers.setTimeout(() => {
      session.welcomeTimer = undefined
      if (!session.welcomed) this.#end(session, "lost")
    }, this.#welcomeTimeoutMs)
    socket.addEventListener("message", (event) => {
      if (this.#session === session && typeof event.data === "string") this.#onFrame(session, event.data)
    })
    socket.addEventListener("close", (event) => {
      if (this.#session !== session) return
      const refused = event.code === CloseCodes.unauthorized
      if (refused && this.#refreshToken !== undefined && !this.#refreshedForSocket) {
        // Expired or revoked: a refresh says which, before the next attempt.
        this.#refreshedForSocket = true
        this.#tokenRefused = true
        return this.#end(session, "lost")
      }
      this.#end(session, refused ? "unauthorized" : "lost")
    })
    // An error event is followed by a close event, which does the work.
    socket.addEventListener("error", () => {})
  }

  /** Ends a session: `lost` reconnects, `unauthorized` waits for a new login, `closed` is final. */
  #end(session: Session, why: "lost" | "unauthorized" | "closed"): void {
    if (this.#session !== session) return
    this.#session = undefined
    if (session.welcomeTimer !== undefined) this.#timers.clearTimeout(session.welcomeTimer)
    if (session.heartbeat !== undefined) this.#timers.clearInterval(session.heartbeat)
    if (session.gapTimer !== undefined) this.#timers.clearTimeout(session.gapTimer)
    for (const pull of session.requests) pull.abort()
    try {
      session.socket.close(1000, why)
    } catch {
      // already closed
    }
    this.#enqueue(session, async () => this.#engine?.disconnected())
    for (const pending of this.#sends.values()) {
      if (pending.state !== "sent") continue
      if (pending.attempts >= this.#maxSendAttempts) {
        this.#failSend(pending, "connection_lost", "the connection was lost before a result, attempts exhausted")
      } else {
        pending.state = "queued"
      }
    }
    if (why === "unauthorized") {
      this.#running = false
      this.#setStatus("unauthorized")
      this.#rejectConnect(new ConnectError("unauthorized", "the server refused the token: log in again"))
    } else {
      this.#setStatus("closed")
      if (why === "lost" && this.#running) this.#scheduleReconnect()
    }
  }

  #scheduleReconnect(): void {
    const delay = this.#backoff(this.#reconnectAttempt++)
    this.#reconnectTimer = this.#timers.setTimeout(() => {
      this.#reconnectTimer = undefined
      if (!this.#running || this.#session !== undefined) return
      if (this.#tokenRefused || this.#nearExpiry()) return void this.#reconnectFresh()
      this.#reconnect()
    }, delay)
  }

  #reconnect(): void {
    if (!this.#gatewayFromServer) return this.#open()
    // The gateway may be gone: `GET /gateway` names a healthy one (the old one if it fails).
    this.#request("GET", "/gateway", { auth: true }).then(
      (answer) => {
        const wsUrl = (answer as { ws_url?: unknown } | undefined)?.ws_url
        if (typeof wsUrl === "string" && wsUrl !== "") this.#wsUrl = wsUrl
      },
      () => {}
    ).finally(() => {
      if (this.#running && this.#session === undefined) this.#open()
    })
  }

  #nearExpiry(): boolean {
    return this.#refreshToken !== undefined && this.#tokenExpiresAt !== undefined &&
      this.#now() >= this.#tokenExpiresAt - this.#refreshMarginMs
  }

  /** Refreshes the token, then reconnects; a refused refresh stops here (log in again). */
  async #reconnectFresh(): Promise<void> {
    const refreshed = await this.refresh().catch(() => undefined)
    if (!this.#running || this.#session !== undefined) return
    if (refreshed === undefined) return this.#scheduleReconnect() // the server could not be asked: later
    this.#tokenRefused = false
    if (!refreshed) {
      this.#running = false
      this.#setStatus("unauthorized")
      return this.#rejectConnect(new ConnectError("unauthorized", "the server refused the token: log in again"))
    }
    this.#reconnect()
  }

  /** Exponential, capped, jittered down to half: `attempt` 0 is the first retry. */
  #backoff(attempt: number): number {
    const { initialDelayMs, maxDelayMs } = this.#backoffOptions
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** attempt)
    return ceiling / 2 + (this.#random() * ceiling) / 2
  }

  #onFrame(session: Session, text: string): void {
    session.lastSeen = this.#now()
    const frame: ServerFrame | undefined = decodeServerFrame(text)
    if (frame === undefined) return
    switch (frame.type) {
      case "welcome":
        return this.#onWelcome(session, frame.user_id, frame.heartbeat_timeout_ms)
      case "message": {
        const entry: InboxEntry = { seq: frame.seq, message: frame.message }
        return this.#enqueue(session, async () => {
          const held = (await this.#store.getByServerId(entry.message.server_id)) !== undefined
          await this.#apply(session, this.#engine!.pushed(entry, held))
        })
      }
      case "send_result":
        return this.#onSendResult(frame)
      case "typing":
        return this.#emit("typing", frame)
      case "pong":
      case "error":
        return
    }
  }

  #onWelcome(session: Session, userId: string, heartbeatTimeoutMs: number): void {
    if (session.welcomed) return
    session.welcomed = true
    if (session.welcomeTimer !== undefined) this.#timers.clearTimeout(session.welcomeTimer)
    session.welcomeTimer = undefined
    this.#userId = userId
    this.#reconnectAttempt = 0
    this.#refreshedForSocket = false
    if (heartbeatTimeoutMs > 0) {
      session.heartbeat = this.#timers.setInterval(() => {
        // Every ping is answered: silence this long means the connection is dead without a close.
        if (this.#now() - session.lastSeen > heartbeatTimeoutMs) this.#end(session, "lost")
        else this.#transmit(session, { type: "ping" })
      }, Math.max(1, Math.floor(heartbeatTimeoutMs / 3)))
    }
    this.#setStatus("open")
    this.#setStatus("syncing")
    this.#enqueue(session, async () => this.#engine!.connected())
    const abort = this.#track(session)
    this.newestSeq(abort.signal).then(
      (newest) => {
        session.requests.delete(abort)
        this.#enqueue(session, async () => {
          if (this.#session === session) await this.#apply(session, this.#engine!.newest(newest))
        })
      },
      (error: unknown) => {
        session.requests.delete(abort)
        this.#syncFailed(session, error)
      }
    )
    for (const pending of this.#sends.values()) this.#trySend(pending)
  }

  // Sync --------------------------------------------------------------------------------------

  #enqueue(session: Session, task: () => Promise<void>): void {
    this.#work = this.#work.then(task).catch((error: unknown) => this.#syncFailed(session, error))
  }

  /** Sync cannot go on over this connection: start over with a new one, or stop on a refused token. */
  #syncFailed(session: Session, error: unknown): void {
    if (this.#session !== session) return
    // The engine may be ahead of what reached the store: start again from the store's seq.
    this.#engine = new SyncEngine(this.#storedSeq)
    this.#end(session, error instanceof HttpError && error.status === 401 ? "unauthorized" : "lost")
  }

  async #apply(session: Session, step: SyncStep): Promise<void> {
    const engine = this.#engine!
    const stored = await this.#store.put(step.store)
    if (engine.seq !== this.#storedSeq) {
      await this.#store.setSeq(engine.seq)
      this.#storedSeq = engine.seq
    }
    for (const entry of stored) this.#emit("message", entry)
    for (const range of step.pulls) this.#pull(session, range)
    this.#syncStatus(session)
  }

  #pull(session: Session, range: PullRange): void {
    const engine = this.#engine!
    if (this.#session !== session) {
      this.#enqueue(session, async () => void engine.pullFailed(range))
      return
    }
    const abort = this.#track(session)
    this.pullPage({ after: range.after, until: range.until }, abort.signal).then(
      (page) => {
        session.requests.delete(abort)
        this.#enqueue(session, () => this.#apply(session, engine.pulled(range, page)))
        this.#recheckHoles(range.after, page)
      },
      (error: unknown) => {
        session.requests.delete(abort)
        this.#enqueue(session, async () => void engine.pullFailed(range))
        this.#syncFailed(session, error)
      }
    )
  }

  /** Asks again, a little later, for the numbers `page` settled without an entry. */
  #recheckHoles(after: number, page: PullPage): void {
    if (this.#holeRecheckMs <= 0 || page.through - after > 10_000) return
    const missing = missingSpan(after + 1, page.through, page.entries)
    if (missing !== undefined) this.#recheck(missing, 0)
  }

  /**
   * Re-check `attempt` (RECHECK_DELAYS) of the numbers `[first, last]`: what comes is stored as a
   * push would be, what is still missing is asked for at the next one. Without a connection, or
   * when the pull fails, the same re-check waits as long again: a dropped socket is when a late
   * entry's push is most likely lost, and a reconnection syncs only above the local seq.
   */
  #recheck([first, last]: readonly [number, number], attempt: number): void {
    const timer = this.#timers.setTimeout(() => {
      this.#recheckTimers.delete(timer)
      const session = this.#session
      if (!this.#running) return
      if (session === undefined || !session.welcomed) return this.#recheck([first, last], attempt)
      const abort = this.#track(session)
      this.pullPage({ after: first - 1, until: last }, abort.signal).then(
        (late) => {
          session.requests.delete(abort)
          this.#enqueue(session, async () => {
            if (this.#session !== session) return this.#recheck([first, last], attempt)
            for (const entry of late.entries) {
              const held = (await this.#store.getByServerId(entry.message.server_id)) !== undefined
              if (this.#session === session) await this.#apply(session, this.#engine!.pushed(entry, held))
            }
            const still = missingSpan(first, last, late.entries)
            if (still !== undefined && attempt + 1 < RECHECK_DELAYS.length) this.#recheck(still, attempt + 1)
          })
        },
        () => {
          session.requests.delete(abort)
          this.#recheck([first, last], attempt)
        }
      )
    }, this.#holeRecheckMs * RECHECK_DELAYS[attempt]!)
    this.#recheckTimers.add(timer)
  }

  #track(session: Session): AbortController {
    const abort = new AbortController()
    session.requests.add(abort)
    return abort
  }

  #syncStatus(session: Session): void {
    if (this.#session !== session || !session.welcomed) return
    const engine = this.#engine!
    if (engine.synced) {
      this.#setStatus("synced")
      const waiters = this.#connectWaiters
      this.#connectWaiters = []
      for (const waiter of waiters) waiter.resolve()
      return
    }
    this.#setStatus("syncing")
    if (engine.needsRetry && session.gapTimer === undefined) {
      session.gapTimer = this.#timers.setTimeout(() => {
        session.gapTimer = undefined
        this.#enqueue(session, async () => {
          if (this.#session === session) await this.#apply(session, this.#engine!.retry())
        })
      }, this.#gapRetryMs)
    }
  }

  // Sends -------------------------------------------------------------------------------------

  /**
   * Sends a message. Resolves when the server accepted it; rejects with a `SendError` on a
   * refusal that sending again cannot fix. On `unavailable`, or when the socket is lost before
   * the result, the same `local_id` is sent again (after reconnecting), up to `maxSendAttempts`.
   * A send made while no socket is open waits for one.
   */
  send(input: SendInput): Promise<SendOutcome> {
    const localId = input.local_id ?? this.#newLocalId()
    const existing = this.#sends.get(localId)
    if (existing !== undefined) return existing.promise
    if (input.content.length > MAX_CONTENT_LENGTH) {
      // The server would refuse it, or close the socket over the frame's size: not worth a trip.
      const message = `content is longer than ${MAX_CONTENT_LENGTH} characters`
      this.#emit("sendResult", { ok: false, local_id: localId, code: "invalid_frame", message })
      return Promise.reject(new SendError("invalid_frame", localId, message))
    }
    let resolve!: (outcome: SendOutcome) => void
    let reject!: (error: SendError) => void
    const promise = new Promise<SendOutcome>((ok, fail) => {
      resolve = ok
      reject = fail
    })
    const pending: PendingSend = {
      frame: {
        type: "send",
        local_id: localId,
        ...(input.group_id !== undefined ? { group_id: input.group_id } : { receiver_id: input.receiver_id }),
        content_type: input.content_type ?? "text",
        content: input.content,
        create_time: this.#now()
      },
      promise,
      resolve,
      reject,
      attempts: 0,
      state: "queued",
      retryTimer: undefined
    }
    this.#sends.set(localId, pending)
    this.#trySend(pending)
    return promise
  }

  #trySend(pending: PendingSend): void {
    const session = this.#session
    if (pending.state !== "queued" || session === undefined || !session.welcomed) return
    const userId = this.#userId
    if (pending.attempts === 0 || userId === undefined) return this.#transmitSend(pending)
    // A send tried before may have been stored even though its result was lost.
    pending.state = "checking"
    this.#store.getByLocalId(userId, pending.frame.local_id).then(
      (entry) => {
        if (pending.state !== "checking") return
        if (entry !== undefined) {
          return this.#succeedSend(pending, { server_id: entry.message.server_id, send_time: entry.message.send_time })
        }
        pending.state = "queued"
        this.#transmitSend(pending)
      },
      () => {
        if (pending.state !== "checking") return
        pending.state = "queued"
        this.#transmitSend(pending)
      }
    )
  }

  #transmitSend(pending: PendingSend): void {
    const session = this.#session
    if (session === undefined || !session.welcomed) return
    // Marked before the frame leaves: a result must find the send waiting for it.
    pending.attempts++
    pending.state = "sent"
    if (!this.#transmit(session, pending.frame)) {
      pending.attempts--
      pending.state = "queued"
    }
  }

  /**
   * Tells the peer (`{ receiver_id }`) or the group (`{ group_id }`) that the user is typing,
   * if connected; dropped otherwise. The server passes on at most one a second per target.
   */
  typing(target: { readonly receiver_id: string } | { readonly group_id: string }): boolean {
    const session = this.#session
    return session !== undefined && session.welcomed && this.#transmit(session, { type: "typing", ...target })
  }

  #transmit(session: Session, frame: ClientFrame): boolean {
    try {
      session.socket.send(JSON.stringify(frame))
      return true
    } catch {
      return false // the close event follows
    }
  }

  #onSendResult(frame: Extract<ServerFrame, { type: "send_result" }>): void {
    const pending = this.#sends.get(frame.local_id)
    if (pending === undefined || pending.state !== "sent") return
    if (frame.ok) {
      return this.#succeedSend(pending, { server_id: frame.server_id, send_time: frame.send_time })
    }
    const { code, message } = frame.error
    if (!isRetryable(code) || pending.attempts >= this.#maxSendAttempts) {
      return this.#failSend(pending, code, message)
    }
    pending.state = "waiting"
    pending.retryTimer = this.#timers.setTimeout(() => {
      pending.retryTimer = undefined
      pending.state = "queued"
      this.#trySend(pending)
    }, this.#backoff(pending.attempts - 1))
  }

  #succeedSend(pending: PendingSend, accepted: { readonly server_id: string; readonly send_time: number }): void {
    const outcome: SendOutcome = { local_id: pending.frame.local_id, ...accepted }
    this.#forgetSend(pending)
    pending.resolve(outcome)
    this.#emit("sendResult", { ok: true, ...outcome })
  }

  #failSend(pending: PendingSend, code: SendFailureCode, message: string): void {
    const localId = pending.frame.local_id
    this.#forgetSend(pending)
    pending.reject(new SendError(code, localId, message))
    this.#emit("sendResult", { ok: false, local_id: localId, code, message })
  }

  #forgetSend(pending: PendingSend): void {
    if (pending.retryTimer !== undefined) this.#timers.clearTimeout(pending.retryTimer)
    pending.retryTimer = undefined
    pending.state = "done"
    this.#sends.delete(pending.frame.local_id)
  }

  // Events ------------------------------------------------------------------------------------

  #setStatus(status: ClientStatus): void {
    if (this.#status === status) return
    this.#status = status
    this.#emit("status", status)
  }

  #rejectConnect(error: ConnectError): void {
    const waiters = this.#connectWaiters
    this.#connectWaiters = []
    for (const waiter of waiters) waiter.reject(error)
  }

  #emit<K extends keyof ImClientEvents>(event: K, ...args: Parameters<ImClientEvents[K]>): void {
    for (const listener of this.#listeners[event]) {
      try {
        ;(listener as (...args: Parameters<ImClientEvents[K]>) => void)(...args)
      } catch (error) {
        // A listener's failure is its own: report it without breaking the SDK's work.
        queueMicrotask(() => {
          throw error
        })
      }
    }
  }
}
