import { Effect, Layer } from "effect"
import { InboxStore } from "../src/InboxStore.ts"
import { PortError } from "../src/PortError.ts"

/**
 * The memory InboxStore, except that the appends whose turn is `true` in `failures` fail (a
 * retryable PortError) and the others succeed; every append's size is pushed to `appends`. A
 * failing append fails after `yieldsFirst` yields, as a round trip to a database would, so
 * that work running beside it gets to go on meanwhile.
 */
export const flakyInbox = (
  failures: ReadonlyArray<boolean>,
  options: { readonly appends?: Array<number>; readonly yieldsFirst?: number } = {}
) =>
  Layer.effect(
    InboxStore,
    Effect.gen(function*() {
      const inner = yield* InboxStore
      let call = 0
      const failure = Effect.andThen(
        Effect.forEach(Array.from({ length: options.yieldsFirst ?? 0 }), () => Effect.yieldNow, { discard: true }),
        Effect.fail(new PortError({ port: "InboxStore", operation: "append", retryable: true }))
      )
      return InboxStore.of({
        ...inner,
        append: (entries) => {
          options.appends?.push(entries.length)
          return failures[call++] === true ? failure : inner.append(entries)
        }
      })
    })
  ).pipe(Layer.provide(InboxStore.layerMemory))
