import { useState } from "preact/hooks"
import type { ChatStore } from "./ChatStore.ts"
import { conversationsOf, type ConversationKey, groupKey, previewOf, userKey } from "./Model.ts"
import { Avatar, formatTime } from "./Widgets.tsx"

const STATUS_TEXT: Record<string, string> = {
  connecting: "Connecting…",
  open: "Connecting…",
  syncing: "Syncing…",
  synced: "Online",
  closed: "Offline, reconnecting…",
  unauthorized: "Logged out"
}

export const Sidebar = (props: { readonly store: ChatStore; readonly onLogout: () => void }) => {
  const { store } = props
  const [tab, setTab] = useState<"chats" | "contacts">("chats")
  const rows = conversationsOf(store.entries, [...store.pending.values()], store.me.id, [...store.groups.keys()].map(groupKey))
  const unread = rows.reduce((sum, row) => sum + store.unreadOf(row.key), 0)
  const incoming = store.requests.incoming.length

  return (
    <aside class="sidebar">
      <header class="me">
        <Avatar id={store.me.id} name={store.me.name} />
        <div class="grow">
          <strong data-testid="me-name">{store.me.name}</strong>
          <small class={`status status-${store.status}`} data-testid="connection-status" data-status={store.status}>
            {STATUS_TEXT[store.status]}
          </small>
        </div>
        <button class="link" onClick={props.onLogout} data-testid="logout">Log out</button>
      </header>
      <nav class="tabs">
        <button class={tab === "chats" ? "active" : ""} onClick={() => setTab("chats")} data-testid="tab-chats">
          Chats {unread > 0 && <span class="badge">{unread}</span>}
        </button>
        <button class={tab === "contacts" ? "active" : ""} onClick={() => setTab("contacts")} data-testid="tab-contacts">
          Contacts {incoming > 0 && <span class="badge" data-testid="requests-badge">{incoming}</span>}
        </button>
      </nav>
      {tab === "chats"
        ? (
          <div class="list" data-testid="conversations">
            <NewGroup store={store} />
            {rows.length === 0 && <p class="muted pad">No conversations yet.</p>}
            {rows.map((row) => {
              const count = store.unreadOf(row.key)
              const title = store.titleOf(row.key)
              return (
                <button key={row.key} class={`row ${row.key === store.open ? "selected" : ""}`} data-testid="conversation"
                  data-key={row.key} data-title={title} onClick={() => store.openConversation(row.key)}>
                  <Avatar id={row.key.slice(2)} name={title} group={row.key.startsWith("g:")} />
                  <div class="grow clip">
                    <div class="row-top">
                      <span class="row-title" data-testid="conversation-title">{title}</span>
                      {row.time > 0 && <time>{formatTime(row.time)}</time>}
                    </div>
                    <div class="row-preview">{store.typingIn(row.key) ? "typing…" : previewOf(row.last, store.nameOf)}</div>
                  </div>
                  {count > 0 && <span class="badge" data-testid="conversation-unread">{count}</span>}
                </button>
              )
            })}
          </div>
        )
        : <Contacts store={store} open={(key) => { store.openConversation(key); setTab("chats") }} />}
    </aside>
  )
}

const Contacts = (props: { readonly store: ChatStore; readonly open: (key: ConversationKey) => void }) => {
  const { store } = props
  const [account, setAccount] = useState("")
  const add = async (event: Event) => {
    event.preventDefault()
    if (await store.addFriend(account)) setAccount("")
  }
  return (
    <div class="list" data-testid="contacts">
      <form class="inline-form" onSubmit={add}>
        <input data-testid="add-friend-account" placeholder="Add a friend by account" value={account} required
          onInput={(e) => setAccount(e.currentTarget.value)} />
        <button class="primary" type="submit" data-testid="add-friend-submit">Add</button>
      </form>
      {store.error !== undefined && store.open === undefined && <p class="error pad" data-testid="contacts-error">{store.error}</p>}
      {store.requests.incoming.length > 0 && <h3>Friend requests</h3>}
      {store.requests.incoming.map((request) => (
        <div key={request.id} class="row" data-testid="friend-request" data-user-id={request.from_id}>
          <Avatar id={request.from_id} name={store.nameOf(request.from_id)} />
          <div class="grow clip">
            <div class="row-title">{store.nameOf(request.from_id)}</div>
            <div class="row-preview">{request.message || "wants to be friends"}</div>
          </div>
          <button class="primary small" data-testid="accept-request" onClick={() => store.answerRequest(request.id, true)}>Accept</button>
          <button class="small" data-testid="reject-request" onClick={() => store.answerRequest(request.id, false)}>Decline</button>
        </div>
      ))}
      {store.requests.outgoing.length > 0 && <h3>Sent requests</h3>}
      {store.requests.outgoing.map((request) => (
        <div key={request.id} class="row" data-testid="outgoing-request" data-user-id={request.to_id}>
          <Avatar id={request.to_id} name={store.nameOf(request.to_id)} />
          <div class="grow clip">
            <div class="row-title">{store.nameOf(request.to_id)}</div>
            <div class="row-preview">waiting for an answer</div>
          </div>
        </div>
      ))}
      <h3>Friends</h3>
      {store.friends.length === 0 && <p class="muted pad">No friends yet: add one by their account.</p>}
      {store.friends.map((id) => (
        <button key={id} class="row" data-testid="contact" data-user-id={id} onClick={() => props.open(userKey(id))}>
          <Avatar id={id} name={store.nameOf(id)} />
          <div class="grow clip">
            <div class="row-title">{store.nameOf(id)}</div>
            <div class="row-preview">@{store.users.get(id)?.account ?? ""}</div>
          </div>
        </button>
      ))}
    </div>
  )
}

const NewGroup = (props: { readonly store: ChatStore }) => {
  const { store } = props
  const [open, setOpen] = useState(false)
  const [name, setName] = useState("")
  const [picked, setPicked] = useState<ReadonlyArray<string>>([])
  if (!open) {
    return <button class="new-group" data-testid="new-group" onClick={() => setOpen(true)}>+ New group</button>
  }
  const create = async (event: Event) => {
    event.preventDefault()
    if (await store.createGroup(name, picked)) {
      setOpen(false)
      setName("")
      setPicked([])
    }
  }
  return (
    <form class="group-form" onSubmit={create} data-testid="new-group-form">
      <input data-testid="group-name" placeholder="Group name" value={name} required maxLength={64}
        onInput={(e) => setName(e.currentTarget.value)} />
      {store.friends.length === 0 && <p class="muted">Add friends to invite them.</p>}
      {store.friends.map((id) => (
        <label key={id} class="check">
          <input type="checkbox" data-testid="group-pick" data-user-id={id} checked={picked.includes(id)}
            onChange={(e) => setPicked(e.currentTarget.checked ? [...picked, id] : picked.filter((p) => p !== id))} />
          {store.nameOf(id)}
        </label>
      ))}
      <div class="buttons">
        <button type="button" onClick={() => setOpen(false)}>Cancel</button>
        <button class="primary" type="submit" data-testid="create-group">Create</button>
      </div>
    </form>
  )
}
