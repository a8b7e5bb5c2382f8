/**
 * Summarizes V8 .cpuprofile files (from `node --cpu-prof`): self time per function and per
 * category (PGlite, Effect, JSON, sockets, GC, …), and who calls a given function. Run directly
 * to summarize files: `node packages/bench/src/Profile.ts FILE.cpuprofile… [--callers NAME]…`
 */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}
interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}
interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
  readonly startTime: number
  readonly endTime: number
}

export interface ProfileSummary {
  readonly file: string
  readonly total_ms: number
  /** Time not idle. */
  readonly busy_ms: number
  readonly top_functions: ReadonlyArray<{ readonly name: string; readonly self_ms: number; readonly busy_pct: number }>
  readonly categories: ReadonlyArray<{ readonly category: string; readonly self_ms: number; readonly busy_pct: number }>
}

const shortUrl = (url: string) => {
  const modules = url.lastIndexOf("node_modules/")
  if (modules >= 0) return url.slice(modules + "node_modules/".length)
  const packages = url.indexOf("/packages/")
  if (packages >= 0) return url.slice(packages + 1)
  return url.replace(/^file:\/\//, "")
}

/** Where a frame's time goes, coarsely. */
export const categoryOf = (frame: CallFrame): string => {
  const { functionName: name, url } = frame
  if (name === "(idle)") return "idle"
  if (name === "(garbage collector)") return "GC"
  if (name === "(program)") return "program (native, not attributed)"
  if (url.includes("pglite")) return "PGlite (embedded PostgreSQL, WASM)"
  // In standalone nearly all WASM is PGlite's PostgreSQL; in the cluster it is undici's HTTP parser (fetch).
  if (url.startsWith("wasm://")) return "WASM (PGlite's PostgreSQL / undici's llhttp)"
  if (url === "" && (name === "parse" || name === "stringify")) return "JSON"
  if (url.includes("node_modules/effect/") || url.includes("node_modules/@effect/")) return "Effect runtime/library"
  if (url.includes("node_modules/ws/")) return "ws (WebSocket library)"
  if (url.includes("kafkajs") || url.includes("ioredis") || url.includes("mongodb") || url.includes("@connectrpc") || url.includes("@bufbuild") || url.includes("grpc")) {
    return "client libraries (Kafka/Redis/Mongo/gRPC)"
  }
  if (url.includes("node_modules/pg") || url.includes("postgres")) return "PostgreSQL client"
  if (url.includes("node_modules/")) return `other node_modules (${shortUrl(url).split("/")[0]})`
  if (url.startsWith("node:")) {
    if (/net|stream|tls|http|_http|websocket|socket/.test(url)) return "Node sockets/streams/http"
    return "Node internals"
  }
  if (url.includes("/packages/")) return "our code (packages/)"
  if (name === "writev" || name === "writeUtf8String" || name === "writeBuffer" || name === "writeLatin1String") return "socket writes (native)"
  return "native/builtins"
}

/**
 * A span of the monotonic clock in microseconds (`process.hrtime.bigint() / 1000n`), which is the
 * clock of a .cpuprofile's `startTime` and samples on the same machine.
 */
export interface Window {
  readonly startUs: number
  readonly endUs: number
}

export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n)

export const summarizeProfile = (file: string, top = 15, window?: Window): ProfileSummary => {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const selfUs = new Map<number, number>()
  // timeDeltas[i] is the time since the previous sample: charge it to sample i-1's frame.
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    if (window !== undefined && (at < window.startUs || at > window.endUs)) continue
    const delta = profile.timeDeltas[i + 1] ?? 0
    selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + delta)
  }
  const functions = new Map<string, number>()
  const categories = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame
    total += us
    const category = categoryOf(frame)
    if (category === "idle") {
      idle += us
      continue
    }
    const name = `${frame.functionName || "(anonymous)"} ${frame.url === "" ? "" : `${shortUrl(frame.url)}:${frame.lineNumber + 1}`}`.trim()
    functions.set(name, (functions.get(name) ?? 0) + us)
    categories.set(category, (categories.get(category) ?? 0) + us)
  }
  const busy = total - idle
  const pct = (us: number) => Math.round((us / Math.max(1, busy)) * 1000) / 10
  const ms = (us: number) => Math.round(us / 100) / 10
  return {
    file,
    total_ms: ms(total),
    busy_ms: ms(busy),
    top_functions: [...functions].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({ name, self_ms: ms(us), busy_pct: pct(us) })),
    categories: [...categories].sort((a, b) => b[1] - a[1]).map(([category, us]) => ({ category, self_ms: ms(us), busy_pct: pct(us) }))
  }
}

