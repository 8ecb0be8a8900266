// A Node.js auth-state module for the bridge's own tests: an in-memory store whose company id
// chooses a misbehaviour. Not a PostgreSQL store (see examples/node-store for that).
import { writeFileSync } from 'node:fs'

console.log('probe: imported (stdout noise must not break the protocol)')

const creds = new Map()
const keys = new Map()
const never = () => new Promise(() => {})

function failing (message, props = {}) {
  return Object.assign(new Error(message), props)
}

export default async function useProbeAuthState (companyId) {
  if (typeof companyId !== 'string') throw new TypeError('company id must be a string')
  if (companyId === 'load-throws') throw failing('cannot load', { code: 'EPROBE' })
  if (companyId === 'load-hangs') return never()
  if (companyId === 'bad-shape') return { state: { creds: {} } }
  if (companyId === 'env') {
    const e = process.env
    return {
      state: {
        creds: {
          database_url: e.DATABASE_URL, pghost: e.PGHOST, pgport: e.PGPORT, pguser: e.PGUSER,
          pgdatabase: e.PGDATABASE, password_is_set: e.PGPASSWORD === 'secret',
          cache_dir: e.AUTHSTATE_CACHE_DIR
        },
        keys: { get: async () => ({}), set: async () => {} }
      },
      saveCreds: async () => {}
    }
  }
  const state = { creds: structuredClone(creds.get(companyId) ?? { fresh: true }) }
  const map = keys.get(companyId) ?? new Map()
  keys.set(companyId, map)
  state.keys = {
    get: async (type, ids) => {
      if (companyId === 'boom') throw failing('read exploded')
      if (companyId === 'hang') return never()
      const out = {}
      for (const id of ids) out[id] = map.get(`${type}/${id}`) ?? null // null = absent, as the file store says
      if (companyId === 'uint8') for (const id of ids) out[id] = new Uint8Array([0, 1, 254, 255])
      // the classic cache bug: bytes handed back as plain objects (JSON.parse without reviver)
      if (companyId === 'undecoded') {
        for (const id of ids) {
          out[id] = {
            buffer: { type: 'Buffer', data: 'AAH+/w==' },
            numbered: JSON.parse(JSON.stringify(new Uint8Array([0, 1]))),
            real: Buffer.from([0, 1, 254, 255])
          }
        }
      }
      return out
    },
    set: async (data) => {
      if (companyId === 'boom') throw failing('write exploded')
      if (companyId === 'boom-failed') throw failing('write refused', { outcome: 'failed' })
      if (companyId === 'hang') return never()
      if (companyId === 'crash') {
        process.stderr.write('probe: fatal: about to die\n')
        process.exit(7)
      }
      if (companyId === 'unhandled') {
        setTimeout(() => { throw new Error('probe: unhandled error in a timer') }, 0)
        return
      }
      for (const [type, entries] of Object.entries(data)) {
        for (const [id, value] of Object.entries(entries)) {
          if (value) map.set(`${type}/${id}`, value)
          else map.delete(`${type}/${id}`)
        }
      }
    },
    clear: async () => map.clear()
  }
  return {
    state,
    saveCreds: async () => {
      if (companyId === 'boom') throw failing('save exploded')
      creds.set(companyId, structuredClone(state.creds))
    }
  }
}

export const useNamedProbe = useProbeAuthState
export const notAFunction = 5

export async function close () {
  if (process.env.PROBE_CLOSE_MARKER) writeFileSync(process.env.PROBE_CLOSE_MARKER, 'closed')
}
