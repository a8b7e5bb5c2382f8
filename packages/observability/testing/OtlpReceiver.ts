import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"

/**
 * A tiny OTLP/HTTP traces receiver for tests: it accepts `POST /v1/traces` with a JSON body
 * (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) on 127.0.0.1 and keeps the spans, flattened, with
 * the service name of their resource. Protobuf bodies are refused with 415.
 */

export interface ReceivedSpan {
  readonly service: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  /** OTLP span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number
  readonly startNanos: string
  readonly endNanos: string
  readonly attributes: Readonly<Record<string, unknown>>
  readonly links: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>
}

interface OtlpKeyValue {
  readonly key: string
  readonly value: Record<string, unknown>
}

const valueOf = (value: Record<string, unknown>): unknown => {
  if ("stringValue" in value) return value["stringValue"]
  if ("intValue" in value) return Number(value["intValue"])
  if ("doubleValue" in value) return value["doubleValue"]
  if ("boolValue" in value) return value["boolValue"]
  return value
}

const attributesOf = (list: ReadonlyArray<OtlpKeyValue> | undefined): Record<string, unknown> =>
  Object.fromEntries((list ?? []).map(({ key, value }) => [key, valueOf(value)]))

/** The spans of an OTLP/JSON `ExportTraceServiceRequest`, flattened. */
export const spansOf = (body: any): Array<ReceivedSpan> =>
  (body?.resourceSpans ?? []).flatMap((resourceSpan: any) => {
    const service = String(attributesOf(resourceSpan.resource?.attributes)["service.name"] ?? "unknown")
    return (resourceSpan.scopeSpans ?? []).flatMap((scopeSpan: any) =>
      (scopeSpan.spans ?? []).map((span: any): ReceivedSpan => ({
        service,
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId === undefined || span.parentSpanId === "" ? undefined : span.parentSpanId,
        name: span.name,
        kind: span.kind,
        startNanos: String(span.startTimeUnixNano),
        endNanos: String(span.endTimeUnixNano),
        attributes: attributesOf(span.attributes),
        links: (span.links ?? []).map((link: any) => ({ traceId: link.traceId, spanId: link.spanId }))
      }))
    )
  })

export class OtlpReceiver {
  /** Every span received so far (unless `keep` is false). */
  readonly spans: Array<ReceivedSpan> = []
  readonly #onSpans: (spans: ReadonlyArray<ReceivedSpan>) => void
  readonly #keep: boolean
  #server: Server | undefined
  #url = ""

  /**
   * `onSpans` is called with the spans of every accepted request (e.g. to write them to a
   * file); `keep: false` does not keep them in `spans` too.
   */
  constructor(options: { readonly onSpans?: (spans: ReadonlyArray<ReceivedSpan>) => void; readonly keep?: boolean } = {}) {
    this.#onSpans = options.onSpans ?? (() => {})
    this.#keep = options.keep ?? true
  }

