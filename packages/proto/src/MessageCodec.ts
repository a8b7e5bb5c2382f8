import { UserId } from "@im/domain/Ids"
import { Message as DomainMessage } from "@im/domain/Message"
import type { Delivery as DomainDelivery, InboxEntry as DomainInboxEntry } from "@im/domain/Message"
import { Code, ConnectError } from "@connectrpc/connect"
import type { MessageInitShape } from "@bufbuild/protobuf"
import { Effect, Schema } from "effect"
import type {
  Delivery,
  DeliveryBatch,
  DeliveryEntrySchema,
  InboxEntry,
  InboxEntrySchema,
  Message,
  MessageSchema
} from "./gen/im/message/v1/message_pb.ts"

/** Domain ↔ proto for the message types every boundary carries. Proto "" means unset. */

/** Validates a field that came over the wire; a bad one is INVALID_ARGUMENT, naming the field. */
export const decodeField = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S, field: string) => {
  const decode = Schema.decodeUnknownEffect(schema)
  return (value: unknown): Effect.Effect<S["Type"], ConnectError> =>
    decode(value).pipe(Effect.mapError((error) => new ConnectError(`invalid ${field}: ${error.message}`, Code.InvalidArgument)))
}

export const messageToProto = (message: DomainMessage): MessageInitShape<typeof MessageSchema> => ({
  serverId: message.server_id,
  localId: message.local_id,
  senderId: message.sender_id,
  kind: message.kind,
  receiverId: message.receiver_id ?? "",
  groupId: message.group_id ?? "",
  to: message.to === undefined ? [] : [...message.to],
  contentType: message.content_type,
  content: message.content,
  createTime: BigInt(message.create_time),
  sendTime: BigInt(message.send_time),
  recalled: message.recalled === true
})

const decodeMessage = Schema.decodeUnknownEffect(DomainMessage)

/** Validates what came over the wire; a bad message is INVALID_ARGUMENT, never stored. */
export const messageFromProto = (message: Message | undefined) =>
  message === undefined
    ? Effect.fail(new ConnectError("message is missing", Code.InvalidArgument))
    : decodeMessage({
      server_id: message.serverId,
      local_id: message.localId,
      sender_id: message.senderId,
      kind: message.kind,
      ...(message.receiverId === "" ? {} : { receiver_id: message.receiverId }),
      ...(message.groupId === "" ? {} : { group_id: message.groupId }),
      ...(message.to.length === 0 ? {} : { to: message.to }),
      content_type: message.contentType,
      content: message.content,
      create_time: Number(message.createTime),
      send_time: Number(message.sendTime),
      ...(message.recalled ? { recalled: true } : {})
    }).pipe(Effect.mapError((error) => new ConnectError(`invalid message: ${error.message}`, Code.InvalidArgument)))

export const entryToProto = (entry: DomainInboxEntry): MessageInitShape<typeof InboxEntrySchema> => ({
  seq: BigInt(entry.seq),
  message: messageToProto(entry.message)
})

export const entryFromProto = (entry: InboxEntry) =>
  Effect.map(messageFromProto(entry.message), (message): DomainInboxEntry => ({ seq: Number(entry.seq), message }))

const decodeDeliveryUser = decodeField(UserId, "user_id")

/** A delivery sent one by one, with its message (`deliveries`, as older senders sent them). */
const deliveryFromProto = (delivery: Delivery) =>
  Effect.zipWith(
    decodeDeliveryUser(delivery.userId),
    messageFromProto(delivery.message),
    (user_id, message): DomainDelivery => ({ user_id, seq: Number(delivery.seq), message })
  )

/**
 * Deliveries as a DeliveryBatch: each message once (the same message object, as the consumer
 * and `deliveriesFromProto` share it among its entries), each entry naming it by index.
 */
export const deliveriesToProto = (deliveries: ReadonlyArray<DomainDelivery>): {
  readonly messages: Array<MessageInitShape<typeof MessageSchema>>
  readonly entries: Array<MessageInitShape<typeof DeliveryEntrySchema>>
} => {
  const indexes = new Map<DomainMessage, number>()
  const messages: Array<MessageInitShape<typeof MessageSchema>> = []
  const entries = deliveries.map((delivery) => {
    let index = indexes.get(delivery.message)
    if (index === undefined) {
      indexes.set(delivery.message, index = messages.length)
      messages.push(messageToProto(delivery.message))
    }
    return { userId: delivery.user_id, seq: BigInt(delivery.seq), messageIndex: index }
  })
  return { messages, entries }
}

/**
 * The deliveries of a request: those sent one by one (`deliveries`, older senders), then those
 * of its DeliveryBatch, each message checked once and shared by its entries. An entry naming
 * no message of the batch is INVALID_ARGUMENT.
 */
export const deliveriesFromProto = (one: ReadonlyArray<Delivery>, batch: DeliveryBatch | undefined) =>
  Effect.gen(function*() {
    const single = yield* Effect.forEach(one, deliveryFromProto)
    if (batch === undefined || batch.entries.length === 0) return single
    const messages = yield* Effect.forEach(batch.messages, messageFromProto)
    const batched = yield* Effect.forEach(batch.entries, (entry, i) => {
      const message = messages[entry.messageIndex]
      return message === undefined
        ? Effect.fail(
          new ConnectError(
            `invalid entries[${i}]: message_index ${entry.messageIndex} is not below the ${messages.length} messages`,
            Code.InvalidArgument
          )
        )
        : Effect.map(decodeDeliveryUser(entry.userId), (user_id): DomainDelivery => ({ user_id, seq: Number(entry.seq), message }))
    })
    return single.length === 0 ? batched : [...single, ...batched]
  })
