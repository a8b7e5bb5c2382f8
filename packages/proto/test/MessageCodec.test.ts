import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf"
import { assert, describe, it } from "@effect/vitest"
import { UserId } from "@im/domain/Ids"
import type { Delivery } from "@im/domain/Message"
import { numberedMessage } from "@im/ports/testing/Fixtures"
import { Effect } from "effect"
import { DeliverRequestSchema } from "../src/gen/im/gateway/v1/gateway_pb.ts"
import { deliveriesFromProto, deliveriesToProto, messageToProto } from "../src/MessageCodec.ts"

const alice = UserId.make("u_alice")
const bob = UserId.make("u_bob")
const carol = UserId.make("u_carol")

/** Over the wire and back, as a gateway's Deliver gets it. */
const wire = (request: MessageInitShape<typeof DeliverRequestSchema>) =>
  fromBinary(DeliverRequestSchema, toBinary(DeliverRequestSchema, create(DeliverRequestSchema, request)))

describe("deliveries on the wire (DeliveryBatch)", () => {
  const first = numberedMessage(1, alice, bob)
  const second = numberedMessage(2, bob, alice)
  // A message's receiver's and sender's entries, and a third user's (as a group's would be).
  const deliveries: Array<Delivery> = [
    { user_id: bob, seq: 7, message: first },
    { user_id: alice, seq: 3, message: first },
    { user_id: carol, seq: 1, message: first },
    { user_id: alice, seq: 4, message: second }
  ]

  it.effect("carries each message once, and gives back every entry in order, its message shared", () =>
    Effect.gen(function*() {
      const batch = deliveriesToProto(deliveries)
      assert.deepStrictEqual(batch.messages?.map((message) => message.serverId), ["m_1", "m_2"])
      assert.deepStrictEqual(batch.entries?.map((entry) => entry.messageIndex), [0, 0, 0, 1])

      const back = yield* deliveriesFromProto([], wire({ batch }).batch)
      assert.deepStrictEqual(back, deliveries)
      assert.strictEqual(back[0]!.message, back[2]!.message)
    }))

  it.effect("still takes deliveries one by one (older senders), before the batch's", () =>
    Effect.gen(function*() {
      const request = wire({ deliveries: [{ userId: alice, seq: 4n, message: messageToProto(second) }], batch: deliveriesToProto(deliveries.slice(0, 1)) })
      const back = yield* deliveriesFromProto(request.deliveries, request.batch)
      assert.deepStrictEqual(back, [deliveries[3], deliveries[0]])
    }))

  it.effect("refuses an entry naming no message of the batch, or a bad user id, as INVALID_ARGUMENT", () =>
    Effect.gen(function*() {
      const { messages } = deliveriesToProto(deliveries)
      const outOfRange = wire({ batch: { messages, entries: [{ userId: bob, seq: 1n, messageIndex: 2 }] } })
      const error = yield* Effect.flip(deliveriesFromProto([], outOfRange.batch))
      assert.strictEqual(error.code, 3)
      assert.include(error.message, "entries[0]: message_index 2 is not below the 2 messages")

      const badUser = wire({ batch: { messages, entries: [{ userId: "", seq: 1n, messageIndex: 0 }] } })
      assert.include((yield* Effect.flip(deliveriesFromProto([], badUser.batch))).message, "user_id")
    }))
})
