// BROKEN ON PURPOSE: the origin system's store during a database outage, in JavaScript.
//
// Like the origin system's cache mode: every successful load fills an in-memory creds cache
// (deep copy, 5 minutes); when PostgreSQL fails, load() answers from that cache, and saveCreds()
// and keys.set() *skip* the write but return as if it had been saved. Reads of keys still throw.
// Every write acknowledged during an outage is missing afterwards: the harness's chaos suite
// must fail this store, naming `lost`:
//
//   python3 -m harness run --suite chaos --scenario sever --target node:examples/node-store/flawed.js
import { checkCompanyId, clearKeys, close, getKeys, readCreds, setKeys, writeCreds } from './store.js'
import { initAuthCreds } from './fresh-creds.js'

const CACHE_TTL_MS = 5 * 60 * 1000
const credsCache = new Map() // companyId -> { creds, at }

export default async function useFlawedAuthState (companyId) {
  checkCompanyId(companyId)
  let creds
  try {
    creds = (await readCreds(companyId)) ?? initAuthCreds()
    credsCache.set(companyId, { creds: structuredClone(creds), at: Date.now() })
  } catch (err) {
    const cached = credsCache.get(companyId)
    if (!cached || Date.now() - cached.at > CACHE_TTL_MS) throw err
    creds = structuredClone(cached.creds) // "cache mode"
  }
  return {
    state: {
      creds,
      keys: {
        get: (type, ids) => getKeys(companyId, type, ids),
        set: async (data) => {
          try {
            await setKeys(companyId, data)
          } catch (err) {
            if (err instanceof RangeError) throw err // a refused value is still refused
            // THE BUG: skipped during the outage, yet reported as saved
          }
        },
        clear: () => clearKeys(companyId)
      }
    },
    saveCreds: async () => {
      try {
        await writeCreds(companyId, creds)
      } catch (err) {
        if (err instanceof RangeError) throw err
        // THE BUG (accepted by the origin system's reviews): saves skipped in cache mode
      }
    }
  }
}

export { close }
