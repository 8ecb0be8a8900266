// The Node side of the bridge: loads the user's auth-state module and answers the harness.
//
//   node sidecar.mjs <module path> <export name> <reply fd> [<working directory>]
//
// Requests arrive on stdin, replies leave on <reply fd> (a pipe the harness passed), one JSON
// object per line, written and read with Baileys' BufferJSON. stdout/stderr are the module's own
// (console.log and loggers cannot corrupt the protocol). The protocol is in PROTOCOL.md.
// When stdin ends (the harness closed it, or died), the module's close() runs and the process
// exits: a sidecar never outlives the process that started it.
import { createInterface } from 'node:readline'
import { register } from 'node:module'
import net from 'node:net'
import { pathToFileURL } from 'node:url'
import { BufferJSON } from './buffer_json.mjs'
import { installTransport, settleCall } from './callback.mjs'

const [modulePath, exportName, replyFd, workDir] = process.argv.slice(2)
if (workDir) process.chdir(workDir)
const CLOSE_BOUND_MS = 10000
const MAX_MESSAGE = 600

const out = new net.Socket({ fd: Number(replyFd), readable: false, writable: true })

// Replies keep the form the module returned. Real bytes (Buffer, Uint8Array) travel as
// BufferJSON; a plain object that only LOOKS like bytes ({type: 'Buffer', data}, or {"0": 12,
// ...}: an un-revived JSON'd Uint8Array, the classic cache bug behind Bad MAC) travels as
// {"\u0000plain": [[key, value], ...]} so the harness sees the object Baileys would get, not
// bytes: BufferJSON alone would turn it into bytes on the way and hide the bug.
const PLAIN = '\u0000plain'
function looksLikeBytes (v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  if (v.type === 'Buffer' && 'data' in v) return true
  const keys = Object.keys(v)
  return keys.length > 0 && keys.every(k => !isNaN(parseInt(k, 10))) &&
    Object.values(v).every(x => typeof x === 'number')
}
function faithful (key, value) {
  const original = this[key]
  if (Buffer.isBuffer(original) || original instanceof Uint8Array) {
    return { type: 'Buffer', data: Buffer.from(original).toString('base64') }
  }
  if (looksLikeBytes(value)) return { [PLAIN]: Object.entries(value) }
  return value
}

const send = (obj) => {
  let line
  try {
    line = JSON.stringify(obj, faithful)
  } catch (e) {
    line = JSON.stringify({ id: obj.id, error: describe(new TypeError(`the module returned a value JSON cannot carry: ${e?.message ?? e}`)) })
  }
  out.write(line + '\n')
}

installTransport(send)

// The error's own code (node-postgres puts PostgreSQL's SQLSTATE there, Node its errno name),
// or the first code down its `cause` chain (a store that wraps the driver's error keeps it).
function codeOf (e) {
  for (let c = e, depth = 0; c && typeof c === 'object' && depth < 4; c = c.cause, depth++) {
    if (c.code !== undefined && c.code !== null) return String(c.code)
  }
  return undefined
}

function describe (err) {
  const e = err instanceof Error ? err : new Error(String(err))
  const d = { name: e.name || 'Error', message: String(e.message ?? '').slice(0, MAX_MESSAGE) }
  const code = codeOf(e)
  if (code !== undefined) d.code = code
  if (e.outcome === 'failed' || e.outcome === 'unknown') d.outcome = e.outcome
  if (typeof e.stack === 'string') d.where = e.stack.split('\n').slice(1, 4).map(s => s.trim()).join(' | ').slice(0, MAX_MESSAGE)
  return d
}

if (process.env.AUTHSTATE_NODE_DEPS) {
  register('./resolve_hook.mjs', import.meta.url, {
    data: { fallbackParent: pathToFileURL(process.env.AUTHSTATE_NODE_DEPS + '/package.json').href }
  })
}

let mod
try {
  mod = await import(pathToFileURL(modulePath).href)
} catch (e) {
  send({ event: 'fatal', error: describe(e) })
  process.stderr.write(`importing ${modulePath} failed:\n${e?.stack ?? e}\n`)
  out.end(() => process.exit(1))
  await new Promise(() => {})
}

