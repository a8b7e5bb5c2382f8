import { Context, Effect, Layer } from "effect"
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto"

const KEY_LENGTH = 32
const COST = 16_384

const derive = (password: string, salt: Buffer, cost: number) =>
  Effect.callback<Buffer>((resume) => {
    scrypt(password.normalize("NFKC"), salt, KEY_LENGTH, { N: cost, r: 8, p: 1 }, (error, key) =>
      resume(error === null ? Effect.succeed(key) : Effect.die(error)))
  })

/** Password hashing with scrypt; hashes read `scrypt$<cost>$<salt>$<key>`. */
export class Passwords extends Context.Service<Passwords, {
  readonly hash: (password: string) => Effect.Effect<string>
  readonly verify: (password: string, hash: string) => Effect.Effect<boolean>
}>()("@im/auth/Passwords") {
  static readonly layer = Layer.succeed(Passwords, Passwords.of({
    hash: Effect.fn("Passwords.hash")(function*(password: string) {
      const salt = randomBytes(16)
      const key = yield* derive(password, salt, COST)
      return `scrypt$${COST}$${salt.toString("base64url")}$${key.toString("base64url")}`
    }),
    verify: Effect.fn("Passwords.verify")(function*(password: string, hash: string) {
      const [scheme, cost, salt, key] = hash.split("$")
      if (scheme !== "scrypt" || cost === undefined || salt === undefined || key === undefined) return false
      const expected = Buffer.from(key, "base64url")
      const actual = yield* derive(password, Buffer.from(salt, "base64url"), Number(cost))
      return actual.length === expected.length && timingSafeEqual(actual, expected)
    })
  }))
}
