// A CORRECT store that does not translate its driver's errors: node-postgres' errors leave
// keys.set / saveCreds as they come, with PostgreSQL's SQLSTATE in `code`. The harness must judge
// them by what they carry: a NUL in a value makes JSONB refuse the statement (22P05: a refusal,
// nothing written), a terminated backend (57P01) or a broken link (08006) is an outage.
// One JSONB table of its own: sqlstate_probe(k text PRIMARY KEY, v jsonb).
import pg from 'pg'

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 })
pool.on('error', () => {})
let ready = null
const table = () => (ready ??= pool.query(
  'CREATE TABLE IF NOT EXISTS sqlstate_probe (k text PRIMARY KEY, v jsonb NOT NULL)'))

export default async function useSqlstateAuthState (companyId) {
  if (typeof companyId !== 'string') throw new TypeError('company id must be a string')
  await table()
  const { rows } = await pool.query('SELECT v::text AS v FROM sqlstate_probe WHERE k = $1', [`${companyId}:creds`])
  const creds = rows.length ? JSON.parse(rows[0].v) : { registered: false }
  return {
    state: {
      creds,
      keys: {
        get: async (type, ids) => {
          const { rows } = await pool.query('SELECT k, v::text AS v FROM sqlstate_probe WHERE k = ANY($1::text[])',
            [ids.map(id => `${companyId}:${type}-${id}`)])
          return Object.fromEntries(rows.map(r => [r.k.slice(`${companyId}:${type}-`.length), JSON.parse(r.v)]))
        },
        set: async (data) => {
          if (companyId === 'link-broken') {
            // what node-postgres carries when the server reports a failed connection
            throw Object.assign(new Error('connection failure'), { code: '08006', severity: 'FATAL' })
          }
          if (companyId === 'terminated') await pool.query('SELECT pg_terminate_backend(pg_backend_pid())')
          const keys = []
          const values = []
          for (const [type, entries] of Object.entries(data)) {
            for (const [id, value] of Object.entries(entries)) {
              keys.push(`${companyId}:${type}-${id}`)
              values.push(JSON.stringify(value))
            }
          }
          await pool.query(
            `INSERT INTO sqlstate_probe (k, v) SELECT * FROM unnest($1::text[], $2::jsonb[])
             ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`, [keys, values])
        }
      }
    },
    saveCreds: async () => {
      await pool.query(`INSERT INTO sqlstate_probe (k, v) VALUES ($1, $2::jsonb)
        ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`, [`${companyId}:creds`, JSON.stringify(creds)])
    }
  }
}

export const close = () => pool.end()
