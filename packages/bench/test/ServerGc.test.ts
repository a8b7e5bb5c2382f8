import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { formatServerGc, gcBetween, parseGc, readGc } from "../src/ServerGc.ts"

const exposition = (major: [number, number], minor: [number, number]) =>
  [
    "# HELP im_gc_pause_seconds_total Time the garbage collector paused the process, by kind.",
    "# TYPE im_gc_pause_seconds_total counter",
    `im_gc_pause_seconds_total{kind="major"} ${major[1]}`,
    `im_gc_pause_seconds_total{kind="minor"} ${minor[1]}`,
    "# TYPE im_gc_pauses_total counter",
    `im_gc_pauses_total{kind="major"} ${major[0]}`,
    `im_gc_pauses_total{kind="minor"} ${minor[0]}`,
    `im_process_heap_used_bytes 123`
  ].join("\n")

describe("ServerGc", () => {
  it("reads the pauses by kind from a Prometheus text, and nothing else", () => {
    expect(parseGc(exposition([3, 0.05], [120, 0.9]))).toEqual(
      new Map([["major", { count: 3, seconds: 0.05 }], ["minor", { count: 120, seconds: 0.9 }]])
    )
    expect(parseGc("im_process_heap_used_bytes 123\nim_gc_pauses_total{kind=\"major\"} NaN")).toEqual(new Map())
  })

  it("counts what a run added, a kind first seen after it from zero, and says it per process", () => {
    const before = parseGc(exposition([3, 0.05], [120, 0.9]).split("\n").filter((line) => !line.includes("major")).join("\n"))
    const after = parseGc(exposition([2, 0.0412], [300, 2.2]))
    const added = gcBetween(before, after)
    expect(added).toEqual({ major: { count: 2, seconds: 0.041 }, minor: { count: 180, seconds: 1.3 } })
    expect(formatServerGc([{ name: "standalone", pauses: added }, { name: "ws-1", pauses: null }, { name: "api", pauses: { minor: { count: 0, seconds: 0 } } }])).toEqual([
      "standalone: 2 major (41 ms), 180 minor (1300 ms)",
      "ws-1: not read",
      "api: no pause"
    ])
  })

  describe("readGc", () => {
    let server: Server
    let base: string
    beforeAll(async () => {
      server = createServer((request, response) => {
        if (request.url === "/metrics") response.end(exposition([1, 0.02], [10, 0.1]))
        else response.writeHead(404).end()
      })
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    })
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

    it("reads a process's metrics, and gives undefined for one that does not answer them", async () => {
      expect(await readGc(`${base}/metrics`)).toEqual(new Map([["major", { count: 1, seconds: 0.02 }], ["minor", { count: 10, seconds: 0.1 }]]))
      expect(await readGc(`${base}/nothing`)).toBeUndefined()
      expect(await readGc("http://127.0.0.1:1/metrics")).toBeUndefined()
    })
  })
})
