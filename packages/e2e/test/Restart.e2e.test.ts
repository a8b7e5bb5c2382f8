import { type ChildProcess, spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { eventually, getJson, makeUser, newestSeq, openRaw, postJson, pullAll, sendFrame } from "./Raw.ts"
import type { Target } from "./Target.ts"

const repoRoot = resolve(import.meta.dirname, "../../..")

const freePort = () =>
  new Promise<number>((done, fail) => {
    const server = createServer()
    server.once("error", fail)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => done(port))
    })
  })

interface Running {
  readonly process: ChildProcess
  readonly output: Array<string>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** `npm start` as a user runs it: the standalone entrypoint in its own process. */
const start = async (port: number, dataDir: string): Promise<Running> => {
  const child = spawn(process.execPath, ["packages/standalone/src/main.ts"], {
    cwd: repoRoot,
    env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: "Info" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const output: Array<string> = []
  child.stdout!.on("data", (chunk) => output.push(String(chunk)))
  child.stderr!.on("data", (chunk) => output.push(String(chunk)))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.on("exit", (code, signal) => done({ code, signal }))
  )
  const deadline = Date.now() + 60_000
  while (true) {
    const healthy = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false)
    if (healthy) return { process: child, output, exited }
    console.error("wait", port, child.pid, child.exitCode, output.join("").slice(0, 300))
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`standalone did not become healthy:\n${output.join("")}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}

const stop = async (running: Running, signal: NodeJS.Signals) => {
  running.process.kill(signal)
  const timer = setTimeout(() => running.process.kill("SIGKILL"), 20_000)
  const exit = await running.exited
  clearTimeout(timer)
  return exit
}

const dataDirs: Array<string> = []
const newDataDir = async (prefix: string) => {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  dataDirs.push(dir)
  return dir
}
afterAll(async () => {
  await Promise.all(dataDirs.map((dir) => rm(dir, { recursive: true, force: true })))
})

const targetOn = (port: number): Target => ({
  name: "npm start",
  baseUrl: `http://127.0.0.1:${port}`,
  wsUrl: `ws://127.0.0.1:${port}/ws`,
  stop: async () => {}
})

describe("npm start on the same data folder", () => {
  it("keeps users, messages and sequence numbers across restarts, and stops cleanly on SIGTERM and SIGINT", async () => {
    const dataDir = await newDataDir("im-restart-")
    const port = await freePort()
    const target = targetOn(port)

    const first = await start(port, dataDir)
    expect(first.output.join("")).toContain(`http://127.0.0.1:${port}`)
    expect(first.output.join("")).toContain(dataDir)
    // A second server on the same data folder refuses to start instead of corrupting it.
    const intruder = spawn(process.execPath, ["packages/standalone/src/main.ts"], {
      cwd: repoRoot,
      env: { ...process.env, PORT: String(await freePort()), DATA_DIR: dataDir },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let intruderOutput = ""
    intruder.stdout!.on("data", (chunk) => (intruderOutput += String(chunk)))
    intruder.stderr!.on("data", (chunk) => (intruderOutput += String(chunk)))
    const intruderExit = await new Promise<number | null>((done) => intruder.on("exit", (code) => done(code)))
    expect(intruderExit).not.toBe(0)
    expect(intruderOutput).toContain(`DATA_DIR ${dataDir} is in use by process ${first.process.pid}`)

    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    const socket = await openRaw(`${target.wsUrl}?token=${alice.token}`)
    await socket.next((frame) => frame.type === "welcome")
    socket.send(sendFrame(bob.id, "before the restart"))
    expect(await socket.next((frame) => frame.type === "send_result")).toMatchObject({ ok: true })
    socket.close()
    expect(await stop(first, "SIGTERM")).toEqual({ code: 0, signal: null })

    const second = await start(port, dataDir)
    // The user and password survived, and so did the token secret.
    expect((await postJson(target, "/auth/login", { account: bob.account, password: bob.password })).status).toBe(200)
    expect((await getJson(target, "/inbox/newest", bob.token)).body).toEqual({ seq: 1 })
    expect((await pullAll(target, bob)).map((e) => e.message.content)).toEqual(["before the restart"])
    const again = await openRaw(`${target.wsUrl}?token=${alice.token}`)
    await again.next((frame) => frame.type === "welcome")
    again.send(sendFrame(bob.id, "after the restart"))
    await again.next((frame) => frame.type === "send_result")
    const deadline = Date.now() + 10_000
    while ((await newestSeq(target, bob)) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect((await pullAll(target, bob)).map((e) => [e.seq, e.message.content])).toEqual([
      [1, "before the restart"],
      [2, "after the restart"]
    ])
    // A client still connected at shutdown is told to come back later (1001), and the server
    // does not wait for it: the process ends well within the HTTP server's 20 s grace period.
    const stoppedAt = Date.now()
    expect(await stop(second, "SIGINT")).toEqual({ code: 0, signal: null })
    expect(await again.closed).toEqual({ code: 1001, reason: "server shutting down" })
    expect(Date.now() - stoppedAt).toBeLessThan(15_000)
  }, 120_000)

  it("a send acknowledged before the process is killed (SIGKILL) is stored after the restart, once", async () => {
    const dataDir = await newDataDir("im-crash-")
    const port = await freePort()
    const target = targetOn(port)
    const first = await start(port, dataDir)
    const bob = await makeUser(target, "bob")
    const senders = await Promise.all([1, 2, 3, 4].map((i) => makeUser(target, `alice${i}`)))
    // Each sender writes its frames at once; the gateway answers them one by one while the
    // consumer stores them in steps, so when the process is killed some sends have been
    // acknowledged and not stored yet: the bus holds them, and its journal.
    const acked = new Set<string>()
    const perSender = 400
    const killAfter = 400
    let killed = false
    await Promise.all(senders.map((sender) =>
      new Promise<void>((done, fail) => {
        const socket = new WebSocket(`${target.wsUrl}?token=${sender.token}`)
        socket.addEventListener("error", () => killed || fail(new Error("socket failed before the kill")))
        socket.addEventListener("close", () => done())
        socket.addEventListener("message", (event) => {
          const frame = JSON.parse(String(event.data))
          if (frame.type === "welcome") {
            for (let k = 0; k < perSender; k++) socket.send(JSON.stringify(sendFrame(bob.id, `${sender.id} ${k}`)))
          } else if (frame.type === "send_result" && frame.ok === true) {
            acked.add(frame.server_id)
            if (acked.size === killAfter && !killed) {
              killed = true
              first.process.kill("SIGKILL")
            }
          }
        })
      })
    ))
    expect(await first.exited).toEqual({ code: null, signal: "SIGKILL" })
    expect(acked.size).toBeGreaterThanOrEqual(killAfter)

    const second = await start(port, dataDir)
    // Every acknowledged send is in bob's inbox once, after what the journal handed over again
    // was stored, each sender's in the order it sent them; no seq twice (a crash may skip some).
    let entries: Array<any> = []
    await eventually(async () => {
      entries = await pullAll(target, bob)
      const stored = new Set(entries.map((entry) => entry.message.server_id))
      return [...acked].every((id) => stored.has(id))
    }, "every acknowledged send in the receiver's inbox", 30_000)
    const ids = entries.map((entry) => entry.message.server_id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(new Set(entries.map((entry) => entry.seq)).size).toBe(entries.length)
    for (const sender of senders) {
      const ks = entries.filter((entry) => entry.message.sender_id === sender.id).map((entry) => Number(entry.message.content.split(" ")[1]))
      expect(ks).toEqual([...ks].sort((a, b) => a - b))
    }
    // So is each sender's own copy.
    for (const sender of senders) {
      const own = new Set((await pullAll(target, sender)).map((entry) => entry.message.server_id))
      const sent = entries.filter((entry) => entry.message.sender_id === sender.id).map((entry) => entry.message.server_id)
      expect(sent.every((id) => own.has(id))).toBe(true)
    }
    expect(second.output.join("")).toContain("handed over again")
    expect(await stop(second, "SIGTERM")).toEqual({ code: 0, signal: null })
  }, 120_000)
})
