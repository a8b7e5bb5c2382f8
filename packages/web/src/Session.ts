import { type ImClient } from "@im/client/Client"

/** What a reload needs to resume without logging in again (kept in localStorage). */
export interface SavedSession {
  readonly token: string
  readonly refreshToken: string
  readonly tokenExpiresAt: number
  /** The gateway login named (the cluster); absent in standalone, where it is this server's `/ws`. */
  readonly wsUrl?: string
}

const KEY = "im.session"

export const loadSession = (): SavedSession | undefined => {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) ?? "null") as Partial<SavedSession> | null
    return typeof saved?.token === "string" && typeof saved.refreshToken === "string" && typeof saved.tokenExpiresAt === "number"
      ? (saved as SavedSession)
      : undefined
  } catch {
    return undefined
  }
}

export const saveSession = (session: SavedSession): void => localStorage.setItem(KEY, JSON.stringify(session))

export const clearSession = (): void => localStorage.removeItem(KEY)

/** Keeps the client's tokens in localStorage as they change (login, refresh); drops them at logout. */
export const keepSession = (client: ImClient, wsUrlOf: () => string | undefined): (() => void) =>
  client.on("tokens", (tokens) => {
    if (tokens === undefined) return clearSession()
    const wsUrl = wsUrlOf()
    saveSession({
      token: tokens.token,
      refreshToken: tokens.refresh_token,
      tokenExpiresAt: tokens.expires_at,
      ...(wsUrl === undefined ? {} : { wsUrl })
    })
  })

/** A `local_id`: a UUID where the page may make one (a secure context), random hex otherwise. */
export const newLocalId = (): string => {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID()
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("")
}