export const profilesIn = (dir: string): Array<string> =>
  readdirSync(dir).filter((name) => name.endsWith(".cpuprofile")).map((name) => join(dir, name))

export const formatProfile = (summary: ProfileSummary, label = summary.file): string =>
  [
    `profile ${label}: ${summary.busy_ms} ms busy of ${summary.total_ms} ms sampled`,
    "  by category (self time, % of busy):",
    ...summary.categories.slice(0, 10).map((c) => `    ${c.busy_pct.toFixed(1).padStart(5)}%  ${c.category}`),
    "  top functions (self time):",
    ...summary.top_functions.map((f) => `    ${f.busy_pct.toFixed(1).padStart(5)}%  ${f.self_ms.toFixed(0).padStart(7)} ms  ${f.name}`)
  ].join("\n")

const frameName = (frame: CallFrame) =>
  `${frame.functionName || "(anonymous)"} ${frame.url === "" ? "" : `${shortUrl(frame.url)}:${frame.lineNumber + 1}`}`.trim()

/**
 * Where the self time of the functions whose name contains `pattern` comes from: per nearest
 * caller in the project's own code (`packages/`), and per chain of the `depth` nearest callers.
 */
export const callersOf = (file: string, pattern: string, depth = 4, window?: Window) => {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const ours = new Map<string, number>()
  const chains = new Map<string, number>()
  let total = 0
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    if (window !== undefined && (at < window.startUs || at > window.endUs)) continue
    const id = profile.samples[i]!
    const node = byId.get(id)!
    if (!frameName(node.callFrame).includes(pattern)) continue
    const us = profile.timeDeltas[i + 1] ?? 0
    total += us
    const chain: Array<string> = []
    let nearestOurs: string | undefined
    for (let up = parent.get(id); up !== undefined; up = parent.get(up)) {
      const frame = byId.get(up)!.callFrame
      if (chain.length < depth && frame.functionName !== "") chain.push(frameName(frame))
      if (nearestOurs === undefined && frame.url.includes("/packages/") && !frame.url.includes("node_modules")) nearestOurs = frameName(frame)
      if (chain.length >= depth && nearestOurs !== undefined) break
    }
    const key = nearestOurs ?? "(none of ours)"
    ours.set(key, (ours.get(key) ?? 0) + us)
    const chainKey = chain.join(" ← ")
    chains.set(chainKey, (chains.get(chainKey) ?? 0) + us)
  }
  const top = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([name, us]) => ({ name, self_ms: Math.round(us / 1000), pct: Math.round((us / Math.max(1, total)) * 1000) / 10 }))
  return { pattern, self_ms: Math.round(total / 1000), nearest_own_caller: top(ours), caller_chains: top(chains) }
}

export const formatCallers = (callers: ReturnType<typeof callersOf>): string =>
  [
    `callers of "${callers.pattern}" (${callers.self_ms} ms self):`,
    "  nearest caller in packages/:",
    ...callers.nearest_own_caller.map((c) => `    ${c.pct.toFixed(1).padStart(5)}%  ${c.name}`),
    "  caller chains:",
    ...callers.caller_chains.map((c) => `    ${c.pct.toFixed(1).padStart(5)}%  ${c.name}`)
  ].join("\n")

// node packages/bench/src/Profile.ts FILE… [--callers NAME]…
if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2)
  const files = args.filter((arg, i) => arg !== "--callers" && args[i - 1] !== "--callers")
  const patterns = args.filter((_, i) => args[i - 1] === "--callers")
  for (const file of files) {
    console.log(formatProfile(summarizeProfile(file)) + "\n")
    for (const pattern of patterns) console.log(formatCallers(callersOf(file, pattern)) + "\n")
  }
}
