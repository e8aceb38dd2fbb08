// kafkajs driver: one operation per process. Reads a JSON request on stdin and
// prints one line "@@RESULT@@ {json}" on stdout (same protocol as common.py).
'use strict'

const path = require('path')
const modules = path.join(__dirname, '..', 'node_modules')
const { Kafka, logLevel, CompressionTypes, CompressionCodecs, PartitionAssigners } = require(path.join(modules, 'kafkajs'))

const RESULT_MARK = '@@RESULT@@ '
const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }

// Optional codec packages; one that fails to load turns its codec into a skip.
const codecTrouble = { zstd: 'no zstd codec package installed (the available one needs a native build)' }
try {
  CompressionCodecs[CompressionTypes.Snappy] = require(path.join(modules, 'kafkajs-snappy'))
  CODECS.snappy = CompressionTypes.Snappy
} catch (e) { codecTrouble.snappy = e.message }
try {
  const LZ4 = require(path.join(modules, 'kafkajs-lz4'))
  CompressionCodecs[CompressionTypes.LZ4] = new LZ4().codec
  CODECS.lz4 = CompressionTypes.LZ4
} catch (e) { codecTrouble.lz4 = e.message }

class Skip extends Error {}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const enc = s => (s === null || s === undefined ? null : Buffer.from(s, 'utf8'))
const dec = b => (b === null || b === undefined ? null : Buffer.from(b).toString('utf8'))

function client (req) {
  return new Kafka({
    clientId: 'klamm-compat-kafkajs',
    brokers: [req.bootstrap],
    logLevel: logLevel.ERROR,
    retry: { retries: 3 },
    requestTimeout: 10000
  })
}

// kafkajs only consumes through consumer groups. To fetch by partition and
// offset without a group we use its cluster object, which its own consumer
// and admin are built on; it is reachable only through a private symbol.
function rawCluster (kafka) {
  const sym = Object.getOwnPropertySymbols(kafka).find(s => s.description === 'private:Kafka:createCluster')
  if (!sym) throw new Skip('this kafkajs version does not expose its cluster object')
  return kafka[sym]({ allowAutoTopicCreation: true })
}

function deadline (req, margin = 2000) {
  return Date.now() + Math.max(1000, (req.timeout || 30) * 1000 - margin)
}

function headersOut (headers) {
  const out = []
  for (const [k, v] of Object.entries(headers || {})) {
    if (Array.isArray(v)) v.forEach(x => out.push([k, dec(x)]))
    else out.push([k, dec(v)])
  }
  return out
}

function messageOut (partition, m) {
  return {
    partition,
    offset: Number(m.offset),
    key: dec(m.key),
    value: dec(m.value),
    headers: headersOut(m.headers),
    timestamp: Number(m.timestamp)
  }
}

