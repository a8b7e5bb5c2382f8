import type { PortError } from "@im/ports/PortError"
import { Effect, type Scope } from "effect"
import type { Redis } from "ioredis"
import { connect, type RedisConnectionOptions } from "./RedisClient.ts"

/**
 * A Lua script an adapter runs, under a name of its own; `A` is what it replies. Scripts read and
 * write several keys in one step; they build no key names from the prefix unless they say so,
 * and assume a standalone Redis (not Cluster: the keys of one call may lie in several slots).
 */
export interface Script<A> {
  readonly name: string
  readonly lua: string
  /** Only carries the reply's type. */
  readonly _reply?: A | undefined
}

export const script = <A>(name: string, lua: string): Script<A> => ({ name, lua })

/** Runs a script with these keys and arguments: the promise of its reply. */
export type RunScript = <A>(script: Script<A>, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) => Promise<A>

/**
 * A connected client (see `connect`) with `scripts` defined on it, and the way to run them:
 * ioredis sends a script's SHA (EVALSHA), and its text again where the server does not know it
 * yet (after a restart, on a new connection). The number of keys is given per call, so a script
 * may take as many as a call needs.
 */
export const connectWithScripts = (
  options: RedisConnectionOptions,
  scripts: ReadonlyArray<Script<unknown>>
): Effect.Effect<{ readonly redis: Redis; readonly run: RunScript }, PortError, Scope.Scope> =>
  Effect.map(connect(options), (redis) => {
    for (const { lua, name } of scripts) redis.defineCommand(name, { lua })
    const commands = redis as unknown as Record<string, (...keysAndArgs: Array<string | number>) => Promise<unknown>>
    const run: RunScript = <A>(script: Script<A>, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) =>
      commands[script.name]!(keys.length, ...keys, ...args) as Promise<A>
    return { redis, run }
  })
