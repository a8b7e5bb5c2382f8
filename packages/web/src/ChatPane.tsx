import type { GroupMember } from "@im/client/Groups"
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks"
import type { ChatStore } from "./ChatStore.ts"
import { type ChatItem, type ConversationKey, describeEvent, factsOf, fileOf, formatSize, itemsOf } from "./Model.ts"
import { Avatar, FileIcon, formatTime, PaperclipIcon } from "./Widgets.tsx"

export const ChatPane = (props: { readonly store: ChatStore; readonly conversation: ConversationKey }) => {
  const { store, conversation } = props
  const isGroup = conversation.startsWith("g:")
  const groupId = isGroup ? conversation.slice(2) : undefined
  const [showMembers, setShowMembers] = useState(false)
  const items = itemsOf(conversation, store.entries, [...store.pending.values()], store.me.id, factsOf(store.entries))
  const member = store.isMemberOf(conversation)
  const typing = store.typingIn(conversation)
  const members = groupId === undefined ? undefined : store.members.get(groupId)
  const title = store.titleOf(conversation)

  return (
    <section class="pane" data-testid="chat" data-key={conversation}>
      <header class="pane-header">
        <Avatar id={conversation.slice(2)} name={title} group={isGroup} />
        <div class="grow">
          <h2 data-testid="chat-title">{title}</h2>
          <small class="muted" data-testid="chat-subtitle">
            {typing !== undefined
              ? `${store.nameOf(typing)} is typing…`
              : isGroup
              ? member ? plural(members?.length, "member") : "You are not a member"
              : `@${store.users.get(conversation.slice(2))?.account ?? ""}`}
          </small>
        </div>
        {isGroup && member && (
          <button class={showMembers ? "active" : ""} data-testid="group-members-toggle" onClick={() => setShowMembers(!showMembers)}>
            Members
          </button>
        )}
      </header>
      <div class="pane-body">
        <MessageList store={store} items={items} isGroup={isGroup} />
        {showMembers && groupId !== undefined && members !== undefined && (
          <MembersPanel store={store} groupId={groupId} members={members} />
        )}
      </div>
      {store.error !== undefined && <p class="error bar" data-testid="chat-error">{store.error}</p>}
      {member
        ? <Composer store={store} />
        : <p class="muted bar" data-testid="not-member">You left this group or were removed from it.</p>}
    </section>
  )
}

const MessageList = (props: { readonly store: ChatStore; readonly items: ReadonlyArray<ChatItem>; readonly isGroup: boolean }) => {
  const list = useRef<HTMLDivElement>(null)
  const count = props.items.length
  // Follow new messages, unless the user scrolled up to read older ones.
  const pinned = useRef(true)
  useLayoutEffect(() => {
    const element = list.current
    if (element !== null && pinned.current) element.scrollTop = element.scrollHeight
  }, [count])
  return (
    <div class="messages" ref={list} data-testid="messages"
      onScroll={(e) => {
        const element = e.currentTarget
        pinned.current = element.scrollHeight - element.scrollTop - element.clientHeight < 40
      }}>
      {count === 0 && <p class="muted center">No messages yet: say hello.</p>}
      {props.items.map((item) =>
        item.type === "event"
          ? <div key={item.id} class="event" data-testid="group-event">{describeEvent(item.event, item.sender_id, props.store.nameOf)}</div>
          : <MessageView key={item.id} store={props.store} item={item} isGroup={props.isGroup} />
      )}
    </div>
  )
}

const STATE_TEXT = { sending: "Sending…", sent: "✓ Sent", read: "✓✓ Read", failed: "Not sent" } as const

const MessageView = (props: { readonly store: ChatStore; readonly item: Extract<ChatItem, { type: "message" }>; readonly isGroup: boolean }) => {
  const { item, store } = props
  return (
    <div class={`message ${item.mine ? "mine" : "theirs"} ${item.state ?? ""}`} data-testid="message" data-id={item.id}
      data-state={item.state ?? "received"} data-sender={item.sender_id}>
      {props.isGroup && !item.mine && <div class="sender">{store.nameOf(item.sender_id)}</div>}
      <div class={`bubble ${item.content_type === "image" && !item.recalled ? "media" : ""}`}>
        {item.recalled ? <em class="muted" data-testid="message-recalled">Message recalled</em> : <Content store={store} item={item} />}
      </div>
      <div class="meta">
        <time>{formatTime(item.time)}</time>
        {item.state !== undefined && (
          <span class="state" data-testid="message-state" title={item.error ?? ""}>
            {item.state === "read" && props.isGroup ? `✓✓ Read by ${item.read_by?.length ?? 0}` : STATE_TEXT[item.state]}
          </span>
        )}
        {item.state === "failed" && (
          <button class="link danger" data-testid="retry-send" title={item.error} onClick={() => store.retry(item.id)}>Retry</button>
        )}
        {item.mine && item.server_id !== undefined && !item.recalled && (
          <button class="link quiet" data-testid="recall" onClick={() => store.recall(item.server_id!)}>Recall</button>
        )}
      </div>
      {item.state === "failed" && item.error !== undefined && <div class="failure" data-testid="send-error">{item.error}</div>}
    </div>
  )
}

