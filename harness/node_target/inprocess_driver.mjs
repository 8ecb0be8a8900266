// The same store module called in-process by a Node driver: the baseline of the bridge's
// overhead benchmark (scenarios/bench/test_node_bridge_bench.py).
//
//   node inprocess_driver.mjs <module path> <export name>
//
// Commands on stdin, one JSON line each; one JSON line back on stdout per command:
//   {"op": "load", "company": c}                       -> {"ok": true}
//   {"op": "get", "type": t, "ids": [...], "n": N}     -> {"ok": [µs per call, ...]}
//   {"op": "set", "type": t, "count": K, "n": N}       -> {"ok": [µs per call, ...]} (K fresh keys)
// Each call is timed on its own with process.hrtime: the module's work and nothing else.
import { createInterface } from 'node:readline'
import { register } from 'node:module'
import { randomBytes } from 'node:crypto'
import { pathToFileURL } from 'node:url'

const [modulePath, exportName] = process.argv.slice(2)
if (process.env.AUTHSTATE_NODE_DEPS) {
  register('./resolve_hook.mjs', import.meta.url, {
    data: { fallbackParent: pathToFileURL(process.env.AUTHSTATE_NODE_DEPS + '/package.json').href }
  })
}
const mod = await import(pathToFileURL(modulePath).href)
const factory = mod[exportName] ?? mod.default?.[exportName]
const log = console.log
console.log = console.error // the module's output must not mix with the replies
let auth = null

const timed = async (n, fn) => {
  const out = []
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint()
    await fn(i)
    out.push(Number(process.hrtime.bigint() - t) / 1000)
  }
  return out
}

const ops = {
  load: async ({ company }) => { auth = await factory(company); return true },
  get: ({ type, ids, n }) => timed(n, () => auth.state.keys.get(type, ids)),
  set: ({ type, count, n }) => timed(n, (round) => auth.state.keys.set({
    [type]: Object.fromEntries(Array.from({ length: count }, (_, i) => [
      String(i + 1), { public: randomBytes(32), private: randomBytes(32), round }]))
  }))
}

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  const msg = JSON.parse(line)
  try {
    log(JSON.stringify({ ok: await ops[msg.op](msg) }))
  } catch (e) {
    log(JSON.stringify({ error: String(e?.stack ?? e) }))
  }
}
if (typeof mod.close === 'function') await mod.close()
