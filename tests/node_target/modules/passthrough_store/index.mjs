// A correct Node.js store that translates none of its errors (test module), as many published
// stores are: an id it does not take is a plain `TypeError('invalid company id null')`, and a
// value PostgreSQL cannot hold (a NUL in a string) is whatever node-postgres throws, `22P05`
// ("unsupported Unicode escape sequence"), out of keys.set and saveCreds, with nothing written
// (one transaction). The property suite must pass it: a refusal in the store's own words is a
// refusal, and never a harness error.
import pg from 'pg'
import { BufferJSON } from '../../../../examples/node-store/buffer-json.js'

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 })
pool.on('error', () => {}) // an idle client's broken connection: the next query reconnects

const toJson = (value) => JSON.stringify(value, BufferJSON.replacer)
const fromJson = (text) => JSON.parse(text, BufferJSON.reviver)

async function initAuthCreds () { // enough of Baileys' initAuthCreds() for the suites
  const { randomBytes, randomInt } = await import('node:crypto')
  const pair = () => ({ private: randomBytes(32), public: randomBytes(32) })
  return {
    noiseKey: pair(),
    pairingEphemeralKeyPair: pair(),
    signedIdentityKey: pair(),
    signedPreKey: { keyPair: pair(), signature: randomBytes(64), keyId: 1 },
    registrationId: randomInt(16383),
    advSecretKey: randomBytes(32).toString('base64'),
    processedHistoryMessages: [],
    nextPreKeyId: 1,
    firstUnuploadedPreKeyId: 1,
    accountSyncCounter: 0,
    accountSettings: { unarchiveChats: false },
    registered: false
  }
}

async function inTransaction (work) {
  const client = await pool.connect()
  client.on('error', () => {})
  try {
    await client.query('BEGIN')
    await work(client)
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err // node-postgres' own error, SQLSTATE in err.code
  } finally {
    client.release()
  }
}

export default async function usePassthroughAuthState (companyId) {
  if (typeof companyId !== 'string' || !/^[A-Za-z0-9_-]{1,50}$/.test(companyId)) {
    throw new TypeError(`invalid company id ${typeof companyId === 'string' ? JSON.stringify(companyId).slice(0, 60) : companyId}`)
  }
  const { rows } = await pool.query('SELECT creds::text AS creds FROM whatsapp_auth WHERE company_id = $1', [companyId])
  const creds = rows.length ? fromJson(rows[0].creds) : await initAuthCreds()
  const keys = {
    get: async (type, ids) => {
      const found = await pool.query(
        'SELECT key_id, value::text AS value FROM whatsapp_keys WHERE company_id = $1 AND key_type = $2 AND key_id = ANY($3::text[])',
        [companyId, type, ids])
      return Object.fromEntries(found.rows.map(row => [row.key_id, fromJson(row.value)]))
    },
    set: async (data) => inTransaction(async (client) => {
      for (const [type, entries] of Object.entries(data)) {
        for (const [id, value] of Object.entries(entries ?? {})) {
          if (value) {
            await client.query(
              `INSERT INTO whatsapp_keys (company_id, key_type, key_id, value) VALUES ($1, $2, $3, $4::jsonb)
               ON CONFLICT (company_id, key_type, key_id) DO UPDATE SET value = EXCLUDED.value`,
              [companyId, type, id, toJson(value)])
          } else {
            await client.query('DELETE FROM whatsapp_keys WHERE company_id = $1 AND key_type = $2 AND key_id = $3', [companyId, type, id])
          }
        }
      }
    })
  }
  const saveCreds = async () => {
    await pool.query(
      `INSERT INTO whatsapp_auth (company_id, creds) VALUES ($1, $2::jsonb)
       ON CONFLICT (company_id) DO UPDATE SET creds = EXCLUDED.creds`,
      [companyId, toJson(creds)])
  }
  return { state: { creds, keys }, saveCreds }
}

export const close = () => pool.end()
