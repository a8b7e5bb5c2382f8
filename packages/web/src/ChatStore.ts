import { type ClientStatus, HttpError, type ImClient, SendError } from "@im/client/Client"
import { type Group, groupEventOf, type GroupMember } from "@im/client/Groups"
import { type ConversationSummary, friendEventOf, type FriendRequests, type InboxEntry, type Profile, type User } from "@im/client/Wire"
import {
  type ConversationKey,
  conversationOf,
  fileKindOf,
  groupKey,
  hasUnreadAfter,
  lastSeqOf,
  type PendingSend,
  targetOf,
  userKey
} from "./Model.ts"
import { newLocalId } from "./Session.ts"

interface PendingFile extends PendingSend {
  /** Kept until the upload succeeded, so a failed upload can be retried. */
  readonly file?: File
}

/** How long a typing signal shows ("… is typing"); senders repeat it every few seconds. */
const TYPING_SHOWN_MS = 4_000
const TYPING_REPEAT_MS = 2_000

/**
 * The chat screen's state around one logged-in `ImClient`: the inbox as it syncs and arrives,
 * this device's sends and their states, contacts, friend requests, groups and unread counts.
 * Components read its fields and re-render on `subscribe`; its methods are the user's actions.
 */
export class ChatStore {
  readonly client: ImClient
  readonly me: Profile
  status: ClientStatus
  /** The inbox, ascending by seq. */
  entries: Array<InboxEntry> = []
  readonly pending = new Map<string, PendingFile>()
  readonly users = new Map<string, User>()
  readonly groups = new Map<string, Group>()
  readonly members = new Map<string, ReadonlyArray<GroupMember>>()
  friends: ReadonlyArray<string> = []
  requests: FriendRequests = { incoming: [], outgoing: [] }
  readonly summaries = new Map<string, ConversationSummary>()
  readonly typing = new Map<ConversationKey, { readonly user: string; readonly until: number }>()
  open: ConversationKey | undefined
  /** The last action's error, shown until the next action. */
  error: string | undefined

  readonly #listeners = new Set<() => void>()
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>()
  readonly #unsubscribe: Array<() => void> = []
  readonly #asked = new Set<string>()
  readonly #fileUrls = new Map<string, { readonly url: string; readonly expires: number }>()
  readonly #markedRead = new Map<ConversationKey, number>()
  #lastTyping = 0
  #notifyQueued = false