async function withAdmin (req, fn) {
  const admin = client(req).admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

async function withCluster (req, fn) {
  const cluster = rawCluster(client(req))
  await cluster.connect()
  try {
    return await fn(cluster)
  } finally {
    await cluster.disconnect()
  }
}

const ops = {}

ops.probe = async () => ({ version: require(path.join(modules, 'kafkajs', 'package.json')).version })

ops.list_topics = req => withAdmin(req, async admin => {
  const cluster = await admin.describeCluster()
  const md = await admin.fetchTopicMetadata()
  const topics = {}
  for (const t of md.topics) topics[t.name] = { partitions: t.partitions.length, error: null }
  return {
    brokers: cluster.brokers.map(b => ({ id: b.nodeId, host: b.host, port: b.port })),
    topics
  }
})

// Same path as a producer: may auto-create the topic.
// A broker that creates the topic in the background (Kafka does) answers the first requests
// with a retriable error such as UNKNOWN_TOPIC_OR_PARTITION: ask again until the deadline.
ops.topic_metadata = req => withCluster(req, async cluster => {
  const until = deadline(req)
  for (let added = false; ; ) {
    try {
      if (!added) {
        await cluster.addTargetTopic(req.topic)
        added = true
      } else {
        await cluster.refreshMetadata()
      }
      const parts = cluster.findTopicPartitionMetadata(req.topic)
      if (parts.length && parts.every(p => p.leader >= 0)) return { partitions: parts.length }
    } catch (e) {
      if (!e.retriable || Date.now() > until) throw e
    }
    if (Date.now() > until) throw new Error('no usable metadata for ' + req.topic)
    await sleep(200)
  }
})

ops.create_topic = req => withAdmin(req, async admin => {
  const created = await admin.createTopics({
    topics: [{ topic: req.topic, numPartitions: req.partitions, replicationFactor: 1 }],
    waitForLeaders: true
  })
  // kafkajs turns TOPIC_ALREADY_EXISTS into a false return instead of an error.
  if (!created) throw new Error('TOPIC_ALREADY_EXISTS (createTopics returned false)')
  return {}
})

ops.create_partitions = req => withAdmin(req, async admin => {
  await admin.createPartitions({ topicPartitions: [{ topic: req.topic, count: req.count }] })
  return {}
})

ops.delete_topic = req => withAdmin(req, async admin => {
  await admin.deleteTopics({ topics: [req.topic] })
  return {}
})

ops.produce = async req => {
  const codec = req.codec || 'none'
  if (!(codec in CODECS)) throw new Skip(`kafkajs cannot use ${codec}: ${codecTrouble[codec]}`)
  const producer = client(req).producer({
    idempotent: !!req.idempotent,
    maxInFlightRequests: req.idempotent ? 1 : undefined,
    allowAutoTopicCreation: true
  })
  await producer.connect()
  try {
    const messages = req.records.map(r => {
      const m = { key: enc(r.key), value: enc(r.value), headers: {} }
      for (const [k, v] of r.headers) m.headers[k] = enc(v)
      if (r.partition !== null && r.partition !== undefined) m.partition = r.partition
      if (r.timestamp !== null && r.timestamp !== undefined) m.timestamp = String(r.timestamp)
      return m
    })
    // kafkajs puts everything of one send() for a partition into one batch,
    // which the broker rejects above message.max.bytes (as Kafka does), so
    // large inputs go out in several sends.
    const offsets = []
    for (const chunk of chunks(messages, 512 * 1024)) {
      const meta = await producer.send({ topic: req.topic, messages: chunk, acks: -1, compression: CODECS[codec] })
      // One base offset per partition; a partition's records keep send order.
      const next = {}
      for (const m of meta) next[m.partition] = Number(m.baseOffset)
      for (const m of chunk) offsets.push(m.partition === undefined ? null : [m.partition, next[m.partition]++])
    }
    return { offsets, timestamps_set: true }
  } finally {
    await producer.disconnect()
  }
}

function chunks (messages, maxBytes) {
  const out = [[]]
  let size = 0
  for (const m of messages) {
    const n = (m.value ? m.value.length : 0) + (m.key ? m.key.length : 0) + 64
    if (size + n > maxBytes && out[out.length - 1].length) {
      out.push([])
      size = 0
    }
    out[out.length - 1].push(m)
    size += n
  }
  return out
}

ops.consume = req => withCluster(req, async cluster => {
  const until = deadline(req)
  await cluster.addTargetTopic(req.topic)
  const leader = cluster.findLeaderForPartitions(req.topic, [req.partition])
  const broker = await cluster.findBroker({ nodeId: Object.keys(leader)[0] })
  const out = []
  let offset = req.offset
  while (out.length < req.count && Date.now() < until) {
    const resp = await broker.fetch({
      replicaId: -1,
      isolationLevel: 1,
      maxWaitTime: 500,
      minBytes: 1,
      topics: [{ topic: req.topic, partitions: [{ partition: req.partition, fetchOffset: String(offset), maxBytes: 1048576 }] }]
    })
    for (const t of resp.responses) {
      for (const p of t.partitions) {
        if (p.errorCode) throw new Error(`fetch error code ${p.errorCode} on ${t.topicName}[${p.partition}]`)
        // A batch may begin before the requested offset.
        for (const m of p.messages) {
          if (Number(m.offset) >= offset) out.push(messageOut(p.partition, m))
        }
      }
    }
    if (out.length) offset = out[out.length - 1].offset + 1
  }
  return { records: out.slice(0, req.count) }
})

ops.list_offsets = req => withAdmin(req, async admin => {
  const p = (await admin.fetchTopicOffsets(req.topic)).find(x => x.partition === req.partition)
  if (!p) throw new Error(`partition ${req.partition} missing from offsets of ${req.topic}`)
  return { earliest: Number(p.low), latest: Number(p.high) }
})

function stableSplit (owned, partitions) {
  if (owned.some(o => !o.length)) return false
  const all = owned.flat().sort((a, b) => a - b)
  return JSON.stringify(all) === JSON.stringify([...partitions].sort((a, b) => a - b))
}

function groupMember (kafka, req, got, owned) {
  const c = kafka.consumer({ groupId: req.group })
  c.on(c.events.GROUP_JOIN, e => {
    owned.splice(0, owned.length, ...(e.payload.memberAssignment[req.topic] || []))
  })
  return {
    c,
    start: async () => {
      await c.connect()
      await c.subscribe({ topic: req.topic, fromBeginning: true })
      await c.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          got.push(messageOut(partition, message))
          await c.commitOffsets([{ topic: req.topic, partition, offset: String(Number(message.offset) + 1) }])
        }
      })
    }
  }
}

