import { serviceRegistrySuite } from "@im/ports/testing/ServiceRegistrySuite"
import { describe } from "@effect/vitest"
import { ConfigProvider, Layer } from "effect"
import * as ConsulRegistry from "../src/ConsulRegistry.ts"

// A real Consul agent, when one runs: no package registry this project may use ships one (see
// reference/infra.md §4), so on such machines this file is reported as skipped, never as passed.
const addr = process.env["CONSUL_HTTP_ADDR"]

describe.skipIf(!addr)(
  addr ? `ConsulRegistry on the agent at ${addr}` : "ConsulRegistry on a real agent (skipped: CONSUL_HTTP_ADDR is not set; no Consul agent can be installed on this machine)",
  () => {
    const registry = ConsulRegistry.layer.pipe(
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
        CONSUL_HTTP_ADDR: addr ?? "",
        CONSUL_CHECK_TTL: "3 seconds",
        CONSUL_WATCH_WAIT: "5 seconds"
      })))
    )
    serviceRegistrySuite("consul (real agent)", registry, { patience: "15 seconds" })
  }
)