const Content = (props: { readonly store: ChatStore; readonly item: Extract<ChatItem, { type: "message" }> }) => {
  const { item, store } = props
  if (item.content_type === "text") return <span class="text" data-testid="message-text">{item.content}</span>
  const file = fileOf(item.content)
  if (item.content_type === "image") {
    if (file === undefined) return <img class="image" src={item.preview} alt={item.file_name ?? "image"} data-testid="message-image" />
    return <RemoteImage store={store} fileId={file.file_id} name={file.name} preview={item.preview} />
  }
  if (file === undefined) return <span class="file muted" data-testid="message-file-uploading">{item.file_name} (uploading…)</span>
  return <FileLink store={store} fileId={file.file_id} name={file.name} size={file.size} />
}

/** A URL to download a file, asked for once (the store reuses it until it expires). */
const useFileUrl = (store: ChatStore, fileId: string, attempt: number): string | undefined => {
  const [url, setUrl] = useState<string>()
  useEffect(() => {
    let live = true
    store.fileUrl(fileId).then((found) => live && setUrl(found), () => {})
    return () => void (live = false)
  }, [fileId, attempt])
  return url
}

const RemoteImage = (props: { readonly store: ChatStore; readonly fileId: string; readonly name: string; readonly preview: string | undefined }) => {
  const [attempt, setAttempt] = useState(0)
  const url = useFileUrl(props.store, props.fileId, attempt)
  const src = props.preview ?? url
  return src === undefined
    ? <span class="image placeholder">Loading image…</span>
    : (
      <a {...(url === undefined ? {} : { href: url })} target="_blank" rel="noopener">
        <img class="image" src={src} alt={props.name} data-testid="message-image"
          // An expired URL: ask for a fresh one, once.
          onError={() => attempt === 0 && props.preview === undefined && setAttempt(1)} />
      </a>
    )
}

const FileLink = (props: { readonly store: ChatStore; readonly fileId: string; readonly name: string; readonly size: number }) => {
  const url = useFileUrl(props.store, props.fileId, 0)
  return (
    <a class="file" {...(url === undefined ? {} : { href: url })} download={props.name} target="_blank" rel="noopener" data-testid="message-file"
      onClick={async (event) => {
        // The URL lives minutes: open a fresh one.
        event.preventDefault()
        window.open(await props.store.fileUrl(props.fileId), "_blank", "noopener")
      }}>
      <span class="file-icon"><FileIcon /></span>
      <span class="grow clip">
        <span class="file-name" data-testid="message-file-name">{props.name}</span>
        <small class="muted">{formatSize(props.size)}</small>
      </span>
    </a>
  )
}

const Composer = (props: { readonly store: ChatStore }) => {
  const { store } = props
  const [text, setText] = useState("")
  const input = useRef<HTMLTextAreaElement>(null)
  useEffect(() => input.current?.focus(), [])
  const send = (event?: Event) => {
    event?.preventDefault()
    if (text.trim() === "") return
    store.sendText(text)
    setText("")
  }
  return (
    <form class="composer" onSubmit={send}>
      <label class="attach" title="Send a file or an image">
        <PaperclipIcon />
        <input type="file" data-testid="composer-file" onChange={(e) => {
          const files = e.currentTarget.files
          for (const file of files ?? []) store.sendFile(file)
          e.currentTarget.value = ""
        }} />
      </label>
      <textarea ref={input} data-testid="composer-input" rows={1} placeholder="Write a message" value={text} maxLength={16_384}
        onInput={(e) => {
          setText(e.currentTarget.value)
          store.typed()
        }}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey) send(e)
        }} />
      <button class="primary" type="submit" data-testid="composer-send" disabled={text.trim() === ""}>Send</button>
    </form>
  )
}

const MembersPanel = (props: { readonly store: ChatStore; readonly groupId: string; readonly members: ReadonlyArray<GroupMember> }) => {
  const { store, groupId, members } = props
  const myRole = members.find((m) => m.user_id === store.me.id)?.role
  const invitable = store.friends.filter((id) => !members.some((m) => m.user_id === id))
  const [pick, setPick] = useState("")
  const canRemove = (member: GroupMember) =>
    member.user_id !== store.me.id && (myRole === "owner" || (myRole === "admin" && member.role === "member"))
  return (
    <aside class="members" data-testid="group-members">
      <h3>Members</h3>
      {members.map((member) => (
        <div key={member.user_id} class="member" data-testid="group-member" data-user-id={member.user_id}>
          <Avatar id={member.user_id} name={member.user_id === store.me.id ? store.me.name : store.nameOf(member.user_id)} />
          <span class="grow clip">{store.nameOf(member.user_id)}</span>
          {member.role !== "member" && <small class="role">{member.role}</small>}
          {canRemove(member) && (
            <button class="link danger" data-testid="remove-member" onClick={() => store.removeMember(groupId, member.user_id)}>Remove</button>
          )}
        </div>
      ))}
      {invitable.length > 0 && (
        <form class="invite" onSubmit={(e) => {
          e.preventDefault()
          const chosen = pick || invitable[0]!
          void store.invite(groupId, [chosen])
          setPick("")
        }}>
          <select data-testid="invite-select" value={pick || invitable[0]} onChange={(e) => setPick(e.currentTarget.value)}>
            {invitable.map((id) => <option key={id} value={id}>{store.nameOf(id)}</option>)}
          </select>
          <button type="submit" data-testid="invite-submit">Invite</button>
        </form>
      )}
      {myRole !== undefined && myRole !== "owner" && (
        <button class="danger-button" data-testid="leave-group" onClick={() => store.leaveGroup(groupId)}>Leave group</button>
      )}
    </aside>
  )
}

const plural = (count: number | undefined, noun: string): string =>
  count === undefined ? `… ${noun}s` : `${count} ${noun}${count === 1 ? "" : "s"}`
