import { useState } from "preact/hooks"
import { describeError } from "./ChatStore.ts"

export interface LoginForm {
  readonly account: string
  readonly password: string
  /** Set when registering. */
  readonly name?: string
}

export const Login = (props: { readonly onSubmit: (form: LoginForm) => Promise<void>; readonly notice?: string }) => {
  const [mode, setMode] = useState<"login" | "register">("login")
  const [account, setAccount] = useState("")
  const [password, setPassword] = useState("")
  const [name, setName] = useState("")
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState(props.notice)

  const submit = async (event: Event) => {
    event.preventDefault()
    setBusy(true)
    setError(undefined)
    try {
      await props.onSubmit({ account, password, ...(mode === "register" ? { name: name || account } : {}) })
    } catch (failure) {
      setError(describeError(failure))
      setBusy(false)
    }
  }

  return (
    <div class="login">
      <form class="card" onSubmit={submit} data-testid="login-form">
        <h1>IM</h1>
        <p class="muted">{mode === "login" ? "Log in to chat" : "Create an account"}</p>
        <label>
          Account
          <input data-testid="login-account" value={account} autocomplete="username" required minLength={3} maxLength={32}
            pattern="[A-Za-z0-9._\-]+" onInput={(e) => setAccount(e.currentTarget.value)} />
        </label>
        {mode === "register" && (
          <label>
            Display name
            <input data-testid="login-name" value={name} maxLength={64} placeholder={account}
              onInput={(e) => setName(e.currentTarget.value)} />
          </label>
        )}
        <label>
          Password
          <input data-testid="login-password" type="password" value={password} required minLength={8}
            autocomplete={mode === "login" ? "current-password" : "new-password"}
            onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        {error !== undefined && <p class="error" data-testid="login-error">{error}</p>}
        <button class="primary" type="submit" disabled={busy} data-testid="login-submit">
          {mode === "login" ? "Log in" : "Register"}
        </button>
        <button type="button" class="link" data-testid="login-switch"
          onClick={() => setMode(mode === "login" ? "register" : "login")}>
          {mode === "login" ? "No account? Register" : "Have an account? Log in"}
        </button>
      </form>
    </div>
  )
}
