// Kafka readiness: a real metadata round-trip through the client listener (not just an open port).
// Usage: node ready.mjs BROKERS TIMEOUT_SECONDS   — exits 0 once admin.listTopics() succeeds.
import { Kafka, logLevel } from 'kafkajs'

const [brokers = '127.0.0.1:9092', timeoutSeconds = '60'] = process.argv.slice(2)
const deadline = Date.now() + Number(timeoutSeconds) * 1000
const kafka = new Kafka({
  clientId: 'im-infra-ready',
  brokers: brokers.split(','),
  logLevel: logLevel.NOTHING,
  connectionTimeout: 2000,
  requestTimeout: 5000,
  retry: { retries: 0 },
})

let lastError
while (Date.now() < deadline) {
  const admin = kafka.admin()
  try {
    await admin.connect()
    const topics = await admin.listTopics()
    const cluster = await admin.describeCluster()
    await admin.disconnect()
    console.log(`kafka ready: cluster ${cluster.clusterId}, ${cluster.brokers.length} broker(s), ${topics.length} topic(s)`)
    process.exit(0)
  } catch (e) {
    lastError = e
    await admin.disconnect().catch(() => {})
    await new Promise((r) => setTimeout(r, 500))
  }
}
console.error(`kafka not ready after ${timeoutSeconds}s: ${lastError?.message ?? 'no attempt'}`)
process.exit(1)
