import type { InboxEntry, Message } from "@im/client/Wire"
import { describe, expect, it } from "vitest"
import {
  conversationOf,
  conversationsOf,
  factsOf,
  fileKindOf,
  hasUnreadAfter,
  itemsOf,
  lastSeqOf,
  type PendingSend,
  previewOf
} from "../src/Model.ts"

const me = "u_me"
const bob = "u_bob"

let seq = 0
const entry = (message: Partial<Message> & Pick<Message, "sender_id" | "kind">): InboxEntry => {
  seq++
  return {
    seq,
    message: {
      server_id: `m_${seq}`,
      local_id: `l_${seq}`,
      content_type: "text",
      content: `message ${seq}`,
      create_time: seq * 1000,
      send_time: seq * 1000,
      ...message
    }
  }
}

const notice = (content: object, extra: Partial<Message> = {}) =>
  entry({ sender_id: bob, kind: "notice", content_type: "notice", content: JSON.stringify(content), ...extra })

describe("conversations from the inbox", () => {
  it("files one-to-one messages under the peer, group messages and group notices under the group", () => {
    expect(conversationOf(entry({ sender_id: me, kind: "single", receiver_id: bob }).message, me)).toBe("u:u_bob")
    expect(conversationOf(entry({ sender_id: bob, kind: "single", receiver_id: me }).message, me)).toBe("u:u_bob")
    expect(conversationOf(entry({ sender_id: bob, kind: "group", group_id: "g_1" }).message, me)).toBe("g:g_1")
    expect(conversationOf(notice({ type: "member_left", user_id: bob }, { group_id: "g_1" }).message, me)).toBe("g:g_1")
    // Receipts, recalls and friend events are no conversation's items.
    expect(conversationOf(notice({ type: "read", reader_id: bob, through_server_id: "m_1", through_send_time: 1 }).message, me)).toBeUndefined()
    expect(conversationOf(notice({ type: "friend_accepted", request: {} }).message, me)).toBeUndefined()
  })

  it("lists conversations newest first, with groups that have no message yet", () => {
    const inbox = [
      entry({ sender_id: bob, kind: "single", receiver_id: me, content: "old" }),
      entry({ sender_id: "u_carol", kind: "single", receiver_id: me, content: "newer" })
    ]
    const rows = conversationsOf(inbox, [], me, ["g:g_quiet"])
    expect(rows.map((row) => row.key)).toEqual(["u:u_carol", "u:u_bob", "g:g_quiet"])
    expect(previewOf(rows[0]!.last, (id) => id)).toBe("newer")
    expect(previewOf(rows[2]!.last, (id) => id)).toBe("No messages yet")
  })
})

describe("the items of a conversation and the state of own messages", () => {
  it("shows a send as sending, then failed with its error, until the inbox holds it", () => {
    const pending: PendingSend = { local_id: "l_new", key: "u:u_bob", content_type: "text", content: "hi", create_time: 1, state: "sending" }
    const facts = factsOf([])
    expect(itemsOf("u:u_bob", [], [pending], me, facts)).toMatchObject([{ id: "l_new", state: "sending", content: "hi", mine: true }])
    const failed = { ...pending, state: "failed" as const, error: "Not delivered" }
    expect(itemsOf("u:u_bob", [], [failed], me, facts)).toMatchObject([{ state: "failed", error: "Not delivered" }])

    // Stored (the entry carries the same local_id): one item, sent.
    const stored = entry({ sender_id: me, kind: "single", receiver_id: bob, local_id: "l_new", content: "hi" })
    const items = itemsOf("u:u_bob", [stored], [failed], me, factsOf([stored]))
    expect(items).toHaveLength(1)
    expect(items[0]).toMatchObject({ id: "l_new", state: "sent", server_id: stored.message.server_id })
  })

  it("marks own messages read up to the peer's read receipt, and no further", () => {
    const first = entry({ sender_id: me, kind: "single", receiver_id: bob })
    const second = entry({ sender_id: me, kind: "single", receiver_id: bob })
    const receipt = notice({ type: "read", reader_id: bob, through_server_id: first.message.server_id, through_send_time: first.message.send_time })
    const inbox = [first, second, receipt]
    const states = itemsOf("u:u_bob", inbox, [], me, factsOf(inbox)).map((item) => item.type === "message" && item.state)
    expect(states).toEqual(["read", "sent"])
  })

  it("counts group readers, shows group events in order, and hides recalled content", () => {
    const group = { group_id: "g_1" }
    const created = notice({ type: "group_created", name: "Trip", owner_id: me }, { ...group, sender_id: me })
    const mine = entry({ sender_id: me, kind: "group", ...group, content: "hello all" })
    const theirs = entry({ sender_id: bob, kind: "group", ...group, content: "oops" })
    const recall = notice({ type: "message_recalled", server_id: theirs.message.server_id })
    const read = (reader: string) =>
      notice({ type: "read", reader_id: reader, through_server_id: mine.message.server_id, through_send_time: mine.message.send_time }, group)
    const inbox = [created, mine, theirs, recall, read(bob), read("u_carol")]
    const items = itemsOf("g:g_1", inbox, [], me, factsOf(inbox))
    expect(items.map((item) => item.type)).toEqual(["event", "message", "message"])
    expect(items[1]).toMatchObject({ state: "read", read_by: [bob, "u_carol"] })
    expect(items[2]).toMatchObject({ recalled: true, mine: false })
    expect(previewOf(items[2], (id) => id)).toBe("Message recalled")
  })

  it("knows what marking a conversation read should cover", () => {
    const inbox = [
      entry({ sender_id: bob, kind: "single", receiver_id: me }),
      entry({ sender_id: me, kind: "single", receiver_id: bob }),
      entry({ sender_id: "u_carol", kind: "single", receiver_id: me })
    ]
    expect(lastSeqOf("u:u_bob", inbox, me)).toBe(inbox[1]!.seq)
    expect(hasUnreadAfter("u:u_bob", inbox, me, inbox[0]!.seq - 1)).toBe(true)
    // Only own messages after the read point: nothing to mark.
    expect(hasUnreadAfter("u:u_bob", inbox, me, inbox[0]!.seq)).toBe(false)
  })
})

describe("files", () => {
  it("sends pictures a browser shows as images, other allowed types as files, the rest as octet-stream", () => {
    expect(fileKindOf("image/png")).toEqual({ mime: "image/png", content_type: "image" })
    expect(fileKindOf("image/heic")).toEqual({ mime: "image/heic", content_type: "file" })
    expect(fileKindOf("application/pdf")).toEqual({ mime: "application/pdf", content_type: "file" })
    // Types the server refuses (a browser would run them) go as plain bytes.
    expect(fileKindOf("image/svg+xml")).toEqual({ mime: "application/octet-stream", content_type: "file" })
    expect(fileKindOf("")).toEqual({ mime: "application/octet-stream", content_type: "file" })
  })
})
