import { Config, Effect } from "effect"

/**
 * Where a service listens, `<PREFIX>_HOST` (default 127.0.0.1) and `<PREFIX>_PORT`, and the
 * host others reach it at, `<PREFIX>_ADVERTISE_HOST` (default: the listening host; needed when
 * that is 0.0.0.0, as in a container).
 */
export const config = (prefix: string, defaultPort: number) =>
  Effect.gen(function*() {
    const host = yield* Config.String(`${prefix}_HOST`).pipe(Config.withDefault("127.0.0.1"))
    const port = yield* Config.Port(`${prefix}_PORT`).pipe(Config.withDefault(defaultPort))
    const advertise = yield* Config.String(`${prefix}_ADVERTISE_HOST`).pipe(Config.withDefault(host))
    return { host, port, advertise }
  })

/** The default ports of the cluster's services, one place for all of them. */
export const DefaultPorts = {
  api: 8080,
  ws: 8081,
  chat: 7101,
  db: 7102,
  pusher: 7103,
  wsGrpc: 7104
} as const
