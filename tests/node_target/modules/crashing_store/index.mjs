// BROKEN ON PURPOSE: node-postgres without 'error' listeners (the first version of
// examples/node-store had this bug). When the database drops a connection (the chaos suite's
// sever) while a client sits idle in the pool or checked out between two statements of a
// transaction, an 'error' event nobody listens to kills the Node.js process. Keys and creds live in memory; every call also runs a query so
// the pool holds connections. The harness must report the crash with this process's output.
import pg from 'pg'

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 20, idleTimeoutMillis: 0 })
// Whatever the pool is doing when the sever comes (under 100 companies every client may be busy
// in a query, whose error is handled): a connection that ends kills the process, as an
// unhandled 'error' would, so the crash does not depend on an idle client being there.
pool.on('connect', client => client.on('end', () => {
  throw new Error('Connection terminated unexpectedly (this store has no error handling)')
}))
const creds = new Map()
const keys = new Map()

export default async function useCrashingAuthState (companyId) {
  await pool.query('SELECT 1')
  const state = { creds: structuredClone(creds.get(companyId) ?? { registered: false }) }
  state.keys = {
    get: async (type, ids) => {
      await pool.query('SELECT 1')
      return Object.fromEntries(ids.filter(id => keys.has(`${companyId}/${type}/${id}`))
        .map(id => [id, keys.get(`${companyId}/${type}/${id}`)]))
    },
    set: async (data) => {
      const client = await pool.connect() // BUG: no client.on('error') while checked out
      try {
        await client.query('BEGIN')
        await client.query('SELECT 1')
        await client.query('COMMIT')
      } finally {
        client.release()
      }
      for (const [type, entries] of Object.entries(data)) {
        for (const [id, value] of Object.entries(entries)) {
          if (value) keys.set(`${companyId}/${type}/${id}`, value)
          else keys.delete(`${companyId}/${type}/${id}`)
        }
      }
    }
  }
  return {
    state,
    saveCreds: async () => { await pool.query('SELECT 1'); creds.set(companyId, structuredClone(state.creds)) }
  }
}

export const close = () => pool.end()