// Two members share the topic; records are produced once both hold a disjoint
// part of it; every record must arrive exactly once; offsets are committed.
ops.group_split = async req => {
  const until = deadline(req)
  const kafka = client(req)
  const got = [[], []]
  const owned = [[], []]
  const members = [0, 1].map(i => groupMember(kafka, req, got[i], owned[i]))
  try {
    await Promise.all(members.map(m => m.start()))
    const parts = [...Array(req.partitions).keys()]
    let stableSince = null
    for (;;) {
      if (stableSplit(owned, parts)) {
        stableSince = stableSince || Date.now()
        if (Date.now() - stableSince > 1000) break
      } else stableSince = null
      if (Date.now() > until) throw new Error('members never split the partitions: ' + JSON.stringify(owned))
      await sleep(100)
    }
    await ops.produce({ ...req, timeout: (until - Date.now()) / 1000 })
    while (got[0].length + got[1].length < req.records.length && Date.now() < until) await sleep(100)
    const split = owned.map(o => [...o])
    return { members: [0, 1].map(i => ({ partitions: split[i], records: got[i] })) }
  } finally {
    await Promise.all(members.map(m => m.c.disconnect()))
  }
}

// A fresh member of the group must start at the committed offsets.
ops.group_resume = async req => {
  const until = deadline(req)
  const got = []
  const m = groupMember(client(req), req, got, [])
  try {
    await m.start()
    let quietUntil = null
    while (Date.now() < until) {
      if (got.length >= req.count) {
        // keep consuming briefly so redelivered old records would show up
        quietUntil = quietUntil || Date.now() + (req.linger || 2) * 1000
        if (Date.now() > quietUntil) break
      }
      await sleep(100)
    }
    return { records: got }
  } finally {
    await m.c.disconnect()
  }
}

// kafkajs ships one assigner, round-robin ("RoundRobinAssigner" on the wire).
const ASSIGNERS = { roundrobin: PartitionAssigners.roundRobin }
const HEARTBEAT_MS = 300 // as in common.py: rebalances reach members quickly
const SETTLE_MS = 1000

ops.group_strategies = async () => ({ strategies: Object.keys(ASSIGNERS) })