const pick = (name) => {
  const v = mod[name]
  if (v !== undefined) return v
  const d = mod.default
  return d && typeof d === 'object' ? d[name] : (name === 'default' ? d : undefined)
}
const factory = pick(exportName)
const closeFn = pick('close')
const snapshotFn = pick('snapshot') // optional: a direct read of a company's durable state
const functions = [...new Set([...Object.keys(mod), ...(mod.default && typeof mod.default === 'object' ? Object.keys(mod.default) : [])])]
  .filter(k => typeof pick(k) === 'function')
if (typeof factory !== 'function') {
  send({ event: 'fatal', error: { name: 'TypeError', message: `export ${exportName} of ${modulePath} is ${factory === undefined ? 'missing' : `a ${typeof factory}, not a function`}`, functions } })
  out.end(() => process.exit(1))
  await new Promise(() => {})
}

const handles = new Map()
let nextHandle = 1
let closing = null

function stateOf (handle) {
  const h = handles.get(handle)
  if (!h) throw new Error(`bridge: unknown state handle ${handle} (released or never loaded)`)
  return h
}

function checkContract (r) {
  const problems = []
  if (!r || typeof r !== 'object') problems.push(`it resolved to ${r === null ? 'null' : typeof r}`)
  else {
    if (!r.state || typeof r.state !== 'object') problems.push('no state')
    else {
      if (!r.state.creds || typeof r.state.creds !== 'object') problems.push('no state.creds object')
      if (typeof r.state.keys?.get !== 'function') problems.push('no state.keys.get()')
      if (typeof r.state.keys?.set !== 'function') problems.push('no state.keys.set()')
    }
    if (typeof r.saveCreds !== 'function') problems.push('no saveCreds()')
  }
  if (problems.length) {
    throw new TypeError(`${exportName}(companyId) must resolve to { state: { creds, keys: { get, set } }, saveCreds }: ${problems.join(', ')}`)
  }
}

// null/undefined is how some Baileys stores say "absent"; the harness's surface omits absent ids
const present = (got) => Object.entries(got ?? {}).filter(([, v]) => v !== null && v !== undefined)

// fn over items, `limit` at a time; an item whose call threw becomes { error }
async function bounded (items, limit, fn) {
  const out = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await Promise.resolve().then(() => fn(items[i])).catch((e) => ({ error: describe(e) }))
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit ?? 16, items.length)) }, worker))
  return out
}

async function snapshotOne (company, text) {
  if (typeof snapshotFn !== 'function') throw new TypeError('the module exports no snapshot(companyId)')
  const s = await snapshotFn(company)
  if (!s || typeof s !== 'object') throw new TypeError(`snapshot(companyId) must resolve to { creds, keys }, got ${s === null ? 'null' : typeof s}`)
  const form = text ? (v) => JSON.stringify(v, faithful) : (v) => v
  const keys = Object.entries(s.keys ?? {}).map(([type, entries]) => [type, present(entries).map(([id, v]) => [id, form(v)])])
  return { creds: s.creds == null ? null : form(s.creds), keys }
}

async function readOne (company, keys, text) {
  const r = await factory(company)
  checkContract(r)
  const form = text ? (v) => JSON.stringify(v, faithful) : (v) => v
  // a falsy value (null, 0, false, '') is no value to Baileys: absent
  const got = await Promise.all(keys.map(async ([type, ids]) => [
    type, Object.entries(await r.state.keys.get(type, ids) ?? {}).filter(([, v]) => v).map(([id, v]) => [id, form(v)])]))
  return { creds: form(r.state.creds), keys: got }
}