  /** The base URL, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  get url(): string {
    return this.#url
  }

  start(): Promise<void> {
    const server = createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        if (request.method !== "POST" || request.url !== "/v1/traces") {
          response.writeHead(404).end()
          return
        }
        if (!(request.headers["content-type"] ?? "").includes("json")) {
          response.writeHead(415).end()
          return
        }
        let received: Array<ReceivedSpan>
        try {
          received = spansOf(JSON.parse(Buffer.concat(chunks).toString("utf8")))
        } catch {
          response.writeHead(400).end()
          return
        }
        if (this.#keep) this.spans.push(...received)
        this.#onSpans(received)
        response.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    this.#server = server
    return new Promise((resolve) =>
      server.listen(0, "127.0.0.1", () => {
        this.#url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
        resolve()
      })
    )
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.#server === undefined ? resolve() : this.#server.close(() => resolve())))
  }
}

/**
 * The spans of one trace as an indented tree: service, span name, start offset from the root
 * and duration, children under their parent in start order. For docs and test failures.
 */
export const renderTrace = (spans: ReadonlyArray<ReceivedSpan>, traceId: string): string => {
  const own = spans.filter((span) => span.traceId === traceId)
  if (own.length === 0) return "(no spans)"
  const ids = new Set(own.map((span) => span.spanId))
  const byStart = [...own].sort((a, b) => (BigInt(a.startNanos) < BigInt(b.startNanos) ? -1 : 1))
  const origin = BigInt(byStart[0]!.startNanos)
  const ms = (nanos: bigint) => (Number(nanos) / 1e6).toFixed(1)
  const rows: Array<{ readonly service: string; readonly label: string; readonly start: string; readonly duration: string }> = []
  const visit = (span: ReceivedSpan, depth: number) => {
    rows.push({
      service: span.service,
      label: `${"  ".repeat(depth)}${span.name}`,
      start: `+${ms(BigInt(span.startNanos) - origin)} ms`,
      duration: `${ms(BigInt(span.endNanos) - BigInt(span.startNanos))} ms`
    })
    for (const child of byStart.filter((other) => other.parentSpanId === span.spanId)) visit(child, depth + 1)
  }
  for (const root of byStart.filter((span) => span.parentSpanId === undefined || !ids.has(span.parentSpanId))) visit(root, 0)
  const header = { service: "service", label: "span", start: "start", duration: "duration" }
  const width = (key: keyof typeof header) => Math.max(...[header, ...rows].map((row) => row[key].length))
  return [header, ...rows]
    .map((row) =>
      `${row.service.padEnd(width("service"))}  ${row.label.padEnd(width("label"))}  ${row.start.padStart(width("start"))}  ${row.duration.padStart(width("duration"))}`
    )
    .join("\n")
}

const SERVICE_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f"]

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** The same tree as `renderTrace`, drawn as a waterfall (SVG): one bar per span, coloured by service. */
export const renderTraceSvg = (spans: ReadonlyArray<ReceivedSpan>, traceId: string): string => {
  const own = spans.filter((span) => span.traceId === traceId)
  const ids = new Set(own.map((span) => span.spanId))
  const byStart = [...own].sort((a, b) => (BigInt(a.startNanos) < BigInt(b.startNanos) ? -1 : 1))
  const rows: Array<{ readonly span: ReceivedSpan; readonly depth: number }> = []
  const visit = (span: ReceivedSpan, depth: number) => {
    rows.push({ span, depth })
    for (const child of byStart.filter((other) => other.parentSpanId === span.spanId)) visit(child, depth + 1)
  }
  for (const root of byStart.filter((span) => span.parentSpanId === undefined || !ids.has(span.parentSpanId))) visit(root, 0)
  const origin = rows.length === 0 ? 0n : BigInt(byStart[0]!.startNanos)
  const end = rows.reduce((latest, { span }) => (BigInt(span.endNanos) > latest ? BigInt(span.endNanos) : latest), origin + 1n)
  const totalMs = Number(end - origin) / 1e6
  const services = [...new Set(rows.map(({ span }) => span.service))]
  const colorOf = (service: string) => SERVICE_COLORS[services.indexOf(service) % SERVICE_COLORS.length]!
  const rowHeight = 22
  const labelWidth = 560
  const chartWidth = 520
  const top = 48
  const height = top + rows.length * rowHeight + 40
  const x = (nanos: bigint) => labelWidth + (Number(nanos - origin) / 1e6 / totalMs) * chartWidth
  const step = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].find((candidate) => totalMs / candidate <= 10) ?? 1000
  const ticks: Array<string> = []
  for (let ms = 0; ms <= totalMs + 1e-9; ms += step) {
    const at = labelWidth + (ms / totalMs) * chartWidth
    ticks.push(`<line x1="${at.toFixed(1)}" y1="${top - 6}" x2="${at.toFixed(1)}" y2="${height - 34}" stroke="#ddd"/>`)
    ticks.push(`<text x="${at.toFixed(1)}" y="${top - 10}" font-size="11" text-anchor="middle" fill="#666">${ms} ms</text>`)
  }
  const bars = rows.map(({ depth, span }, i) => {
    const y = top + i * rowHeight
    const from = x(BigInt(span.startNanos))
    const width = Math.max(1.5, x(BigInt(span.endNanos)) - from)
    const ms = (Number(BigInt(span.endNanos) - BigInt(span.startNanos)) / 1e6).toFixed(1)
    return [
      `<text x="8" y="${y + 15}" font-size="12" fill="${colorOf(span.service)}">${escapeXml(span.service)}</text>`,
      `<text x="${110 + depth * 14}" y="${y + 15}" font-size="12">${escapeXml(span.name)}</text>`,
      `<rect x="${from.toFixed(1)}" y="${y + 4}" width="${width.toFixed(1)}" height="14" rx="2" fill="${colorOf(span.service)}"/>`,
      `<text x="${(from + width + 4).toFixed(1)}" y="${y + 15}" font-size="11" fill="#444">${ms} ms</text>`
    ].join("")
  })
  const legend = services.map((service, i) =>
    `<rect x="${8 + i * 130}" y="${height - 24}" width="12" height="12" fill="${colorOf(service)}"/><text x="${24 + i * 130}" y="${height - 14}" font-size="12">${escapeXml(service)}</text>`
  )
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + chartWidth + 80}" height="${height}" font-family="ui-monospace, Menlo, Consolas, monospace">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="8" y="20" font-size="13" font-weight="bold">trace ${traceId}</text>`,
    ...ticks,
    ...bars,
    ...legend,
    `</svg>`,
    ""
  ].join("\n")
}