// One group member. kafkajs reports each new assignment whole (GROUP_JOIN)
// and no revocations; every message is committed before it counts as done.
function assignMember (kafka, req) {
  const m = { owned: [], records: [], done: 0, error: null }
  m.c = kafka.consumer({ groupId: req.group, partitionAssigners: [ASSIGNERS[req.strategy]], heartbeatInterval: HEARTBEAT_MS })
  m.c.on(m.c.events.GROUP_JOIN, e => { m.owned = [...(e.payload.memberAssignment[req.topic] || [])] })
  m.c.on(m.c.events.CRASH, e => { m.error = String(e.payload.error) })
  m.started = (async () => {
    await m.c.connect()
    await m.c.subscribe({ topic: req.topic, fromBeginning: true })
    await m.c.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        m.records.push(messageOut(partition, message))
        await m.c.commitOffsets([{ topic: req.topic, partition, offset: String(Number(message.offset) + 1) }])
        m.done++
      }
    })
  })().catch(e => { m.error = `${e.name}: ${e.message}` })
  return m
}

function balancedSplit (owned, partitions) {
  const sizes = owned.map(o => o.length)
  return stableSplit(owned, partitions) && Math.max(...sizes) - Math.min(...sizes) <= 1
}

// As group_phases in common.py: members join, their split settles, records
// are produced and read; with more_records one more member joins and the same
// follows.
ops.group_assign = async req => {
  const until = deadline(req)
  const kafka = client(req)
  const parts = [...Array(req.partitions).keys()]
  const members = []
  const trouble = () => members.map((m, i) => m.error && `member ${i}: ${m.error}`).filter(Boolean).join('; ')
  const snapshot = () => members.map(m => [...m.owned].sort((a, b) => a - b))

  async function phase (records, join) {
    const marks = members.map(m => [m.records.length, m.done]).concat(Array(join).fill([0, 0]))
    for (let i = 0; i < join; i++) members.push(assignMember(kafka, req))
    let last = null
    let since = 0
    for (;;) {
      const now = JSON.stringify(snapshot())
      if (now !== last || !balancedSplit(snapshot(), parts)) {
        last = now
        since = Date.now()
      } else if (Date.now() - since >= SETTLE_MS) break
      if (trouble()) throw new Error(trouble())
      if (Date.now() > until) throw new Error('assignment never settled to a balanced split: ' + now)
      await sleep(50)
    }
    const owned = snapshot()
    await ops.produce({ ...req, records, timeout: (until - Date.now()) / 1000 })
    const done = () => members.reduce((n, m, i) => n + m.done - marks[i][1], 0)
    while (done() < records.length && !trouble() && Date.now() < until) await sleep(50)
    if (JSON.stringify(snapshot()) !== JSON.stringify(owned)) {
      throw new Error(`assignment changed from ${JSON.stringify(owned)} to ${JSON.stringify(snapshot())} while reading`)
    }
    return { members: members.map((m, i) => ({ partitions: owned[i], records: m.records.slice(marks[i][0]), revoked: null })) }
  }

  try {
    const phases = [await phase(req.records, req.members)]
    if (req.more_records) phases.push(await phase(req.more_records, 1))
    if (trouble()) throw new Error(trouble())
    return { phases }
  } finally {
    await Promise.all(members.map(m => m.c.disconnect().catch(() => {})))
  }
}

async function main () {
  let input = ''
  for await (const chunk of process.stdin) input += chunk
  const req = JSON.parse(input)
  let result
  const op = ops[req.op]
  if (!op) result = { skip: `operation ${req.op} not implemented by this driver` }
  else {
    try {
      result = (await op(req)) || {}
    } catch (e) {
      if (e instanceof Skip) result = { skip: e.message }
      else {
        console.error(e && e.stack)
        result = { error: `${e.name}: ${e.message}` }
      }
    }
  }
  // Exit explicitly once the result is written: a client may leave timers behind.
  process.stdout.write('\n' + RESULT_MARK + JSON.stringify(result) + '\n', () => process.exit(result.error ? 1 : 0))
}

main()
