// MongoDB-wire readiness/verification with the repo's `mongodb` driver (7.x needs maxWireVersion >= 9):
// hello, insert, find, unique index (duplicate -> E11000), upsert counter, then drops its scratch db.
// Usage: node check.mjs URL TIMEOUT_SECONDS
import { MongoClient } from 'mongodb'

const [url = 'mongodb://127.0.0.1:27017', timeoutSeconds = '30'] = process.argv.slice(2)
const deadline = Date.now() + Number(timeoutSeconds) * 1000
const assert = (cond, msg) => { if (!cond) throw new Error(`check failed: ${msg}`) }

async function check() {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 2000, connectTimeoutMS: 2000 })
  try {
    await client.connect()
    const hello = await client.db('admin').command({ hello: 1 })
    const db = client.db('im_infra_check')
    await db.dropDatabase()
    const c = db.collection('items')
    await c.createIndex({ key: 1 }, { unique: true, name: 'key_unique' })
    await c.insertOne({ key: 'a', n: 1, at: new Date() })
    const found = await c.find({ key: 'a' }).toArray()
    assert(found.length === 1 && found[0].n === 1, 'find after insert')
    let dup = null
    try { await c.insertOne({ key: 'a', n: 2 }) } catch (e) { dup = e }
    assert(dup?.code === 11000, `duplicate key must fail with 11000, got ${dup?.code ?? 'success'}`)
    const seq = await db.collection('seq').findOneAndUpdate(
      { _id: 'u1' }, { $inc: { seq: 1 } }, { upsert: true, returnDocument: 'after' })
    assert(seq?.seq === 1, 'upsert counter')
    await db.dropDatabase()
    return `maxWireVersion ${hello.maxWireVersion}, insert/find/unique index/upsert OK`
  } finally {
    await client.close().catch(() => {})
  }
}

let lastError
while (Date.now() < deadline) {
  try {
    console.log(`mongo ready: ${await check()}`)
    process.exit(0)
  } catch (e) {
    lastError = e
    if (String(e.message).startsWith('check failed')) break // a real incompatibility, retrying won't help
    await new Promise((r) => setTimeout(r, 500))
  }
}
console.error(`mongo not ready: ${lastError?.message ?? 'no attempt'}`)
process.exit(1)
