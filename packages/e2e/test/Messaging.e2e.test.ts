import type { InboxEntry } from "@im/client/Wire"
import { describe, expect, it } from "vitest"
import { devices } from "./Devices.ts"
import { eventually, makeUser, newestSeq } from "./Raw.ts"
import { useTarget } from "./Target.ts"

const target = useTarget()

const device = devices(() => target)

const contents = (entries: ReadonlyArray<InboxEntry>) => entries.map((entry) => entry.message.content)
const seqs = (entries: ReadonlyArray<InboxEntry>) => entries.map((entry) => entry.seq)

describe(`messaging with SDK clients against ${process.env["IM_E2E_URL"] ?? "standalone"}`, () => {
  it("(a) B offline while A sends 3 messages: B connects, syncs and holds exactly those 3, in order", async () => {
    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    const a = await device(alice, { connect: false })
    await a.client.connect()
    for (const text of ["one", "two", "three"]) {
      const result = await a.client.send({ receiver_id: bob.id, content: text })
      expect(result.server_id).toMatch(/^m_/)
    }
    await eventually(async () => (await newestSeq(target, bob)) === 3, "the 3 entries stored")

    const b = await device(bob, { connect: false })
    await b.client.connect()
    const held = await b.client.messages()
    expect(contents(held)).toEqual(["one", "two", "three"])
    expect(seqs(held)).toEqual([1, 2, 3])
    expect(b.client.seq).toBe(3)
    expect(held.every((entry) => entry.message.sender_id === alice.id)).toBe(true)
  })

  it("(b) both online: B gets the pushes live, and A's second device gets A's own messages", async () => {
    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    const a1 = await device(alice, { connect: false })
    const a2 = await device(alice, { connect: false })
    const b = await device(bob, { connect: false })
    await Promise.all([a1.client.connect(), a2.client.connect(), b.client.connect()])
    if (a1.wsUrl !== undefined) {
      // A cluster: login spreads the devices over its gateways, so the messages cross gateways.
      expect(new Set([a1.wsUrl, a2.wsUrl, b.wsUrl]).size).toBeGreaterThan(1)
    }
    const pullsBefore = b.requests.filter((url) => url.includes("/inbox?")).length

    for (const text of ["hi bob", "are you there?"]) await a1.client.send({ receiver_id: bob.id, content: text })
    await b.client.send({ receiver_id: alice.id, content: "yes" })

    await eventually(() => b.received.length === 3 && a2.received.length === 3, "3 entries at bob and at alice's 2nd device")
    expect(contents(b.received)).toEqual(["hi bob", "are you there?", "yes"])
    expect(contents(a2.received)).toEqual(["hi bob", "are you there?", "yes"])
    expect(seqs(a2.received)).toEqual([1, 2, 3])
    // Delivered by push: no pull after the initial sync.
    expect(b.requests.filter((url) => url.includes("/inbox?")).length).toBe(pullsBefore)
    // The sending device holds its own messages once, matched by local_id.
    await eventually(() => a1.received.length === 3, "alice's 1st device")
    expect(contents(await a1.client.messages())).toEqual(["hi bob", "are you there?", "yes"])
  })

  it("(c) a push dropped on purpose is detected from the next push and pulled", async () => {
    const alice = await makeUser(target, "alice")
    const bob = await makeUser(target, "bob")
    const a = await device(alice, { connect: false })
    const b = await device(bob, { connect: false })
    await Promise.all([a.client.connect(), b.client.connect()])
    const requestsBefore = b.requests.length

    await a.client.send({ receiver_id: bob.id, content: "__drop_push__ you will not see this pushed" })
    await a.client.send({ receiver_id: bob.id, content: "this one is pushed" })

    await eventually(() => b.received.length === 2, "both entries at bob")
    expect(contents(await b.client.messages())).toEqual(["__drop_push__ you will not see this pushed", "this one is pushed"])
    expect(b.client.seq).toBe(2)
    // The first entry reached bob through a pull of the gap (0, 1], triggered by the push of seq 2.
    const pulls = b.requests.slice(requestsBefore).filter((url) => url.includes("/inbox?"))
    expect(pulls).toHaveLength(1)
    expect(pulls[0]).toContain("after=0")
    expect(pulls[0]).toContain("until=1")
    // Events come in the order entries are stored: the push of seq 2, then the pulled seq 1.
    expect(seqs(b.received)).toEqual([2, 1])
  })
})
