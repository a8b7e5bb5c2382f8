import { assert } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import { type UserRecord, UserStore } from "../src/UserStore.ts"
import { freshUserId } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

/** A fresh account: letters and digits, mixed case, within the 3-32 characters allowed. */
const freshAccount = () => `Ac_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`

/** A fresh email, mixed case. */
const freshEmail = () => `Ada.${crypto.randomUUID().slice(0, 13)}@Example.org`

const makeUser = (overrides: Partial<UserRecord> = {}): UserRecord => ({
  id: freshUserId(),
  account: freshAccount(),
  name: "Ada Lovelace 🧮",
  created_at: 1_764_230_400_000,
  password_hash: "$scrypt$N=16384,r=8,p=1$c2FsdA$aGFzaA",
  ...overrides
})

/**
 * The UserStore contract: accounts and emails unique regardless of case, the secret and the email
 * kept out of the public view.
 */
export const userStoreSuite = (name: string, adapter: Layer.Layer<UserStore, unknown>, options: SuiteOptions = {}) =>
  describeAdapter(`UserStore conformance: ${name}`, adapter, options, (it) => {
    it.effect("create, then find by account in any case", () =>
      Effect.gen(function*() {
        const users = yield* UserStore
        const user = makeUser()
        yield* users.create(user)
        assert.deepStrictEqual(yield* users.findByAccount(user.account), Option.some(user))
        assert.deepStrictEqual(yield* users.findByAccount(user.account.toUpperCase()), Option.some(user))
        assert.deepStrictEqual(yield* users.findByAccount(user.account.toLowerCase()), Option.some(user))
      }))

    it.effect("findById gives the public view, without the password hash", () =>
      Effect.gen(function*() {
        const users = yield* UserStore
        const { password_hash: _, ...publicView } = makeUser()
        yield* users.create({ ...publicView, password_hash: "secret-hash" })
        const found = yield* users.findById(publicView.id)
        assert.deepStrictEqual(found, Option.some(publicView))
        assert.isFalse("password_hash" in Option.getOrThrow(found))
      }))

    it.effect("a taken account, in any case, fails with AccountTaken and changes nothing", () =>
      Effect.gen(function*() {
        const users = yield* UserStore
        const original = makeUser()
        yield* users.create(original)
        const rival = makeUser({ account: original.account.toUpperCase(), name: "Someone Else" })
        const error = yield* Effect.flip(users.create(rival))
        assert.strictEqual(error._tag, "AccountTaken")
        assert.deepStrictEqual(yield* users.findByAccount(original.account), Option.some(original))
        assert.isTrue(Option.isNone(yield* users.findById(rival.id)))

        const exact = yield* Effect.flip(users.create(makeUser({ account: original.account })))
        assert.strictEqual(exact._tag, "AccountTaken")
      }))

    it.effect("unknown accounts and ids are absent", () =>
      Effect.gen(function*() {
        const users = yield* UserStore
        assert.isTrue(Option.isNone(yield* users.findByAccount(freshAccount())))
        assert.isTrue(Option.isNone(yield* users.findById(freshUserId())))
      }))

    it.effect("existing picks the ids that belong to a user", () =>
      Effect.gen(function*() {
        const users = yield* UserStore
        const [a, b] = [makeUser(), makeUser()]
        yield* users.create(a)
        yield* users.create(b)
        const stranger = freshUserId()
        const found = yield* users.existing([a.id, stranger, b.id, a.id])
        assert.deepStrictEqual([...found].sort(), [a.id, b.id].sort())
        assert.strictEqual((yield* users.existing([])).size, 0)
        assert.strictEqual((yield* users.existing([freshUserId()])).size, 0)
      }))

    it.effect("rename changes the name only, seen by every lookup", () =>
      Effect.gen(function*() {
        const users = yield* UserStore
        const user = makeUser()
        yield* users.create(user)
        const { password_hash: _, ...view } = user
        assert.deepStrictEqual(yield* users.rename(user.id, "New Name 👋"), Option.some({ ...view, name: "New Name 👋" }))
        assert.deepStrictEqual(yield* users.findById(user.id), Option.some({ ...view, name: "New Name 👋" }))
        const record = yield* users.findByAccount(user.account)
        assert.deepStrictEqual(Option.map(record, (r) => [r.name, r.password_hash]), Option.some(["New Name 👋", user.password_hash]))
        assert.isTrue(Option.isNone(yield* users.rename(freshUserId(), "nobody")))
      }))

    it.effect("an email is found in any case, shown only in the user's own profile", () =>
      Effect.gen(function*() {
        const users = yield* UserStore
        const user = makeUser({ email: freshEmail(), avatar: "https://example.org/ada.png" })
        yield* users.create(user)
        const { password_hash: _, ...profile } = user
        const { email: __, ...publicView } = profile
        assert.deepStrictEqual(yield* users.findProfile(user.id), Option.some(profile))
        assert.deepStrictEqual(yield* users.findById(user.id), Option.some(publicView))
        assert.deepStrictEqual(yield* users.findByEmail(user.email!.toUpperCase()), Option.some(publicView))
        assert.deepStrictEqual(yield* users.findByEmail(user.email!.toLowerCase()), Option.some(publicView))
        assert.deepStrictEqual(yield* users.findByAccount(user.account), Option.some(user))
        assert.isTrue(Option.isNone(yield* users.findByEmail(freshEmail())))
        assert.isTrue(Option.isNone(yield* users.findProfile(freshUserId())))
        const plain = makeUser()
        yield* users.create(plain)
        assert.isFalse("email" in Option.getOrThrow(yield* users.findProfile(plain.id)))
      }))

    it.effect("a taken email, in any case, fails with EmailTaken and stores nothing", () =>
      Effect.gen(function*() {
        const users = yield* UserStore
        const original = makeUser({ email: freshEmail() })
        yield* users.create(original)
        const rival = makeUser({ email: original.email!.toUpperCase() })
        const error = yield* Effect.flip(users.create(rival))
        assert.strictEqual(error._tag, "EmailTaken")
        assert.isTrue(Option.isNone(yield* users.findById(rival.id)))
        assert.isTrue(Option.isNone(yield* users.findByAccount(rival.account)))
        assert.deepStrictEqual(Option.map(yield* users.findByEmail(original.email!), (u) => u.id), Option.some(original.id))
      }))

    it.effect("update changes the given fields at once; null removes an avatar or an email", () =>
      Effect.gen(function*() {
        const users = yield* UserStore
        const user = makeUser({ avatar: "files/old.png" })
        yield* users.create(user)
        const { password_hash: _, ...profile } = user
        const email = freshEmail()
        const updated = yield* users.update(user.id, { name: "Ada", avatar: "https://example.org/new.png", email })
        const expected = { ...profile, name: "Ada", avatar: "https://example.org/new.png", email }
        assert.deepStrictEqual(updated, Option.some(expected))
        assert.deepStrictEqual(yield* users.findProfile(user.id), Option.some(expected))
        assert.deepStrictEqual(Option.map(yield* users.findByEmail(email), (u) => u.id), Option.some(user.id))

        // Only what is given changes; the own email again, in another case, is no conflict.
        const again = yield* users.update(user.id, { email: email.toUpperCase() })
        assert.deepStrictEqual(again, Option.some({ ...expected, email: email.toUpperCase() }))

        const cleared = yield* users.update(user.id, { avatar: null, email: null })
        const { avatar: _a, email: _e, ...bare } = expected
        assert.deepStrictEqual(cleared, Option.some(bare))
        assert.deepStrictEqual(yield* users.findProfile(user.id), Option.some(bare))
        assert.isTrue(Option.isNone(yield* users.findByEmail(email)))
        // The freed email can be someone else's now.
        yield* users.create(makeUser({ email }))
        assert.isTrue(Option.isNone(yield* users.update(freshUserId(), { name: "nobody" })))
      }))

    it.effect("update to another user's email fails with EmailTaken and changes nothing", () =>
      Effect.gen(function*() {
        const users = yield* UserStore
        const owner = makeUser({ email: freshEmail() })
        const other = makeUser({ email: freshEmail(), avatar: "files/a.png" })
        yield* users.create(owner)
        yield* users.create(other)
        const error = yield* Effect.flip(users.update(other.id, { name: "Changed", avatar: null, email: owner.email!.toLowerCase() }))
        assert.strictEqual(error._tag, "EmailTaken")
        const { password_hash: _, ...profile } = other
        assert.deepStrictEqual(yield* users.findProfile(other.id), Option.some(profile))
        assert.deepStrictEqual(Option.map(yield* users.findByEmail(other.email!), (u) => u.id), Option.some(other.id))
        assert.deepStrictEqual(Option.map(yield* users.findByEmail(owner.email!), (u) => u.id), Option.some(owner.id))
      }))
  })
