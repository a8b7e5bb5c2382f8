import { describe, expect, it } from "vitest"
import { groupEventOf, isGroup, isJoinAnswer } from "../src/Groups.ts"

describe("group wire helpers", () => {
  it("groupEventOf parses the group notices and nothing else", () => {
    const notice = (content: string, group_id?: string) => ({ kind: "notice", content, ...(group_id === undefined ? {} : { group_id }) })
    expect(groupEventOf(notice(`{"type":"member_left","user_id":"u_a"}`, "g_1"))).toEqual({ type: "member_left", user_id: "u_a" })
    expect(groupEventOf(notice(`{"type":"member_left","user_id":"u_a"}`))).toBeUndefined()
    expect(groupEventOf(notice(`{"type":"friend_deleted"}`, "g_1"))).toBeUndefined()
    expect(groupEventOf(notice("not json", "g_1"))).toBeUndefined()
    expect(groupEventOf({ kind: "group", content: `{"type":"member_left"}`, group_id: "g_1" })).toBeUndefined()
  })

  it("answers are checked for shape", () => {
    expect(isGroup({ id: "g", name: "n", owner_id: "u", created_at: 1, join_approval: false })).toBe(true)
    expect(isGroup({ id: "g", name: "n", owner_id: "u", created_at: 1 })).toBe(false)
    expect(isJoinAnswer({ status: "joined" })).toBe(true)
    expect(isJoinAnswer({ status: "pending" })).toBe(false)
    expect(isJoinAnswer({ status: "pending", request: { id: "jr", group_id: "g", user_id: "u", status: "pending", created_at: 1 } })).toBe(true)
  })
})
