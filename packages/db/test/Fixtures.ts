import { LocalId, ServerId, UserId } from "@im/domain/Ids"
import type { Message } from "@im/domain/Message"

export const bob = UserId.make("u_bob")

/** Message `n` from alice to bob: ids `m_n` / `l_n`, content `#n`. */
export const message = (n: number, sendTime = n): Message => ({
  server_id: ServerId.make(`m_${n}`),
  local_id: LocalId.make(`l_${n}`),
  sender_id: UserId.make("u_alice"),
  kind: "single",
  receiver_id: bob,
  content_type: "text",
  content: `#${n}`,
  create_time: n,
  send_time: sendTime
})
