// The signal workload's engine: Baileys' own Signal repository over a loaded state's key store.
//
// Runs inside the sidecar (harness/node_target/sidecar.mjs routes every `signal.*` op here).
// Per company: `makeLibSignalRepository({creds, keys})` over `addTransactionCapability(keys)`,
// as Baileys' socket builds it, where `keys` is the store under test: a Node.js module's own
// `state.keys` (node: targets), or bridge_store.mjs, whose every read and write is answered by
// the Python store through the harness. Nothing is cached here: libsignal's state lives in the
// store, so whatever the store loses or serves stale, libsignal sees.
//
// Each op returns, besides its result, the trace of the store calls it made (digests only: the
// history records them), and its timing (op time, time inside the store). The ops mirror what
// the socket does (lib/Socket/messages-send.js relayMessage, messages-recv.js decrypt and retry
// receipts), reduced to the Signal part: no WhatsApp server, no protobuf message, no usync.
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const silent = {
  level: 'silent',
  trace () {},
  debug () {},
  info () {},
  warn () {},
  error () {},
  fatal () {},
  child () { return silent }
}
// libsignal prints its diagnostics (and, closing a session, the whole session with its keys)
// on the console: dropped, counted; the verdicts carry the errors instead.
const LIBSIGNAL_NOISE = /^(Session error:|Failed to decrypt message with any known session|Closing open session|Closing session|Removing old closed session|Decrypted message with closed session|Session already closed|WARNING: Expected pubkey|Unhandled bucket type|Migrating session|V1 session storage)/
let noise = 0
let escapedReads = 0 // reads of a send op that ran outside its own transaction
let lib = null
let settings = { commitRetries: 10, commitDelayMs: 3000, record: true, storeTimeoutMs: 20000, peerLock: true }
const companies = new Map()

const now = () => process.hrtime.bigint()

// -- digests: the canonical JSON harness.chaos.values.digest hashes (sorted keys, bytes tagged
// as bytes), so a digest taken here equals the one of the value read back in Python
const BYTES_TAG = '\u0000bytes'
function canon (v) {
  if (v === null || v === undefined) return 'null'
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
    return canon({ [BYTES_TAG]: Buffer.from(v).toString('base64') })
  }
  switch (typeof v) {
    case 'string': return JSON.stringify(v)
    case 'number': return JSON.stringify(v)
    case 'boolean': return v ? 'true' : 'false'
    case 'bigint': return v.toString()
    case 'object': break
    default: return 'null'
  }
  if (typeof v.toJSON === 'function') return canon(v.toJSON())
  const skip = (x) => x === undefined || typeof x === 'function' || typeof x === 'symbol'
  if (Array.isArray(v)) return '[' + v.map(x => skip(x) ? 'null' : canon(x)).join(',') + ']'
  const keys = Object.keys(v).filter(k => !skip(v[k])).sort()
  return '{' + keys.map(k => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}'
}

export function digest (value) {
  return createHash('sha256').update(canon(value)).digest('hex').slice(0, 16)
}

// Bytes that came back un-decoded (a {type: 'Buffer', data} object, a JSON'd Uint8Array):
// harness.chaos.values.decoded, so the checker can name the wrong form of a read value.
function bufferLike (v) {
  if (!v || typeof v !== 'object' || Array.isArray(v) || Buffer.isBuffer(v) || v instanceof Uint8Array) return null
  const keys = Object.keys(v)
  if (keys.length === 2 && v.type === 'Buffer' && 'data' in v) {
    if (typeof v.data === 'string') {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v.data) || v.data.length % 4) return null
      return ['Buffer-object', Buffer.from(v.data, 'base64')]
    }
    if (Array.isArray(v.data) && v.data.every(b => Number.isInteger(b) && b >= 0 && b < 256)) {
      return ['Buffer-object', Buffer.from(v.data)]
    }
    return null
  }
  if (keys.length && keys.every(k => /^[0-9]+$/.test(k)) &&
      keys.every(k => Number.isInteger(v[k]) && v[k] >= 0 && v[k] < 256) &&
      keys.every((_, i) => String(i) in v)) {
    return ['numbered-object', Buffer.from(keys.map((_, i) => v[String(i)]))]
  }
  return null
}

function decodedForms (value) {
  const forms = new Set()
  const walk = (node) => {
    const found = bufferLike(node)
    if (found) {
      forms.add(found[0])
      return found[1]
    }
    if (Array.isArray(node)) return node.map(walk)
    if (node && typeof node === 'object' && !Buffer.isBuffer(node) && !(node instanceof Uint8Array)) {
      return Object.fromEntries(Object.entries(node).map(([k, x]) => [k, walk(x)]))
    }
    return node
  }
  const loose = walk(value)
  return forms.size ? [digest(loose), [...forms].sort()] : null
}

