import { readFileSync } from "node:fs"

/** What `npm run test:cluster` gives the tests that need the cluster itself, when it runs them. */
export const clusterLog = process.env["IM_CLUSTER_LOG"]
export const clusterControl = process.env["IM_CLUSTER_CONTROL"]

export const SKIP_REASON = "skipped: needs the cluster's processes and log, which npm run test:cluster provides"

/** The lines of the cluster log, by process name (`ws-1`, `db`, …). */
export const logLines = (): ReadonlyArray<{ readonly process: string; readonly line: string }> =>
  readFileSync(clusterLog!, "utf8").split("\n").flatMap((line) => {
    const match = /^\[([^\]]+)\] (.*)$/.exec(line)
    return match === null ? [] : [{ process: match[1]!, line: match[2]! }]
  })

const control = async <A>(action: string, name: string, query = ""): Promise<A> => {
  const response = await fetch(`${clusterControl}/${action}?name=${encodeURIComponent(name)}${query}`, { method: "POST" })
  if (!response.ok) throw new Error(`cannot ${action} ${name}: ${await response.text()}`)
  return await response.json() as A
}

/** Stops (SIGTERM) or kills (SIGKILL) one of the cluster's processes; resolves with its exit code once it has exited. */
export const stopProcess = async (name: string, how: "stop" | "kill") => (await control<{ code: number | null }>(how, name)).code

/** Starts a stopped process of the cluster again; resolves with its pid once it is registered and passing. */
export const startProcess = async (name: string) => (await control<{ pid: number }>("start", name)).pid

/** Stops one of the cluster's processes (SIGSTOP) for `ms`, then lets it go on (SIGCONT); resolves once it goes on. */
export const pauseProcess = async (name: string, ms: number) => {
  await control<{ pid: number }>("pause", name, `&ms=${ms}`)
}

/**
 * Restarts a part of the local stack (`redis`, `postgres`, `kafka`, `mongo`, `s3`) with its
 * scripts/infra script, down then up (Redis comes back empty: it keeps nothing on disk); resolves
 * with its server's pid before and after. Resolves with a reason instead when the part is not the stack's to restart (a server
 * infra:up did not start, e.g. a Redis the machine already ran).
 */
export const restartPart = async (
  part: string
): Promise<{ readonly skipped: string } | { readonly skipped?: undefined; readonly pids: readonly [string, string] }> => {
  const response = await fetch(`${clusterControl}/restart-part?name=${encodeURIComponent(part)}`, { method: "POST" })
  if (response.status === 409) return { skipped: await response.text() }
  if (!response.ok) throw new Error(`cannot restart ${part}: ${await response.text()}`)
  const { after, before } = await response.json() as { before: string; after: string }
  return { pids: [before, after] }
}
