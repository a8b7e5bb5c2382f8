import { Context, Effect, Layer } from "effect"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

/**
 * A loopback stand-in for the part of a Consul agent's HTTP API that ConsulRegistry uses. No
 * Consul agent can be installed on the machines this project is built on, so the contract tests
 * run the adapter against it, and `npm run cluster` uses it as the registry unless
 * CONSUL_HTTP_ADDR names a real agent. It models, with
 * Consul's behaviour where the adapter depends on it:
 *
 * - `PUT /v1/agent/service/register`: a service with one TTL check (`Check.TTL`), which starts
 *   `critical` unless `Check.Status` says otherwise and turns `critical` when no pass comes
 *   within the TTL;
 * - `PUT /v1/agent/service/deregister/:id` (404 for an unknown id);
 * - `PUT /v1/agent/check/pass/:checkId` (404 for an unknown check);
 * - `GET /v1/health/service/:service[?passing]`: entries `{ Node, Service, Checks }`, with
 *   `X-Consul-Index`; with `index` and `wait` a blocking query that answers when the service's
 *   index passes `index` or `wait` runs out (immediately when `index` is ahead of the agent's,
 *   as after a reset).
 *
 * It records every request, and can fail requests (any status), leave them hanging, fail the
 * blocking queries in flight, and reset its indexes. Not modelled: ACLs, datacenters, tags
 * filters, the reaping of critical services (`DeregisterCriticalServiceAfter` is recorded only).
 */
export interface RecordedRequest {
  readonly method: string
  /** Decoded path, e.g. `/v1/agent/check/pass/service:chat-1`. */
  readonly path: string
  /** As sent, e.g. `/v1/agent/check/pass/service%3Achat-1?note=x`. */
  readonly rawUrl: string
  readonly query: Readonly<Record<string, string>>
  readonly body: unknown
  /** The `X-Consul-Index` answered, when the request got an answer with one. */
  answeredIndex?: number
  /** The status answered; undefined while pending or when left hanging. */
  status?: number
}

export interface Fault {
  readonly method?: string
  /** Matches requests whose decoded path starts with this. */
  readonly path: string
  /** How many matching requests it applies to. */
  times: number
  readonly respond: { readonly status: number; readonly body?: string } | "hang"
}

interface Check {
  readonly id: string
  readonly name: string
  readonly ttlMs: number | undefined
  status: "passing" | "warning" | "critical"
  output: string
  timer: ReturnType<typeof setTimeout> | undefined
}

interface RegisteredService {
  readonly id: string
  readonly name: string
  readonly address: string
  readonly port: number
  readonly meta: Readonly<Record<string, string>>
  readonly tags: ReadonlyArray<string>
  readonly check: Check | undefined
  readonly definition: unknown
}

interface Waiter {
  readonly service: string
  readonly wake: () => void
  readonly fail: (status: number) => void
}

/** Parses a Go duration as Consul does: `10s`, `1.5s`, `500ms`, `1m`, `1h30m`. */
export const parseGoDuration = (text: string): number | undefined => {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)]
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) return undefined
  return parts.reduce((ms, [, n, unit]) => ms + Number(n) * units[unit!]!, 0)
}

const NODE = { ID: "2f6c1a4e-double", Node: "consul-double", Address: "127.0.0.1", Datacenter: "dc1" }

export class ConsulStandIn {
  readonly requests: Array<RecordedRequest> = []
  private readonly services = new Map<string, RegisteredService>()
  private readonly serviceIndex = new Map<string, number>()
  private readonly waiters = new Set<Waiter>()
  private readonly hanging = new Set<ServerResponse>()
  private faults: Array<Fault> = []
  private index = 100
  private floor = 100
  private server: Server | undefined

  /** `host:port`, as `CONSUL_HTTP_ADDR` takes it. */
  address = ""