const ops = {
  ping: async () => ({ pid: process.pid }),
  load: async ({ company }) => {
    const r = await factory(company)
    checkContract(r)
    const handle = nextHandle++
    handles.set(handle, r)
    return {
      handle,
      creds: r.state.creds,
      clear: typeof r.state.keys.clear === 'function',
      delete: typeof r.deleteSession === 'function'
    }
  },
  get: async ({ handle, type, ids }) => present(await stateOf(handle).state.keys.get(type, ids)),
  // A fresh-instance read in one round trip: useX(company), then keys.get per type, concurrently;
  // the state is dropped at once (no handle). keys: [[type, [id, ...]], ...]. With `text`, every
  // value comes as its BufferJSON text (the reader digests each distinct text once).
  read: async ({ company, keys, text }) => readOne(company, keys, text),
  // many companies in one round trip: [[company, keys], ...] -> [{creds, keys} | {error}, ...]
  // (`limit` at a time, like a service's concurrency; a company's error does not fail the rest)
  readMany: async ({ companies, text, limit }) => bounded(companies, limit, ([company, keys]) => readOne(company, keys, text)),
  // The module's optional snapshot(companyId) -> { creds: object | null, keys: { type: { id: value } } }
  snapshot: async ({ company, text }) => snapshotOne(company, text),
  snapshotMany: async ({ companies, text, limit }) => bounded(companies, limit, (company) => snapshotOne(company, text)),
  // delete_company: the deleteSession() that useX(company) returns beside saveCreds
  delete: async ({ company }) => {
    const r = await factory(company)
    checkContract(r)
    if (typeof r.deleteSession !== 'function') throw new TypeError(`${exportName}(companyId) returned no deleteSession()`)
    await r.deleteSession()
    return null
  },
  set: async ({ handle, data }) => {
    const object = Object.fromEntries(data.map(([type, entries]) => [type, Object.fromEntries(entries)]))
    await stateOf(handle).state.keys.set(object)
    return null
  },
  save: async ({ handle, creds }) => {
    const r = stateOf(handle)
    // Baileys mutates state.creds in place (Object.assign on creds.update), then saveCreds()
    const current = r.state.creds
    for (const k of Object.keys(current)) delete current[k]
    Object.assign(current, creds)
    await r.saveCreds()
    return null
  },
  clear: async ({ handle }) => {
    await stateOf(handle).state.keys.clear()
    return null
  },
  release: async ({ handle }) => {
    handles.delete(handle)
    return null
  },
  close: async () => shutdown()
}

// `signal.*` ops: the signal workload's Baileys Signal repository over a loaded state's keys.
// The module comes with `signal.init` (its path: the sidecar knows no workload of its own),
// imported then, so a plain store run never loads Baileys.
let signalEngine = null
async function signalOp (op, msg) {
  if (signalEngine === null) {
    if (op !== 'signal.init' || typeof msg.engine !== 'string') throw new Error('signal engine: call signal.init with its module first')
    signalEngine = await import(pathToFileURL(msg.engine).href)
  }
  return signalEngine.run(op, msg, { stateOf })
}

function shutdown () {
  closing ??= (async () => {
    if (typeof closeFn === 'function') {
      let timer
      await Promise.race([
        Promise.resolve().then(() => closeFn()),
        new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`close() did not finish within ${CLOSE_BOUND_MS} ms`)), CLOSE_BOUND_MS) })
      ]).finally(() => clearTimeout(timer))
    }
    return null
  })()
  return closing
}

async function handle (line) {
  let msg
  try {
    msg = JSON.parse(line, BufferJSON.reviver)
  } catch (e) {
    send({ id: null, error: describe(new SyntaxError(`bridge: unparseable request: ${e.message}`)) })
    return
  }
  if (msg.reply !== undefined) { // the harness answered one of our calls (callback.mjs)
    settleCall(msg)
    return
  }
  const { id, op } = msg
  try {
    let ok
    if (op in ops) ok = await ops[op](msg)
    else if (typeof op === 'string' && op.startsWith('signal.')) ok = await signalOp(op, msg)
    else throw new Error(`bridge: unknown op ${op}`)
    if (id !== undefined && id !== null) send({ id, ok })
  } catch (e) {
    if (id !== undefined && id !== null) send({ id, error: describe(e) })
  }
  if (op === 'close') out.end(() => process.exit(0))
}

send({
  event: 'ready', pid: process.pid, node: process.version, export: exportName,
  close: typeof closeFn === 'function', snapshot: typeof snapshotFn === 'function', functions
})

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => { handle(line) })
rl.on('close', async () => {
  try { await shutdown() } catch (e) { process.stderr.write(`close() failed: ${e?.stack ?? e}\n`) }
  out.end(() => process.exit(0))
  setTimeout(() => process.exit(0), 1000).unref()
})