const falsy = (v) => v === null || v === undefined || v === false || v === 0 || v === ''

// -- one company ------------------------------------------------------------------------------
class Company {
  constructor (name, jid, auth) {
    this.name = name
    this.jid = jid
    this.auth = auth // the loaded { state: { creds, keys }, saveCreds }
    this.queue = Promise.resolve()
    this.begin()
    this.keys = lib.B.addTransactionCapability(this.recordingKeys(), silent, {
      maxCommitRetries: settings.commitRetries, delayBetweenTriesMs: settings.commitDelayMs
    })
    this.repo = lib.makeLibSignalRepository({ creds: auth.state.creds, keys: this.keys }, silent)
    this.address = this.repo.jidToSignalProtocolAddress(jid)
  }

  get creds () { return this.auth.state.creds }

  begin () {
    this.trace = []
    this.storeNs = 0n
    this.storeFailures = 0
    this.lockWaitNs = 0n
    this.reads = new Map() // what the store returned in this op: the diagnosis reads it
  }

  exclusive (fn) { // one op at a time per company: the trace is the op's own
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => {})
    return run
  }

  note (entry, t0) {
    const t1 = now()
    this.storeNs += t1 - t0
    if (entry.outcome !== 'ok') this.storeFailures++
    if (settings.record) this.trace.push({ ...entry, company: this.name, t0: String(t0), t1: String(t1) })
  }

  recordingKeys () {
    const inner = this.auth.state.keys
    return {
      get: async (type, ids) => {
        if (this.inSend && !this.keys.isInTransaction()) escapedReads++
        const t0 = now()
        let got
        try {
          got = (await bounded(inner.get(type, ids), 'state.keys.get')) ?? {}
        } catch (e) {
          this.note({ f: 'get', keys: ids.map(id => [type, id]), outcome: 'fail', error: errorText(e) }, t0)
          throw fromStore(e)
        }
        const clean = {}
        for (const id of ids) {
          const v = got[id]
          if (v !== null && v !== undefined) clean[id] = v
          this.reads.set(`${type}/${id}`, clean[id])
        }
        const forms = []
        if (settings.record) {
          for (const id of ids) {
            if (falsy(clean[id])) continue
            const found = decodedForms(clean[id])
            if (found) forms.push([type, id, ...found])
          }
        }
        this.note({
          f: 'get',
          keys: ids.map(id => [type, id]),
          result: settings.record ? ids.map(id => falsy(clean[id]) ? null : digest(clean[id])) : null,
          forms,
          outcome: 'ok'
        }, t0)
        return clean
      },
      set: async (data) => {
        const keys = []
        const value = []
        for (const [type, entries] of Object.entries(data)) {
          for (const [id, v] of Object.entries(entries ?? {})) {
            keys.push([type, id])
            value.push(falsy(v) ? null : (settings.record ? digest(v) : ''))
          }
        }
        const t0 = now()
        try {
          await bounded(inner.set(data), 'state.keys.set')
        } catch (e) {
          this.note({ f: 'set', keys, value, outcome: e?.outcome === 'failed' ? 'fail' : 'info', error: errorText(e) }, t0)
          throw fromStore(e)
        }
        this.note({ f: 'set', keys, value, outcome: 'ok' }, t0)
      }
    }
  }

  async saveCreds () {
    const value = settings.record ? digest(this.creds) : ''
    const t0 = now()
    try {
      await bounded(this.auth.saveCreds(), 'saveCreds')
    } catch (e) {
      this.note({ f: 'save', value, outcome: e?.outcome === 'failed' ? 'fail' : 'info', error: errorText(e) }, t0)
      throw fromStore(e)
    }
    this.note({ f: 'save', value, outcome: 'ok' }, t0)
  }

  senderKeyName (group) {
    const cut = this.address.lastIndexOf('.')
    return `${group}::${this.address.slice(0, cut)}::${this.address.slice(cut + 1)}`
  }
}

function bounded (promise, what) {
  let timer
  return Promise.race([
    Promise.resolve(promise),
    new Promise((resolve, reject) => {
      timer = setTimeout(() => {
        const e = new Error(`${what} did not answer within ${settings.storeTimeoutMs} ms`)
        e.name = 'StoreTimeout'
        e.outcome = 'unknown'
        reject(e)
      }, settings.storeTimeoutMs)
    })
  ]).finally(() => clearTimeout(timer))
}

