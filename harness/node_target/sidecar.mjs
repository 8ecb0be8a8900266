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
const send = (obj) => {
  let line
  try {
    line = JSON.stringify(obj, BufferJSON.replacer)
  } catch (e) {
    line = JSON.stringify({ id: obj.id, error: describe(new TypeError(`the module returned a value JSON cannot carry: ${e?.message ?? e}`)) })
  }
  out.write(line + '\n')
}

installTransport(send)

function describe (err) {
  const e = err instanceof Error ? err : new Error(String(err))
  const d = { name: e.name || 'Error', message: String(e.message ?? '').slice(0, MAX_MESSAGE) }
  if (e.code !== undefined) d.code = String(e.code)
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

const ops = {
  ping: async () => ({ pid: process.pid }),
  load: async ({ company }) => {
    const r = await factory(company)
    checkContract(r)
    const handle = nextHandle++
    handles.set(handle, r)
    return { handle, creds: r.state.creds, clear: typeof r.state.keys.clear === 'function' }
  },
  get: async ({ handle, type, ids }) => {
    const got = await stateOf(handle).state.keys.get(type, ids)
    // null/undefined is how some Baileys stores say "absent"; the harness's surface omits absent ids
    return Object.entries(got ?? {}).filter(([, v]) => v !== null && v !== undefined)
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

// `signal.*` ops: the signal workload's Baileys Signal repository over a loaded state's keys
// (harness/signal/engine.mjs), imported on first use so a plain store run never loads Baileys.
let signalEngine = null
async function signalOp (op, msg) {
  signalEngine ??= await import('../signal/engine.mjs')
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
  close: typeof closeFn === 'function', functions
})

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => { handle(line) })
rl.on('close', async () => {
  try { await shutdown() } catch (e) { process.stderr.write(`close() failed: ${e?.stack ?? e}\n`) }
  out.end(() => process.exit(0))
  setTimeout(() => process.exit(0), 1000).unref()
})
