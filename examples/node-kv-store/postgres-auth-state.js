// A Baileys auth-state store on ONE table of its own, the way published community stores keep
// it: every value is a row `"<session>:<type>-<id>" -> JSON text`, creds under
// `"<session>:creds"`, written with Baileys' BufferJSON (bytes survive as {type:'Buffer'}).
//
//   CREATE TABLE auth_sessions (session_key text PRIMARY KEY, value text NOT NULL)
//
//   const { state, saveCreds, deleteSession } = await usePostgresAuthState(pool, sessionId)
//
// It knows nothing of the harness (no company ids, no whatsapp_auth / whatsapp_keys): the
// harness reaches it through adapter.js. What makes it correct, where published stores often
// slip: absent creds are fresh ones but never written on load; errors are thrown, never read as
// "absent"; every keys.set is ONE statement (all of it or nothing, no checked-out client whose
// 'error' event could crash the process); deleteSession() matches its own prefix exactly
// (starts_with, not LIKE: `_` and `%` are wildcards there, see like-delete.js).
import { BufferJSON } from '../node-store/buffer-json.js' // a real store imports both from Baileys
import { initAuthCreds } from '../node-store/fresh-creds.js'

const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/
const ensured = new Map() // `${tableName}` per pool -> the promise of its check

const toText = (value) => JSON.stringify(value, BufferJSON.replacer)
const fromText = (text) => JSON.parse(text, BufferJSON.reviver)

/**
 * Create the table if it is missing, once per pool (concurrent first calls share one check).
 * It looks first, so a read-only session never runs DDL; two processes creating it at once
 * both succeed (PostgreSQL reports the loser's CREATE as a duplicate: 23505 / 42P07).
 */
export function ensureTable (pool, tableName = 'auth_sessions') {
  if (!TABLE_NAME.test(tableName)) throw new RangeError(`invalid table name ${JSON.stringify(tableName).slice(0, 80)}`)
  let tables = ensured.get(pool)
  if (!tables) ensured.set(pool, (tables = new Map()))
  if (!tables.has(tableName)) {
    const check = (async () => {
      const { rows } = await pool.query('SELECT to_regclass($1) IS NOT NULL AS present', [tableName])
      if (rows[0].present) return
      try {
        await pool.query(`CREATE TABLE IF NOT EXISTS ${tableName} (session_key text PRIMARY KEY, value text NOT NULL)`)
      } catch (err) {
        if (err.code !== '23505' && err.code !== '42P07') throw err
      }
    })()
    tables.set(tableName, check)
    check.catch(() => tables.delete(tableName)) // a failed check is retried by the next call
  }
  return tables.get(tableName)
}

export async function usePostgresAuthState (pool, sessionId, { tableName = 'auth_sessions' } = {}) {
  if (typeof sessionId !== 'string' || sessionId.length === 0) throw new TypeError('sessionId must be a non-empty string')
  if (sessionId.includes(':')) throw new RangeError('sessionId must not contain ":" (it separates the key parts)')
  await ensureTable(pool, tableName)
  const prefix = `${sessionId}:`
  const keyOf = (type, id) => `${prefix}${type}-${id}`

  const { rows } = await pool.query(`SELECT value FROM ${tableName} WHERE session_key = $1`, [`${prefix}creds`])
  const creds = rows.length ? fromText(rows[0].value) : initAuthCreds()

  return {
    state: {
      creds,
      keys: {
        get: async (type, ids) => {
          const wanted = new Map(ids.map((id) => [keyOf(type, id), id]))
          const { rows } = await pool.query(
            `SELECT session_key, value FROM ${tableName} WHERE session_key = ANY($1::text[])`, [[...wanted.keys()]])
          const out = {}
          for (const row of rows) out[wanted.get(row.session_key)] = fromText(row.value)
          return out
        },
        // One statement: the deletes and the upserts commit together or not at all.
        set: async (data) => {
          const upsertKeys = []
          const upsertValues = []
          const deletes = []
          for (const [type, entries] of Object.entries(data)) {
            for (const [id, value] of Object.entries(entries ?? {})) {
              if (value) {
                upsertKeys.push(keyOf(type, id))
                upsertValues.push(toText(value))
              } else {
                deletes.push(keyOf(type, id))
              }
            }
          }
          if (!upsertKeys.length && !deletes.length) return
          await pool.query(
            `WITH gone AS (DELETE FROM ${tableName} WHERE session_key = ANY($3::text[]))
             INSERT INTO ${tableName} (session_key, value)
             SELECT * FROM unnest($1::text[], $2::text[])
             ON CONFLICT (session_key) DO UPDATE SET value = EXCLUDED.value`,
            [upsertKeys, upsertValues, deletes])
        },
        clear: async () => {
          await pool.query(`DELETE FROM ${tableName} WHERE starts_with(session_key, $1) AND session_key <> $2`,
            [prefix, `${prefix}creds`])
        }
      }
    },
    saveCreds: async () => {
      await pool.query(
        `INSERT INTO ${tableName} (session_key, value) VALUES ($1, $2)
         ON CONFLICT (session_key) DO UPDATE SET value = EXCLUDED.value`,
        [`${prefix}creds`, toText(creds)])
    },
    deleteSession: async () => {
      await pool.query(`DELETE FROM ${tableName} WHERE starts_with(session_key, $1)`, [prefix])
    }
  }
}

// Baileys' key types, longest first: "<type>-<id>" is split at the longest type it starts with
// (the joined form is ambiguous in principle: sender-key "memory-x" and sender-key-memory "x"
// are the same string; Baileys' ids never make it so).
const KEY_TYPES = ['app-state-sync-version', 'app-state-sync-key', 'sender-key-memory', 'identity-key',
  'lid-mapping', 'device-list', 'sender-key', 'pre-key', 'session', 'tctoken']

/** Everything stored for a session: { creds: object | null, keys: { type: { id: value } } }. */
export async function readSession (pool, sessionId, { tableName = 'auth_sessions' } = {}) {
  await ensureTable(pool, tableName)
  const prefix = `${sessionId}:`
  const { rows } = await pool.query(
    `SELECT session_key, value FROM ${tableName} WHERE starts_with(session_key, $1)`, [prefix])
  const out = { creds: null, keys: {} }
  for (const { session_key: key, value } of rows) {
    const rest = key.slice(prefix.length)
    if (rest === 'creds') {
      out.creds = fromText(value)
      continue
    }
    const type = KEY_TYPES.find((t) => rest.startsWith(`${t}-`)) ?? rest.split('-')[0]
    ;(out.keys[type] ??= {})[rest.slice(type.length + 1)] = fromText(value)
  }
  return out
}