function fromStore (e) {
  if (e && typeof e === 'object') {
    try { e.fromStore = true } catch {}
  }
  return e
}

function errorText (e) {
  const name = e?.name || 'Error'
  return `${name}: ${String(e?.message ?? e)}`.slice(0, 200)
}

// -- bundles ----------------------------------------------------------------------------------
function ownBundle (ctx) {
  const { creds } = ctx
  const pub = lib.B.generateSignalPubKey
  return {
    registration_id: creds.registrationId,
    identity: Buffer.from(pub(creds.signedIdentityKey.public)),
    signed_pre_key: {
      id: creds.signedPreKey.keyId,
      public: Buffer.from(pub(creds.signedPreKey.keyPair.public)),
      signature: Buffer.from(creds.signedPreKey.signature)
    }
  }
}

function toSession (b) {
  return {
    registrationId: b.registration_id,
    identityKey: Buffer.from(b.identity),
    signedPreKey: {
      keyId: b.signed_pre_key.id,
      publicKey: Buffer.from(b.signed_pre_key.public),
      signature: Buffer.from(b.signed_pre_key.signature)
    },
    preKey: b.pre_key ? { keyId: b.pre_key[0], publicKey: Buffer.from(b.pre_key[1]) } : undefined
  }
}

async function nextPreKeys (ctx, count) {
  // Baileys' upload: getNextPreKeys in a transaction, then creds.update -> saveCreds()
  let result
  await ctx.keys.transaction(async () => {
    result = await lib.B.getNextPreKeys({ creds: ctx.creds, keys: ctx.keys }, count)
  }, ctx.jid)
  Object.assign(ctx.creds, result.update)
  await ctx.saveCreds()
  return Object.entries(result.preKeys).map(([id, pair]) =>
    [Number(id), Buffer.from(lib.B.generateSignalPubKey(pair.public))])
}

// -- diagnosis --------------------------------------------------------------------------------
// libsignal answers a `msg` it cannot decrypt with "No matching sessions found for message" and
// prints the reason per session (Bad MAC, a reused counter ...). The reasons, recomputed on a
// copy of the session record the store returned in this op (no store call, nothing stored).
async function diagnose (ctx, from, ciphertext) {
  const address = ctx.repo.jidToSignalProtocolAddress(from)
  const raw = ctx.reads.get(`session/${address}`)
  if (!raw) return ['No session record']
  const { SessionRecord, SessionCipher, ProtocolAddress } = lib.libsignal
  let record
  try {
    record = SessionRecord.deserialize(JSON.parse(JSON.stringify(raw)))
  } catch (e) {
    return [`unreadable session record (${e?.name}: ${e?.message})`]
  }
  const creds = ctx.creds
  const storage = {
    getOurIdentity: () => ({
      privKey: Buffer.from(creds.signedIdentityKey.private),
      pubKey: Buffer.from(lib.B.generateSignalPubKey(creds.signedIdentityKey.public))
    })
  }
  const cipher = new SessionCipher(storage, ProtocolAddress.from(address))
  const causes = []
  for (const session of record.getSessions()) {
    try {
      await cipher.doDecryptWhisperMessage(Buffer.from(ciphertext), session)
      causes.push('decrypts on a copy')
    } catch (e) {
      causes.push(String(e?.message ?? e).slice(0, 120))
    }
  }
  return causes.length ? causes : ['No sessions in the record']
}

async function failure (ctx, e, msg) {
  const out = {
    name: e?.name || 'Error',
    message: String(e?.message ?? e).slice(0, 300),
    store: Boolean(e?.fromStore)
  }
  if (out.message === 'No matching sessions found for message' && msg?.ciphertext && msg?.type === 'msg') {
    try { out.causes = await diagnose(ctx, msg.from, msg.ciphertext) } catch {}
  }
  return out
}

