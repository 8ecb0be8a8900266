// A fast check of a `node:` target before a run starts: import the module (with the sidecar's
// dependency fallback) and look its export up the way sidecar.mjs does, then exit. No database,
// no protocol: a missing `#export` or a syntax error is found in well under a second, before
// PostgreSQL, the fault proxy and the suites are set up.
//
//   node check_export.mjs <module path> <export name>
//
// Prints one JSON line: {"ok": true} | {"ok": false, "stage": "import" | "export", "error": {...}}
import { register } from 'node:module'
import { pathToFileURL } from 'node:url'

const [modulePath, exportName] = process.argv.slice(2)
const reply = (obj) => { process.stdout.write('\n' + JSON.stringify(obj) + '\n'); process.exit(0) }

if (process.env.AUTHSTATE_NODE_DEPS) {
  register('./resolve_hook.mjs', import.meta.url, {
    data: { fallbackParent: pathToFileURL(process.env.AUTHSTATE_NODE_DEPS + '/package.json').href }
  })
}

let mod
try {
  mod = await import(pathToFileURL(modulePath).href)
} catch (e) {
  const where = typeof e?.stack === 'string' ? e.stack.split('\n').slice(0, 6).join('\n') : ''
  reply({ ok: false, stage: 'import', error: { name: e?.name ?? 'Error', code: e?.code, message: String(e?.message ?? e).slice(0, 600), where } })
}

// the same lookup as sidecar.mjs: a named export, else a property of an object default export
const pick = (name) => {
  const v = mod[name]
  if (v !== undefined) return v
  const d = mod.default
  return d && typeof d === 'object' ? d[name] : (name === 'default' ? d : undefined)
}
const factory = pick(exportName)
if (typeof factory === 'function') reply({ ok: true })
const functions = [...new Set([...Object.keys(mod), ...(mod.default && typeof mod.default === 'object' ? Object.keys(mod.default) : [])])]
  .filter(k => typeof pick(k) === 'function')
reply({ ok: false, stage: 'export', error: { name: 'TypeError', message: `export ${exportName} of ${modulePath} is ${factory === undefined ? 'missing' : `a ${typeof factory}, not a function`}`, functions } })
