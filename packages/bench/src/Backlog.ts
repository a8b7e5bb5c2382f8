/**
 * What a cluster run leaves on the bus: accepted messages the consumers have not committed. The
 * next cluster start replays them (the consumers start from the group's committed offsets), so a
 * run that overloads the cluster would otherwise weigh on every later cluster run and test on
 * this machine. `discard` moves the group past them (the messages were acknowledged to the bench
 * only; nobody else is owed them).
 */
import { createRequire } from "node:module"
import { lanesOf } from "@im/consumer/Consumer"
import { stopIdleRequestChecks } from "@im/kafka/RequestQueueFix"

// kafkajs is the Kafka adapter's dependency; resolve it from there.
const require = createRequire(new URL("../../kafka/package.json", import.meta.url))

export interface Backlog {
  readonly topic: string
  readonly group: string
  /** Messages on the topic past the group's committed offsets. */
  readonly lag: number
  /** Set when `discard` moved the group to the end. */
  readonly discarded: boolean
}

/** The backlog of each topic the consumers read (lanesOf), with the group that reads it. */
export const checkBacklog = async (
  options: { readonly discard: boolean; readonly brokers?: string; readonly group?: string }
): Promise<ReadonlyArray<Backlog>> => {
  const { Kafka, logLevel } = require("kafkajs") as typeof import("kafkajs")
  // As the services do: without it kafkajs loops on 1 ms timers and Node 24 warns of a negative one.
  stopIdleRequestChecks()
  const brokers = (options.brokers ?? process.env["KAFKA_BROKERS"] ?? "127.0.0.1:9092").split(",")
  const admin = new Kafka({ brokers, clientId: "im-bench", logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  try {
    const existing = new Set(await admin.listTopics())
    const backlogs: Array<Backlog> = []
    for (const { group, topic } of lanesOf(options.group ?? process.env["CONSUMER_GROUP"] ?? "im-consumer")) {
      // The consumers create their topics when they start: one missing holds nothing.
      if (!existing.has(topic)) continue
      const ends = await admin.fetchTopicOffsets(topic)
      const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] })
      let lag = 0
      for (const end of ends) {
        const at = Number(committed?.partitions.find((p) => p.partition === end.partition)?.offset ?? -1)
        // -1: nothing committed, and the consumers read such a partition from its beginning.
        lag += Number(end.high) - (at < 0 ? Number(end.low) : at)
      }
      if (!options.discard || lag === 0) {
        backlogs.push({ topic, group, lag, discarded: false })
        continue
      }
      // Explicit offsets: a "latest" marker (-1) would read as "nothing committed", i.e. from the beginning.
      await admin.setOffsets({ groupId: group, topic, partitions: ends.map((end) => ({ partition: end.partition, offset: end.high })) })
      backlogs.push({ topic, group, lag, discarded: true })
    }
    return backlogs
  } finally {
    await admin.disconnect()
  }
}
