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

/** Stops (SIGTERM) or kills (SIGKILL) one of the cluster's processes; resolves when it has exited. */
export const stopProcess = async (name: string, how: "stop" | "kill") => {
  const response = await fetch(`${clusterControl}/${how}?name=${encodeURIComponent(name)}`, { method: "POST" })
  if (!response.ok) throw new Error(`cannot ${how} ${name}: ${await response.text()}`)
  return (await response.json() as { code: number | null }).code
}