// -- ops --------------------------------------------------------------------------------------
const OPS = {
  // A paired identity, as after QR pairing: creds from initAuthCreds(), uploaded pre-keys.
  'signal.pair': async (ctx, { pre_keys: count }) => {
    const creds = lib.B.initAuthCreds()
    creds.me = { id: ctx.jid, lid: ctx.jid, name: ctx.name }
    creds.registered = true
    const current = ctx.creds
    for (const k of Object.keys(current)) delete current[k]
    Object.assign(current, creds)
    await ctx.saveCreds()
    return { bundle: ownBundle(ctx), pre_keys: await nextPreKeys(ctx, count) }
  },
  'signal.bundle': async (ctx) => ({ bundle: ownBundle(ctx), paired: Boolean(ctx.creds?.me?.id) }),
  'signal.upload': async (ctx, { count }) => ({ pre_keys: await nextPreKeys(ctx, count) }),
  // relayMessage for one device: assertSessions (validateSession, else a bundle), encrypt; in
  // one transaction, as the socket does
  'signal.send': async (ctx, { to, plaintext, bundle }) => ctx.keys.transaction(async () => {
    if (bundle) {
      await ctx.repo.injectE2ESession({ jid: to, session: toSession(bundle) })
    } else {
      const valid = await ctx.repo.validateSession(to)
      if (!valid.exists) return { need_bundle: true, reason: valid.reason }
    }
    const { type, ciphertext } = await ctx.repo.encryptMessage({ jid: to, data: Buffer.from(plaintext) })
    return { type, ciphertext, injected: Boolean(bundle) }
  }, ctx.jid),
  'signal.receive': async (ctx, msg) => {
    const plaintext = await ctx.repo.decryptMessage({ jid: msg.from, type: msg.type, ciphertext: Buffer.from(msg.ciphertext) })
    return { plaintext }
  },
  // relayMessage to a group: sender-key-memory decides who needs the sender key (a
  // distribution message, 1:1-encrypted); `only` is a retry resend to one member
  'signal.group_send': async (ctx, { group, members, plaintext, bundles = {}, only }) => ctx.keys.transaction(async () => {
    const { [group]: stored } = await ctx.keys.get('sender-key-memory', [group])
    const memory = { ...(stored || {}) }
    const devices = only ? [only] : members
    const recipients = devices.filter(jid => !memory[jid] || only)
    return lockPeers(ctx, recipients, async () => {
      const need = []
      for (const jid of recipients) {
        if (bundles[jid]) continue
        const valid = await ctx.repo.validateSession(jid)
        if (!valid.exists) need.push([jid, valid.reason])
      }
      if (need.length) return { need_bundles: need }
      for (const jid of recipients) {
        if (bundles[jid]) await ctx.repo.injectE2ESession({ jid, session: toSession(bundles[jid]) })
      }
      const { ciphertext, senderKeyDistributionMessage } = await ctx.repo.encryptGroupMessage({
        group, meId: ctx.jid, data: Buffer.from(plaintext)
      })
      const skdm = {}
      for (const jid of recipients) {
        const frame = Buffer.concat([Buffer.from('k'), Buffer.from(senderKeyDistributionMessage)])
        skdm[jid] = await ctx.repo.encryptMessage({ jid, data: frame })
        memory[jid] = true
      }
      await ctx.keys.set({ 'sender-key-memory': { [group]: memory } })
      return { ciphertext, skdm: Object.entries(skdm), injected: Object.keys(bundles) }
    })
  }, ctx.jid),
  'signal.group_receive': async (ctx, { group, from, ciphertext, skdm }) => {
    let stage = 'skdm'
    try {
      if (skdm) {
        const frame = await lockPeers(ctx, [from], () => ctx.repo.decryptMessage({
          jid: from, type: skdm.type, ciphertext: Buffer.from(skdm.ciphertext)
        }))
        await ctx.repo.processSenderKeyDistributionMessage({
          item: { groupId: group, axolotlSenderKeyDistributionMessage: Buffer.from(frame).subarray(1) },
          authorJid: from
        })
      }
      stage = 'group'
      const plaintext = await ctx.repo.decryptGroupMessage({ group, authorJid: from, msg: Buffer.from(ciphertext) })
      return { plaintext }
    } catch (e) {
      const failed = await failure(ctx, e, skdm ? { from, ...skdm } : null)
      return { error: { ...failed, stage } }
    }
  },
  // sendMessagesAgain for a group: the sender-key memory is dropped, so every member gets the
  // key again with the next message (Baileys does so on every group retry receipt)
  'signal.forget_memory': async (ctx, { group }) => {
    await ctx.keys.set({ 'sender-key-memory': { [group]: null } })
    return {}
  },
  // a membership change: a new sender key, distributed to the members of the moment
  'signal.rekey': async (ctx, { group }) => {
    await ctx.keys.transaction(async () => {
      await ctx.keys.set({ 'sender-key': { [ctx.senderKeyName(group)]: null }, 'sender-key-memory': { [group]: null } })
    }, ctx.jid)
    return {}
  },
  // sendRetryRequest with keys (retry count > 1): a fresh pre-key for the sender's re-establish
  'signal.retry_keys': async (ctx) => {
    const [preKey] = await nextPreKeys(ctx, 1)
    return { bundle: { ...ownBundle(ctx), pre_key: preKey } }
  },
  'signal.close': async (ctx) => {
    companies.delete(ctx.name)
    return {}
  }
}

