import { GatewayId, GroupId, LocalId, ServerId, UserId } from "@im/domain/Ids"
import type { Message } from "@im/domain/Message"

/**
 * Fresh names for every test: the suites run against adapters whose state outlives a test (a
 * shared database, a Kafka cluster), so no test may assume it starts from empty.
 */
export const unique = (prefix: string): string => `${prefix}-${crypto.randomUUID()}`

export const freshUserId = (): UserId => UserId.make(unique("u"))
export const freshServerId = (): ServerId => ServerId.make(unique("s"))
export const freshGroupId = (): GroupId => GroupId.make(unique("g"))
export const freshGatewayId = (): GatewayId => GatewayId.make(unique("gw"))

/** A one-to-one text message with fresh ids; `overrides` replace fields. */
export const makeMessage = (overrides: Partial<Message> = {}): Message => ({
  server_id: freshServerId(),
  local_id: LocalId.make(unique("l")),
  sender_id: freshUserId(),
  kind: "single",
  receiver_id: freshUserId(),
  content_type: "text",
  content: "hello",
  create_time: 1_764_230_400_000,
  send_time: 1_764_230_400_123,
  ...overrides
})

/**
 * The one-to-one text message numbered `n` from `sender` to `receiver`: ids `m_<n>` and
 * `l_<n>`, content `#<n>`, times `n`. For tests that follow messages by number.
 */
export const numberedMessage = (n: number, sender: UserId, receiver: UserId): Message => ({
  server_id: ServerId.make(`m_${n}`),
  local_id: LocalId.make(`l_${n}`),
  sender_id: sender,
  kind: "single",
  receiver_id: receiver,
  content_type: "text",
  content: `#${n}`,
  create_time: n,
  send_time: n
})

/** Sorts a copy by a string key: for comparing results that come back in no particular order. */
export const sortedBy = <A>(items: ReadonlyArray<A>, key: (a: A) => string): Array<A> =>
  [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
