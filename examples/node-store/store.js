// The PostgreSQL side of the example store: the origin system's tables, node-postgres.
//
//   whatsapp_auth(company_id PK, creds JSONB, updated_at)
//   whatsapp_keys(company_id, key_type, key_id, value JSONB, updated_at, expires_at,
//                 PRIMARY KEY (company_id, key_type, key_id))
//
// The tables come from migrations (the harness creates them when missing). Values are written
// with Baileys' BufferJSON and read back with its reviver, so bytes round-trip exactly.
import pg from 'pg'
import { BufferJSON } from './buffer-json.js'

const COMPANY_ID = /^[A-Za-z0-9_-]{1,50}$/
const BATCH_ROWS = 100 // rows per multi-row upsert statement (the origin system's figure)
const DAY_S = 86400
const SHORT_TTL_TYPES = new Set(['lid-mapping', 'pre-key', 'session', 'sender-key'])
// PostgreSQL JSONB cannot hold NUL or a lone UTF-16 surrogate; JSON.stringify writes them as
// \u escapes (an even number of backslashes before them: not an escaped backslash).
const UNSTORABLE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i

// DATABASE_URL is set by whoever runs the store (the harness points it at its database).
// Short timeouts: an outage must fail a call in seconds, not hang it.
export const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.AUTH_STORE_POOL_MAX ?? 10),
  connectionTimeoutMillis: 1500,
  query_timeout: 1500,
  statement_timeout: 1500,
  keepAlive: true
})
// An idle client whose connection broke emits 'error' on the pool; without a listener Node
// would crash the process. The next query opens a new connection.
pool.on('error', () => {})

export function checkCompanyId (companyId) {
  if (typeof companyId !== 'string') {
    throw new TypeError(`company id must be a string of 1 to 50 characters of [A-Za-z0-9_-], got ${companyId === null ? 'null' : typeof companyId}`)
  }
  if (!COMPANY_ID.test(companyId)) {
    throw new RangeError(`company id must be 1 to 50 characters of [A-Za-z0-9_-] (${companyId.length} characters given)`)
  }
}

function checkKey (type, id) {
  if (typeof type !== 'string' || type.length === 0 || type.length > 64) {
    throw new RangeError('key type must be a string of 1 to 64 characters')
  }
  if (typeof id !== 'string' || id.length > 1024 || id.includes('\u0000') || !id.isWellFormed()) {
    throw new RangeError(`key id of type ${type} cannot be stored (not a string, too long, NUL or a lone surrogate)`)
  }
}

function toJson (value, what) {
  const text = JSON.stringify(value, BufferJSON.replacer)
  if (UNSTORABLE.test(text)) {
    throw new RangeError(`${what} holds a NUL character or a lone UTF-16 surrogate, which PostgreSQL JSONB cannot store`)
  }
  return text
}

const fromJson = (text) => JSON.parse(text, BufferJSON.reviver)

// One bound per operation, whatever it waits for: a free pool client (up to the connection
// timeout), then its queries (up to the query timeout each). Without it an operation queued
// behind clients stuck on a dead link failed only after both, ~3 s. A write that hits the
// bound may still commit later: the caller must treat its outcome as unknown (it throws).
const OP_DEADLINE_MS = Number(process.env.AUTH_STORE_OP_DEADLINE_MS ?? 1800)

function bounded (what, promise) {
  let timer
  const expired = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(Object.assign(
      new Error(`${what} did not finish within ${OP_DEADLINE_MS} ms`), { code: 'ETIMEDOUT' })),
    OP_DEADLINE_MS)
  })
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer))
}
const ttlSeconds = (type) => (SHORT_TTL_TYPES.has(type) ? 7 : 14) * DAY_S

/** The stored creds, or undefined when the company has none (absent is not an error). */
export async function readCreds (companyId) {
  const { rows } = await bounded('reading creds', pool.query('SELECT creds::text AS creds FROM whatsapp_auth WHERE company_id = $1', [companyId]))
  return rows.length ? fromJson(rows[0].creds) : undefined
}

export async function writeCreds (companyId, creds) {
  const text = toJson(creds, 'creds')
  await bounded('saving creds', pool.query(
    `INSERT INTO whatsapp_auth (company_id, creds, updated_at) VALUES ($1, $2::jsonb, now())
     ON CONFLICT (company_id) DO UPDATE SET creds = EXCLUDED.creds, updated_at = now()`,
    [companyId, text]))
}

/** { id: value } of the ids that exist; missing ids are omitted. */
export async function getKeys (companyId, type, ids) {
  checkKey(type, '')
  const { rows } = await bounded(`reading ${type} keys`, pool.query(
    'SELECT key_id, value::text AS value FROM whatsapp_keys WHERE company_id = $1 AND key_type = $2 AND key_id = ANY($3::text[])',
    [companyId, type, ids]))
  const out = {}
  for (const row of rows) out[row.key_id] = fromJson(row.value)
  return out
}

/** One transaction: every truthy value upserted (100 rows a statement), every falsy one deleted. */
export async function setKeys (companyId, data) {
  const upserts = []
  const deletes = []
  for (const [type, entries] of Object.entries(data)) {
    for (const [id, value] of Object.entries(entries ?? {})) {
      checkKey(type, id)
      if (value) upserts.push([type, id, toJson(value, `value of ${type} ${id.slice(0, 40)}`)])
      else deletes.push([type, id])
    }
  }
  if (!upserts.length && !deletes.length) return
  await bounded('writing keys', writeKeys(companyId, upserts, deletes))
}

async function writeKeys (companyId, upserts, deletes) {
  const client = await pool.connect()
  // A checked-out client whose connection breaks emits 'error' on itself, and the pool's
  // listener only covers idle clients: without this one, an outage mid-transaction crashes the
  // process (the harness's chaos suite caught exactly that in this example's first version).
  let broken = false
  const onError = () => { broken = true }
  client.on('error', onError)
  try {
    await client.query('BEGIN')
    for (let i = 0; i < upserts.length; i += BATCH_ROWS) {
      const batch = upserts.slice(i, i + BATCH_ROWS)
      const params = [companyId]
      const rows = batch.map(([type, id, text]) => {
        params.push(type, id, text, ttlSeconds(type))
        const n = params.length
        return `($1, $${n - 3}, $${n - 2}, $${n - 1}::jsonb, now(), now() + $${n}::int * interval '1 second')`
      })
      await client.query(
        `INSERT INTO whatsapp_keys (company_id, key_type, key_id, value, updated_at, expires_at)
         VALUES ${rows.join(', ')}
         ON CONFLICT (company_id, key_type, key_id) DO UPDATE
         SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at`,
        params)
    }
    if (deletes.length) {
      await client.query(
        `DELETE FROM whatsapp_keys WHERE company_id = $1
         AND (key_type, key_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
        [companyId, deletes.map(d => d[0]), deletes.map(d => d[1])])
    }
    await client.query('COMMIT')
  } catch (err) {
    broken = true
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.off('error', onError)
    client.release(broken) // a client that failed mid-transaction is not reused
  }
}

export async function clearKeys (companyId) {
  await bounded('clearing keys', pool.query('DELETE FROM whatsapp_keys WHERE company_id = $1', [companyId]))
}

export async function close () {
  await pool.end()
}