async function init ({ baileys_dir: dir, commit_retries: retries, commit_delay_ms: delay, record, store_timeout_ms: storeTimeout, peer_lock: peerLock }) {
  if (!lib) {
    const pkg = path.join(dir, 'node_modules', '@whiskeysockets', 'baileys')
    const B = await import(pathToFileURL(path.join(pkg, 'lib', 'index.js')).href)
    const { makeLibSignalRepository } = await import(pathToFileURL(path.join(pkg, 'lib', 'Signal', 'libsignal.js')).href)
    const require = createRequire(path.join(pkg, 'package.json'))
    lib = { B, makeLibSignalRepository, libsignal: require('libsignal'), version: require('./package.json').version }
    for (const level of ['error', 'warn', 'info', 'log']) {
      const original = console[level]
      console[level] = (...args) => {
        if (typeof args[0] === 'string' && LIBSIGNAL_NOISE.test(args[0])) {
          noise++
          return
        }
        original.apply(console, args)
      }
    }
  }
  settings = {
    commitRetries: retries ?? settings.commitRetries,
    commitDelayMs: delay ?? settings.commitDelayMs,
    record: record ?? settings.record,
    storeTimeoutMs: storeTimeout ?? settings.storeTimeoutMs,
    peerLock: peerLock ?? settings.peerLock
  }
  return { baileys: lib.version, node: process.version }
}

export async function run (op, msg, { stateOf }) {
  if (op === 'signal.init') return init(msg)
  if (!lib) throw new Error('signal engine: call signal.init first')
  if (op === 'signal.stats') return { companies: companies.size, libsignal_console_lines: noise, escaped_reads: escapedReads }
  if (op === 'signal.open') {
    const ctx = new Company(msg.company, msg.jid, stateOf(msg.handle))
    companies.set(msg.company, ctx)
    return { paired: Boolean(ctx.creds?.me?.id) }
  }
  const fn = OPS[op]
  if (!fn) throw new Error(`signal engine: unknown op ${op}`)
  const ctx = companies.get(msg.company)
  if (!ctx) throw new Error(`signal engine: company ${msg.company} is not open`)
  const received = now()
  return ctx.exclusive(() => lockPeers(ctx, peersOf(ctx, op, msg),
    () => runOp(ctx, fn, op, msg, received)))
}

// libsignal queues every session operation in one process-wide queue per *peer address*, and
// Baileys' transactions live in an AsyncLocalStorage: when two accounts of one process work on
// sessions with the same contact at once, one account's job can run in the other's async
// context, outside its own transaction (its reads and writes bypass it, and its commit can then
// overwrite them: a reused counter, "Key used already or never filled"). A multi-tenant Baileys
// service has that hazard; the harness must not, so ops on one peer address wait for each other
// (`escaped_reads` counts reads a send made outside its transaction: 0 with the lock).
function peersOf (ctx, op, msg) {
  // group ops lock inside (only their 1:1 parts enter libsignal's queues)
  if (op === 'signal.send') return [msg.to]
  if (op === 'signal.receive') return [msg.from]
  return []
}

function lockPeers (ctx, jids, fn) {
  if (!settings.peerLock || !jids.length) return fn()
  const asked = now()
  return withPeers(jids.map(j => ctx.repo.jidToSignalProtocolAddress(j)), () => {
    ctx.lockWaitNs += now() - asked
    return fn()
  })
}

const peerLocks = new Map()
async function withPeers (addresses, fn) {
  const releases = []
  for (const a of [...new Set(addresses)].sort()) releases.push(await acquire(a))
  try {
    return await fn()
  } finally {
    for (const release of releases.reverse()) release()
  }
}

function acquire (key) {
  const previous = peerLocks.get(key) ?? Promise.resolve()
  let release
  const held = new Promise(resolve => { release = resolve })
  const chained = previous.then(() => held)
  peerLocks.set(key, chained)
  return previous.then(() => () => {
    release()
    if (peerLocks.get(key) === chained) peerLocks.delete(key)
  })
}

async function runOp (ctx, fn, op, msg, received) {
  ctx.begin()
  ctx.inSend = op === 'signal.send'
  const t0 = now()
  let result
  try {
    result = await fn(ctx, msg)
  } catch (e) {
    result = { error: await failure(ctx, e, op === 'signal.receive' ? msg : null) }
  }
  const lockWait = ctx.lockWaitNs
  const opNs = now() - t0 - lockWait
  return {
    ...result,
    store_failures: ctx.storeFailures,
    trace: ctx.trace,
    timing: { op_ns: Number(opNs), store_ns: Number(ctx.storeNs), wait_ns: Number(t0 - received + lockWait) }
  }
}