  constructor(client: ImClient, me: Profile) {
    this.client = client
    this.me = me
    this.status = client.status
    this.users.set(me.id, me)
    this.#unsubscribe.push(
      client.on("message", (entry) => this.#onEntry(entry)),
      client.on("status", (status) => {
        this.status = status
        // (Re)connected and synced: contacts, requests, groups and unread counts may have changed meanwhile.
        if (status === "synced") this.#soon("lists", () => this.refreshLists(), 0)
        this.#changed()
      }),
      on(document, "visibilitychange", () => this.#markRead()),
      client.on("typing", (signal) => {
        const key = signal.group_id !== undefined ? groupKey(signal.group_id) : userKey(signal.sender_id)
        this.typing.set(key, { user: signal.sender_id, until: Date.now() + TYPING_SHOWN_MS })
        this.#name(signal.sender_id)
        // Each signal shows it for a few seconds more.
        clearTimeout(this.#timers.get(`typing:${key}`))
        this.#timers.set(`typing:${key}`, setTimeout(() => {
          this.#timers.delete(`typing:${key}`)
          this.typing.delete(key)
          this.#changed()
        }, TYPING_SHOWN_MS))
        this.#changed()
      })
    )
  }

  /** Connects and syncs the inbox (the lists load once synced); resolves once synced. */
  start(): Promise<void> {
    return this.client.connect()
  }

  stop(): void {
    for (const unsubscribe of this.#unsubscribe) unsubscribe()
    for (const timer of this.#timers.values()) clearTimeout(timer)
    this.client.close()
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  // Reading ---------------------------------------------------------------------------------

  /** A user's display name; unknown users are looked up once and shown when known. */
  nameOf = (userId: string): string => {
    if (userId === this.me.id) return "You"
    return this.#name(userId)
  }

  titleOf(key: ConversationKey): string {
    const { group_id, user_id } = targetOf(key) as { group_id?: string; user_id?: string }
    if (group_id !== undefined) return this.groups.get(group_id)?.name ?? "Group"
    return this.#name(user_id!)
  }

  unreadOf(key: ConversationKey): number {
    if (key === this.open) return 0
    return this.summaries.get(key)?.unread ?? 0
  }

  /** A group this user is (still) in. */
  isMemberOf(key: ConversationKey): boolean {
    return !key.startsWith("g:") || this.groups.has(key.slice(2))
  }

  typingIn(key: ConversationKey): string | undefined {
    const typing = this.typing.get(key)
    return typing !== undefined && typing.until > Date.now() ? typing.user : undefined
  }

  // Conversations ---------------------------------------------------------------------------

  openConversation(key: ConversationKey | undefined): void {
    this.open = key
    this.error = undefined
    if (key?.startsWith("g:")) void this.loadMembers(key.slice(2))
    this.#markRead()
    this.#changed()
  }

  sendText(text: string): void {
    const key = this.open
    if (key === undefined || text.trim() === "") return
    const send: PendingFile = { local_id: newLocalId(), key, content_type: "text", content: text, create_time: Date.now(), state: "sending" }
    this.pending.set(send.local_id, send)
    this.#dispatch(send)
  }

  /** Uploads a file (an image goes as an image, with its size), then sends the reference. */
  sendFile(file: File): void {
    const key = this.open
    if (key === undefined) return
    const { content_type } = fileKindOf(file.type)
    const send: PendingFile = {
      local_id: newLocalId(),
      key,
      content_type,
      content: "",
      create_time: Date.now(),
      state: "uploading",
      file,
      file_name: file.name,
      ...(content_type === "image" ? { preview: URL.createObjectURL(file) } : {})
    }
    this.pending.set(send.local_id, send)
    this.#dispatch(send)
  }

  /** Sends a failed message again, with the same `local_id` (the server stores it once). */
  retry(localId: string): void {
    const send = this.pending.get(localId)
    if (send?.state === "failed") this.#dispatch(send)
  }

  async recall(serverId: string): Promise<void> {
    await this.#act(() => this.client.recall(serverId))
  }

  /** Tells the peer or the group that the user is typing, at most every two seconds. */
  typed(): void {
    const key = this.open
    if (key === undefined || Date.now() - this.#lastTyping < TYPING_REPEAT_MS) return
    this.#lastTyping = Date.now()
    const target = targetOf(key)
    this.client.typing("group_id" in target ? { group_id: target.group_id } : { receiver_id: target.user_id })
  }

  #dispatch(send: PendingFile): void {
    this.#update(send.local_id, { state: send.content === "" ? "uploading" : "sending" })
    const run = async () => {
      let content = send.content
      if (content === "" && send.file !== undefined) {
        const file = send.file
        const { content_type, mime } = fileKindOf(file.type)
        const reference = await this.client.uploadFile(file, file.name, mime)
        const size = content_type === "image" ? await imageSize(file) : undefined
        content = JSON.stringify({ ...reference, ...size })
        this.#update(send.local_id, { content, state: "sending" })
      }
      const target = targetOf(send.key)
      await this.client.send({
        ...("group_id" in target ? { group_id: target.group_id } : { receiver_id: target.user_id }),
        content_type: send.content_type,
        content,
        local_id: send.local_id
      })
      this.#update(send.local_id, { state: "sent" })
    }
    run().catch((error: unknown) => this.#update(send.local_id, { state: "failed", error: describeError(error) }))
  }

  #update(localId: string, change: Partial<PendingFile>): void {
    const send = this.pending.get(localId)
    if (send === undefined) return
    const { error: _, ...rest } = send
    this.pending.set(localId, { ...rest, ...change } as PendingFile)
    this.#changed()
  }

  /** A download URL of a file, reused until shortly before it expires. */
  async fileUrl(fileId: string): Promise<string> {
    const cached = this.#fileUrls.get(fileId)
    if (cached !== undefined && cached.expires > Date.now() + 1_000) return cached.url
    const info = await this.client.fileInfo(fileId)
    this.#fileUrls.set(fileId, { url: info.download_url, expires: info.expires_at })
    return info.download_url
  }

  // Contacts and friend requests -----------------------------------------------------------

  /** Asks the user with this account to be friends. */
  async addFriend(account: string): Promise<boolean> {
    return this.#act(async () => {
      const user = await this.client.findUser({ account: account.trim() })
      if (user === undefined) throw new Error(`No user with the account “${account.trim()}”`)
      this.users.set(user.id, user)
      try {
        await this.client.sendFriendRequest(user.id)
      } catch (error) {
        // They asked first: answering theirs is what the user means.
        if (!(error instanceof HttpError && error.tag === "FriendRequestPending")) throw error
        const theirs = (await this.client.friendRequests()).incoming.find((request) => request.from_id === user.id)
        if (theirs === undefined) throw error
        await this.client.acceptFriendRequest(theirs.id)
      }
      await this.refreshFriends()
    })
  }

  async answerRequest(requestId: string, accept: boolean): Promise<void> {
    await this.#act(async () => {
      await (accept ? this.client.acceptFriendRequest(requestId) : this.client.rejectFriendRequest(requestId))
      await this.refreshFriends()
    })
  }

  async refreshFriends(): Promise<void> {
    const [contacts, requests] = await Promise.all([this.client.contacts(0), this.client.friendRequests()])
    this.friends = contacts.friends.filter((c) => c.state === "friend" && c.removed !== true).map((c) => c.user_id)
    this.requests = requests
    for (const id of [...this.friends, ...requests.incoming.map((r) => r.from_id), ...requests.outgoing.map((r) => r.to_id)]) {
      this.#name(id)
    }
    this.#changed()
  }

  // Groups ------------------------------------------------------------------------------------

  async createGroup(name: string, memberIds: ReadonlyArray<string>): Promise<boolean> {
    return this.#act(async () => {
      const group = await this.client.createGroup(name.trim(), memberIds)
      this.groups.set(group.id, group)
      this.openConversation(groupKey(group.id))
    })
  }

  async loadMembers(groupId: string): Promise<void> {
    try {
      this.members.set(groupId, await this.client.groupMembers(groupId))
      for (const member of this.members.get(groupId)!) this.#name(member.user_id)
      this.#changed()
    } catch {
      this.members.delete(groupId) // not a member (any more)
    }
  }

  async invite(groupId: string, userIds: ReadonlyArray<string>): Promise<void> {
    await this.#act(async () => {
      await this.client.inviteToGroup(groupId, userIds)
      await this.loadMembers(groupId)
    })
  }

  async removeMember(groupId: string, userId: string): Promise<void> {
    await this.#act(async () => {
      await this.client.removeGroupMember(groupId, userId)
      await this.loadMembers(groupId)
    })
  }

  async leaveGroup(groupId: string): Promise<void> {
    await this.#act(async () => {
      await this.client.leaveGroup(groupId)
      this.groups.delete(groupId)
      this.members.delete(groupId)
    })
  }

  async refreshGroups(): Promise<void> {
    const groups = await this.client.groups()
    this.groups.clear()
    for (const group of groups) this.groups.set(group.id, group)
    for (const groupId of [...this.members.keys()]) {
      if (this.groups.has(groupId)) void this.loadMembers(groupId)
      else this.members.delete(groupId)
    }
    this.#changed()
  }

  async refreshLists(): Promise<void> {
    await Promise.all([this.refreshFriends(), this.refreshGroups(), this.refreshSummaries()])
  }

  async refreshSummaries(): Promise<void> {
    const summaries = await this.client.conversations()
    this.summaries.clear()
    for (const summary of summaries) this.summaries.set(summary.conversation, summary)
    this.#changed()
  }

  // Inbox -------------------------------------------------------------------------------------

  #onEntry(entry: InboxEntry): void {
    // Usually the newest: insert from the end.
    let at = this.entries.length
    while (at > 0 && this.entries[at - 1]!.seq > entry.seq) at--
    this.entries = [...this.entries.slice(0, at), entry, ...this.entries.slice(at)]
    const message = entry.message
    if (message.kind === "notice") {
      if (friendEventOf(message) !== undefined) this.#soon("friends", () => this.refreshFriends(), 100)
      const event = groupEventOf(message)
      if (event !== undefined) {
        this.#soon("groups", () => this.refreshGroups(), 100)
        if (event.type === "member_joined") event.user_ids.forEach((id) => this.#name(id))
      }
    } else {
      // A message ends its sender's "typing…".
      const key = conversationOf(message, this.me.id)
      if (key !== undefined && this.typing.get(key)?.user === message.sender_id) this.typing.delete(key)
      this.#name(message.sender_id)
      if (message.receiver_id !== undefined) this.#name(message.receiver_id)
      this.#soon("summaries", () => this.refreshSummaries(), 150)
      this.#soon("read", () => this.#markRead(), 50)
    }
    this.#changed()
  }

  /** The open conversation is read up to its newest entry, once per new entry from others. */
  #markRead(): void {
    const key = this.open
    if (key === undefined || document.visibilityState !== "visible") return
    const marked = this.#markedRead.get(key) ?? this.summaries.get(key)?.read_seq ?? 0
    if (!hasUnreadAfter(key, this.entries, this.me.id, marked)) return
    const seq = lastSeqOf(key, this.entries, this.me.id)
    this.#markedRead.set(key, seq)
    this.client.markRead(targetOf(key), seq).then(
      () => this.refreshSummaries(),
      () => this.#markedRead.delete(key)
    ).catch(() => {})
  }

  // Plumbing ----------------------------------------------------------------------------------

  #name(userId: string): string {
    const user = this.users.get(userId)
    if (user !== undefined) return user.name
    if (!this.#asked.has(userId)) {
      this.#asked.add(userId)
      this.client.user(userId).then((found) => {
        this.users.set(userId, found)
        this.#changed()
      }, () => {})
    }
    return "…"
  }

  async #act(action: () => Promise<unknown>): Promise<boolean> {
    this.error = undefined
    this.#changed()
    try {
      await action()
      return true
    } catch (error) {
      this.error = describeError(error)
      return false
    } finally {
      this.#changed()
    }
  }

  /** Runs `task` once after `ms`, however often it is asked for meanwhile. */
  #soon(name: string, task: () => unknown, ms: number): void {
    if (this.#timers.has(name)) return
    this.#timers.set(name, setTimeout(() => {
      this.#timers.delete(name)
      Promise.resolve().then(task).catch(() => {})
    }, ms))
  }

  /** Listeners run once per burst of changes (a sync stores many entries at once). */
  #changed(): void {
    if (this.#notifyQueued) return
    this.#notifyQueued = true
    queueMicrotask(() => {
      this.#notifyQueued = false
      for (const listener of this.#listeners) listener()
    })
  }
}

const on = (target: EventTarget, type: string, listener: () => void): (() => void) => {
  target.addEventListener(type, listener)
  return () => target.removeEventListener(type, listener)
}

const imageSize = (file: File): Promise<{ width: number; height: number } | undefined> =>
  createImageBitmap(file).then(
    (bitmap) => {
      const size = { width: bitmap.width, height: bitmap.height }
      bitmap.close()
      return size
    },
    () => undefined
  )

/** A readable reason for a failed action or send. */
export const describeError = (error: unknown): string => {
  if (error instanceof SendError) {
    switch (error.code) {
      case "blocked":
        return "Not delivered: you cannot message this user"
      case "not_group_member":
        return "Not delivered: you are not a member of this group"
      case "receiver_not_found":
        return "Not delivered: no such user"
      case "connection_lost":
      case "closed":
        return "Not delivered: the connection was lost"
      default:
        return `Not delivered: ${error.message}`
    }
  }
  if (error instanceof HttpError) {
    switch (error.tag) {
      case "AlreadyFriends":
        return "You are friends already"
      case "CannotFriendSelf":
        return "That is your own account"
      case "FileTooLarge":
        return "The file is too large"
      default:
        return error.message
    }
  }
  return error instanceof Error ? error.message : String(error)
}
