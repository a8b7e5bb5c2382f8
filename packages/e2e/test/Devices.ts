import { type Fetch, ImClient } from "@im/client/Client"
import type { InboxEntry } from "@im/client/Wire"
import { afterEach } from "vitest"
import { makeUser, type TestUser } from "./Raw.ts"
import type { Target } from "./Target.ts"

/** An SDK client of a test user, with what it requested over HTTP and the entries it received. */
export interface Device {
  readonly client: ImClient
  readonly received: Array<InboxEntry>
  readonly requests: Array<string>
  /** The gateway login named (a cluster), if any. */
  readonly wsUrl: string | undefined
}

/**
 * `device(user)` logs an SDK client in (so it connects to the gateway login names, in a
 * cluster) and, unless `connect: false`, connects it; `maxSendAttempts` as the SDK's. Every
 * device is closed after each test.
 */
export const devices = (target: () => Target) => {
  const open: Array<ImClient> = []
  afterEach(() => {
    for (const client of open.splice(0)) client.close()
  })
  return async (user: TestUser, options: { readonly connect?: boolean; readonly maxSendAttempts?: number } = {}): Promise<Device> => {
    const requests: Array<string> = []
    const recordingFetch: Fetch = (url, init) => {
      requests.push(url)
      return fetch(url, init)
    }
    const client = new ImClient({
      baseUrl: target().baseUrl,
      fetch: recordingFetch,
      backoff: { initialDelayMs: 200, maxDelayMs: 2_000 },
      ...(options.maxSendAttempts === undefined ? {} : { maxSendAttempts: options.maxSendAttempts })
    })
    open.push(client)
    const { ws_url } = await client.login(user.account, user.password)
    const received: Array<InboxEntry> = []
    client.on("message", (entry) => received.push(entry))
    if (options.connect !== false) await client.connect()
    return { client, received, requests, wsUrl: ws_url }
  }
}

/**
 * Two new users, alice and bob, each on a connected device (of `device`, from `devices`); alice
 * sends bob `content`. Resolves once bob's device has received it.
 */
export const deliverOne = async (target: Target, device: (user: TestUser) => Promise<Device>, content: string) => {
  const alice = await makeUser(target, "alice")
  const bob = await makeUser(target, "bob")
  const [a, b] = await Promise.all([device(alice), device(bob)])
  const delivered = new Promise<void>((resolve) => b.client.on("message", () => resolve()))
  const { server_id } = await a.client.send({ receiver_id: bob.id, content })
  await delivered
  return { alice, bob, a, b, server_id }
}
