import { describe, expect, it } from "vitest"
import { clusterLog } from "./Cluster.ts"
import { deliverOne, devices } from "./Devices.ts"
import { eventually } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget()

const device = devices(() => target)

/** A scrape: every sample line's value by its series (`name{labels}`), values of repeated series added. */
const scrape = async (url: string): Promise<Map<string, number>> => {
  const response = await fetch(url)
  expect(response.status, url).toBe(200)
  expect(response.headers.get("content-type"), url).toBe("text/plain; version=0.0.4; charset=utf-8")
  const samples = new Map<string, number>()
  for (const line of (await response.text()).split("\n")) {
    if (line === "" || line.startsWith("#")) continue
    const at = line.lastIndexOf(" ")
    samples.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return samples
}

/** The sum of a series over several scrapes (a kind of process that runs more than once). */
const total = (scrapes: ReadonlyArray<Map<string, number>>, series: string) =>
  scrapes.reduce((sum, samples) => sum + (samples.get(series) ?? 0), 0)

/**
 * Where each kind of process serves /metrics. Standalone: its one server. The cluster of
 * `npm run test:cluster` (scripts/cluster.ts): the api and each gateway on their HTTP port,
 * chat, db and pusher on their gRPC port + 1000, the two consumers on 8110 and 8111.
 */
const endpoints = () => {
  if (clusterLog === undefined) {
    const all = [`${target.baseUrl}/metrics`]
    return { api: all, ws: all, chat: all, consumer: all, db: all, pusher: all }
  }
  return {
    api: [`${target.baseUrl}/metrics`],
    ws: ["http://127.0.0.1:8081/metrics", "http://127.0.0.1:8082/metrics"],
    chat: ["http://127.0.0.1:8101/metrics"],
    db: ["http://127.0.0.1:8102/metrics"],
    pusher: ["http://127.0.0.1:8103/metrics"],
    consumer: ["http://127.0.0.1:8110/metrics", "http://127.0.0.1:8111/metrics"]
  }
}

describe(`GET /metrics on every service of ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("each serves the Prometheus text without a token, and a sent message shows in each one's counters", async () => {
    const where = endpoints()
    const scrapeAll = (urls: ReadonlyArray<string>) => Promise.all(urls.map(scrape))
    const before = {
      chat: total(await scrapeAll(where.chat), "im_chat_accepted_total{kind=\"single\"}"),
      consumer: total(await scrapeAll(where.consumer), "im_consumer_records_total{topic=\"im.messages\"}"),
      db: total(await scrapeAll(where.db), "im_inbox_entries_stored_total"),
      pusher: total(await scrapeAll(where.pusher), "im_pusher_deliveries_total{outcome=\"sent\"}"),
      ws: total(await scrapeAll(where.ws), "im_gateway_deliveries_total{outcome=\"delivered\"}")
    }

    const { a, b } = await deliverOne(target, device, "count me")

    // Other tests run at the same time: the counters grow by at least this message's share.
    await eventually(async () => total(await scrapeAll(where.chat), "im_chat_accepted_total{kind=\"single\"}") >= before.chat + 1, "chat's count")
    await eventually(async () => total(await scrapeAll(where.db), "im_inbox_entries_stored_total") >= before.db + 2, "db's count")
    await eventually(async () => total(await scrapeAll(where.consumer), "im_consumer_records_total{topic=\"im.messages\"}") >= before.consumer + 1, "the consumers' count")
    await eventually(async () => total(await scrapeAll(where.pusher), "im_pusher_deliveries_total{outcome=\"sent\"}") >= before.pusher + 1, "the pusher's count")
    await eventually(async () => total(await scrapeAll(where.ws), "im_gateway_deliveries_total{outcome=\"delivered\"}") >= before.ws + 1, "the gateways' count")
    a.client.close()
    b.client.close()

    const api = await scrapeAll(where.api)
    expect(total(api, "im_http_requests_total{method=\"POST\",route=\"/auth/login\",status=\"200\"}")).toBeGreaterThanOrEqual(2)
    const chat = await scrapeAll(where.chat)
    expect(total(chat, "im_bus_published_total{topic=\"im.messages\"}")).toBeGreaterThanOrEqual(1)
    for (const consumer of await scrapeAll(where.consumer)) {
      for (const topic of ["im.messages", "im.fanout"]) {
        expect([...consumer.keys()].some((series) => series.startsWith(`im_consumer_lag{topic="${topic}"`)), topic).toBe(true)
      }
    }
    for (const gateway of await scrapeAll(where.ws)) expect(gateway.has("im_gateway_connections")).toBe(true)
    if (clusterLog !== undefined) {
      // Over gRPC: chat served the gateway's send (in a SendBatch call), db the consumer's save.
      expect(total(chat, "im_grpc_server_requests_total{method=\"im.chat.v1.ChatService/sendBatch\",code=\"ok\"}")).toBeGreaterThanOrEqual(1)
      expect(total(await scrapeAll(where.db), "im_grpc_server_requests_total{method=\"im.db.v1.DbService/save\",code=\"ok\"}"))
        .toBeGreaterThanOrEqual(1)
    }
  }, 60_000)
})