  static readonly make = Effect.acquireRelease(
    Effect.promise(async () => {
      const double = new ConsulStandIn()
      await double.start()
      return double
    }),
    (double) => Effect.promise(() => double.stop())
  )

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res))
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    this.server = server
    this.address = `127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  async stop(): Promise<void> {
    for (const service of this.services.values()) if (service.check?.timer) clearTimeout(service.check.timer)
    for (const waiter of this.waiters) waiter.wake()
    for (const res of this.hanging) res.destroy()
    const server = this.server
    if (server === undefined) return
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }

  /** Answers the next `times` matching requests with `respond` instead of serving them. */
  fault(fault: Fault): void {
    this.faults.push(fault)
  }

  clearFaults(): void {
    this.faults = []
  }

  /** Answers every blocking query in flight with `status`, as an agent that lost its leader. */
  failBlocked(status = 500): void {
    for (const waiter of [...this.waiters]) {
      this.waiters.delete(waiter)
      waiter.fail(status)
    }
  }

  /** Restarts the index far below where it was, as a restored or rebuilt cluster does. */
  resetIndex(): void {
    this.floor = 3
    this.index = 3
    for (const name of this.serviceIndex.keys()) this.serviceIndex.set(name, 3)
    for (const waiter of [...this.waiters]) waiter.wake()
  }

  statusOf(id: string): string | undefined {
    return this.services.get(id)?.check?.status
  }

  requestsTo(method: string, pathPrefix: string): Array<RecordedRequest> {
    return this.requests.filter((r) => r.method === method && r.path.startsWith(pathPrefix))
  }

  private indexOf(service: string): number {
    return this.serviceIndex.get(service) ?? this.floor
  }

  private changed(service: string): void {
    this.index += 1
    this.serviceIndex.set(service, this.index)
    for (const waiter of [...this.waiters]) {
      if (waiter.service === service) waiter.wake()
    }
  }

  private armTtl(service: RegisteredService): void {
    const check = service.check
    if (check?.ttlMs === undefined) return
    if (check.timer) clearTimeout(check.timer)
    check.timer = setTimeout(() => {
      check.timer = undefined
      if (check.status !== "critical") {
        check.status = "critical"
        check.output = "TTL expired"
        this.changed(service.name)
      }
    }, check.ttlMs)
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://consul")
    const chunks: Array<Buffer> = []
    for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk)
    const text = Buffer.concat(chunks).toString("utf8")
    let body: unknown = undefined
    if (text !== "") {
      try {
        body = JSON.parse(text)
      } catch {
        body = text
      }
    }
    const recorded: RecordedRequest = {
      method: req.method ?? "GET",
      path: decodeURIComponent(url.pathname),
      rawUrl: req.url ?? "/",
      query: Object.fromEntries(url.searchParams),
      body
    }
    this.requests.push(recorded)

    const fault = this.faults.find((f) =>
      f.times > 0 && recorded.path.startsWith(f.path) && (f.method === undefined || f.method === recorded.method)
    )
    if (fault !== undefined) {
      fault.times -= 1
      if (fault.respond === "hang") {
        this.hanging.add(res)
        res.on("close", () => this.hanging.delete(res))
        return
      }
      return this.reply(res, recorded, fault.respond.status, fault.respond.body ?? "rpc error: injected by ConsulStandIn")
    }

    const route = (method: string, prefix: string) => recorded.method === method && recorded.path.startsWith(prefix)
    const rest = (prefix: string) => recorded.path.slice(prefix.length)

    if (route("PUT", "/v1/agent/service/register")) return this.register(res, recorded)
    if (route("PUT", "/v1/agent/service/deregister/")) {
      const id = rest("/v1/agent/service/deregister/")
      const service = this.services.get(id)
      if (service === undefined) {
        return this.reply(res, recorded, 404, `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`)
      }
      if (service.check?.timer) clearTimeout(service.check.timer)
      this.services.delete(id)
      this.changed(service.name)
      return this.reply(res, recorded, 200, "")
    }
    if (route("PUT", "/v1/agent/check/pass/")) {
      const id = rest("/v1/agent/check/pass/")
      const service = [...this.services.values()].find((s) => s.check?.id === id)
      if (service === undefined || service.check === undefined) {
        return this.reply(res, recorded, 404, `Unknown check ID "${id}". Ensure that the check ID is passed, not the check name.`)
      }
      const check = service.check
      check.output = recorded.query["note"] ?? ""
      this.armTtl(service)
      if (check.status !== "passing") {
        check.status = "passing"
        this.changed(service.name)
      }
      return this.reply(res, recorded, 200, "")
    }
    if (route("GET", "/v1/health/service/")) return this.health(res, recorded, rest("/v1/health/service/"))
    return this.reply(res, recorded, 404, "Not Found")
  }

  private register(res: ServerResponse, recorded: RecordedRequest): void {
    const body = recorded.body as Record<string, any> | undefined
    if (typeof body !== "object" || body === null || typeof body["Name"] !== "string" || body["Name"] === "") {
      return this.reply(res, recorded, 400, "Missing service name")
    }
    const check = body["Check"] as Record<string, any> | undefined
    let ttlMs: number | undefined
    if (check !== undefined) {
      ttlMs = typeof check["TTL"] === "string" ? parseGoDuration(check["TTL"]) : undefined
      if (ttlMs === undefined) return this.reply(res, recorded, 400, "Invalid check: TTL must be a duration")
    }
    const id = typeof body["ID"] === "string" && body["ID"] !== "" ? body["ID"] : body["Name"]
    const previous = this.services.get(id)
    if (previous?.check?.timer) clearTimeout(previous.check.timer)
    const service: RegisteredService = {
      id,
      name: body["Name"],
      address: body["Address"] ?? "",
      port: body["Port"] ?? 0,
      meta: body["Meta"] ?? {},
      tags: body["Tags"] ?? [],
      definition: body,
      check: check === undefined ? undefined : {
        id: check["CheckID"] ?? `service:${id}`,
        name: check["Name"] ?? `Service '${body["Name"]}' check`,
        ttlMs,
        status: check["Status"] ?? "critical",
        output: "",
        timer: undefined
      }
    }
    this.services.set(id, service)
    this.armTtl(service)
    if (previous !== undefined && previous.name !== service.name) this.changed(previous.name)
    this.changed(service.name)
    return this.reply(res, recorded, 200, "")
  }

  private health(res: ServerResponse, recorded: RecordedRequest, service: string): void {
    const answer = () => {
      const passingOnly = "passing" in recorded.query && recorded.query["passing"] !== "false"
      const entries = [...this.services.values()]
        .filter((s) => s.name === service)
        .filter((s) => !passingOnly || s.check === undefined || s.check.status === "passing")
        .map((s) => ({
          Node: NODE,
          Service: {
            ID: s.id,
            Service: s.name,
            Tags: s.tags,
            Address: s.address,
            Meta: s.meta,
            Port: s.port,
            Weights: { Passing: 1, Warning: 1 },
            EnableTagOverride: false
          },
          Checks: [
            { Node: NODE.Node, CheckID: "serfHealth", Name: "Serf Health Status", Status: "passing", ServiceID: "", ServiceName: "" },
            ...(s.check === undefined ? [] : [{
              Node: NODE.Node,
              CheckID: s.check.id,
              Name: s.check.name,
              Status: s.check.status,
              Output: s.check.output,
              ServiceID: s.id,
              ServiceName: s.name,
              Type: "ttl"
            }])
          ]
        }))
      const index = this.indexOf(service)
      recorded.answeredIndex = index
      res.setHeader("X-Consul-Index", String(index))
      res.setHeader("X-Consul-KnownLeader", "true")
      res.setHeader("X-Consul-LastContact", "0")
      this.reply(res, recorded, 200, JSON.stringify(entries), "application/json")
    }

    const minIndex = recorded.query["index"] === undefined ? 0 : Number(recorded.query["index"])
    if (!Number.isFinite(minIndex) || minIndex < 0) return this.reply(res, recorded, 400, "Invalid index")
    // Index 0 (or none) is a plain read; so is an index ahead of the agent's (after a reset).
    if (minIndex === 0 || minIndex < this.indexOf(service) || minIndex > this.index) return answer()
    const waitMs = Math.min(
      recorded.query["wait"] === undefined ? 300_000 : parseGoDuration(recorded.query["wait"]) ?? 300_000,
      600_000
    )
    let done = false
    const finish = (then: () => void) => {
      if (done) return
      done = true
      clearTimeout(timer)
      this.waiters.delete(waiter)
      then()
    }
    const waiter: Waiter = {
      service,
      wake: () => finish(answer),
      fail: (status) => finish(() => this.reply(res, recorded, status, "rpc error: No cluster leader"))
    }
    // Consul adds up to wait/16 of jitter; the double answers at `wait`.
    const timer = setTimeout(() => finish(answer), waitMs)
    this.waiters.add(waiter)
    // The client gave up (its time-out, or an interrupted watch).
    res.on("close", () => {
      if (!res.writableEnded) finish(() => undefined)
    })
  }

  private reply(res: ServerResponse, recorded: RecordedRequest, status: number, body: string, type = "text/plain; charset=utf-8") {
    if (res.writableEnded || res.destroyed) return
    recorded.status = status
    res.writeHead(status, { "content-type": type })
    res.end(body)
  }
}

/** The double as a service of a test's layer: started when built, stopped on release. */
export class ConsulStandInService extends Context.Service<ConsulStandInService, ConsulStandIn>()("@im/consul/ConsulStandIn") {
  static readonly layer = Layer.effect(ConsulStandInService, ConsulStandIn.make)
}
