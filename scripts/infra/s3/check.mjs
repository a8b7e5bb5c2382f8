// S3 readiness/verification with the repo's `minio` client: bucket, 12 MiB multipart upload,
// presigned PUT + GET round trip through fetch, and a wrong-secret request that must be refused.
// Cleans up its scratch bucket. Usage: node check.mjs HOST PORT ACCESS_KEY SECRET_KEY TIMEOUT_SECONDS
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import * as Minio from 'minio'

const [host = '127.0.0.1', port = '9000', accessKey = 'im-minio', secretKey = 'im-minio-secret', timeoutSeconds = '60'] =
  process.argv.slice(2)
const opts = { endPoint: host, port: Number(port), useSSL: false, region: 'us-east-1', pathStyle: true }
// partSize 5 MiB (the S3 minimum) so that 12 MiB really goes through the multipart API.
const s3 = new Minio.Client({ ...opts, accessKey, secretKey, partSize: 5 * 1024 * 1024 })
const bucket = `im-infra-check-${Date.now()}`
const sha = (b) => createHash('sha256').update(b).digest('hex')
const assert = (cond, msg) => { if (!cond) throw new Error(`check failed: ${msg}`) }

async function check() {
  await s3.listBuckets() // signed round trip; retried until the server is up
  await s3.makeBucket(bucket, 'us-east-1')
  try {
    // Fed as a stream of 1 MiB chunks: minio-js splits a stream into partSize parts (a single
    // 12 MiB Buffer would go up as one multipart part).
    const chunks = Array.from({ length: 12 }, () => randomBytes(1024 * 1024))
    const big = Buffer.concat(chunks)
    await s3.putObject(bucket, 'big.bin', Readable.from(chunks), big.length, { 'Content-Type': 'application/octet-stream' })
    const stat = await s3.statObject(bucket, 'big.bin')
    assert(stat.size === big.length, `multipart object size ${stat.size}`)
    assert(/-3"?$/.test(stat.etag), `multipart etag (3 parts) expected, got ${stat.etag}`)
    const got = []
    for await (const c of await s3.getObject(bucket, 'big.bin')) got.push(c)
    assert(sha(Buffer.concat(got)) === sha(big), 'multipart object content')

    const body = Buffer.from('hello via presigned url')
    const putUrl = await s3.presignedPutObject(bucket, 'small.txt', 60)
    const put = await fetch(putUrl, { method: 'PUT', body })
    assert(put.ok, `presigned PUT status ${put.status}`)
    const getUrl = await s3.presignedGetObject(bucket, 'small.txt', 60)
    const get = await fetch(getUrl)
    assert(get.ok && Buffer.from(await get.arrayBuffer()).equals(body), `presigned GET status ${get.status}`)
    const tampered = await fetch(getUrl.replace(/X-Amz-Signature=([0-9a-f])/, (m, c) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`))
    assert(tampered.status === 403, `tampered presigned GET must be 403, got ${tampered.status}`)

    const wrong = new Minio.Client({ ...opts, accessKey, secretKey: 'wrong-secret' })
    let refused = false
    try { await wrong.statObject(bucket, 'small.txt') } catch { refused = true }
    assert(refused, 'a client with a wrong secret must be refused')
    return 'makeBucket, 12 MiB multipart put/get, presigned PUT/GET, auth OK'
  } finally {
    const names = []
    for await (const o of s3.listObjectsV2(bucket, '', true)) names.push(o.name)
    if (names.length) await s3.removeObjects(bucket, names)
    await s3.removeBucket(bucket)
  }
}

const deadline = Date.now() + Number(timeoutSeconds) * 1000
let lastError
while (Date.now() < deadline) {
  try {
    await s3.listBuckets()
    console.log(`s3 ready: ${await check()}`)
    process.exit(0)
  } catch (e) {
    lastError = e
    if (String(e.message).startsWith('check failed') || e.code === 'NotImplemented') break
    await new Promise((r) => setTimeout(r, 500))
  }
}
console.error(`s3 not ready: ${lastError?.code ?? ''} ${lastError?.message ?? 'no attempt'}`)
process.exit(1)
