import { ConnectError, HttpError, ImClient } from "@im/client/Client"
import { useEffect, useState } from "preact/hooks"
import { ChatPane } from "./ChatPane.tsx"
import { ChatStore, describeError } from "./ChatStore.ts"
import { useStore } from "./hooks.ts"
import { Login } from "./Login.tsx"
import { clearSession, keepSession, loadSession, newLocalId, saveSession } from "./Session.ts"
import { Sidebar } from "./Sidebar.tsx"

/** The API is the server that served this page (`npm run dev` proxies it). */
const baseUrl = location.origin

type Screen =
  | { readonly name: "resuming" }
  | { readonly name: "login"; readonly error?: string }
  | { readonly name: "chat"; readonly store: ChatStore }

export const App = () => {
  const [screen, setScreen] = useState<Screen>(() => (loadSession() ? { name: "resuming" } : { name: "login" }))

  const signOut = (store: ChatStore | undefined, error?: string) => {
    store?.stop()
    clearSession()
    setScreen({ name: "login", ...(error === undefined ? {} : { error }) })
  }

  /** Shows the chat for a client with tokens, and connects it (the inbox syncs in view). */
  const begin = async (client: ImClient, wsUrl: string | undefined) => {
    keepSession(client, () => wsUrl)
    const store = new ChatStore(client, await client.me())
    client.on("status", (status) => {
      if (status === "unauthorized") signOut(store, "Your session ended: log in again")
    })
    setScreen({ name: "chat", store })
    store.start().catch((error: unknown) => {
      if (error instanceof ConnectError && error.reason === "closed") return
      signOut(store, describeError(error))
    })
  }

  // A saved session resumes: the SDK refreshes the token if it has to.
  useEffect(() => {
    const saved = loadSession()
    if (saved === undefined) return
    const client = new ImClient({
      baseUrl,
      newLocalId,
      token: saved.token,
      refreshToken: saved.refreshToken,
      tokenExpiresAt: saved.tokenExpiresAt,
      ...(saved.wsUrl === undefined ? {} : { wsUrl: saved.wsUrl })
    })
    begin(client, saved.wsUrl).catch((error: unknown) => {
      // A refused session is over; a server out of reach is not: a reload tries again.
      if (error instanceof HttpError && error.status === 401) return signOut(undefined, "Your session ended: log in again")
      setScreen({ name: "login", error: `Cannot reach the server (${describeError(error)}): reload to try again` })
    })
  }, [])

  const login = async (form: { account: string; password: string; name?: string }) => {
    const client = new ImClient({ baseUrl, newLocalId })
    if (form.name !== undefined) await client.register({ account: form.account, password: form.password, name: form.name })
    const answer = await client.login(form.account, form.password)
    saveSession({
      token: answer.token,
      refreshToken: answer.refresh_token,
      tokenExpiresAt: answer.expires_at,
      ...(answer.ws_url === undefined ? {} : { wsUrl: answer.ws_url })
    })
    await begin(client, answer.ws_url)
  }

  switch (screen.name) {
    case "resuming":
      return <div class="splash" data-testid="resuming">Connecting…</div>
    case "login":
      return <Login onSubmit={login} {...(screen.error === undefined ? {} : { notice: screen.error })} />
    case "chat":
      return <Chat store={screen.store} onLogout={() => {
        screen.store.client.logout().catch(() => {})
        signOut(screen.store)
      }} />
  }
}

const Chat = (props: { readonly store: ChatStore; readonly onLogout: () => void }) => {
  const store = useStore(props.store)
  return (
    <div class="app">
      <Sidebar store={store} onLogout={props.onLogout} />
      <main class="main">
        {store.open === undefined
          ? (
            <div class="empty" data-testid="no-conversation">
              <p>Pick a conversation, or add a friend under <strong>Contacts</strong>.</p>
            </div>
          )
          : <ChatPane key={store.open} store={store} conversation={store.open} />}
      </main>
    </div>
  )
}
