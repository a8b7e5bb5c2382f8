import { Config } from "effect"

/** Where a service listens: `<PREFIX>_HOST` (default 127.0.0.1) and `<PREFIX>_PORT`. */
export const config = (prefix: string, defaultPort: number) =>
  Config.all({
    host: Config.String(`${prefix}_HOST`).pipe(Config.withDefault("127.0.0.1")),
    port: Config.Port(`${prefix}_PORT`).pipe(Config.withDefault(defaultPort))
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
