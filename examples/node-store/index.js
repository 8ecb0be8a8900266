// A correct Baileys auth-state store on PostgreSQL, in the shape of useMultiFileAuthState:
//
//   import useNodeAuthState from './index.js'
//   const { state, saveCreds } = await useNodeAuthState(companyId)
//   const sock = makeWASocket({ auth: state }); sock.ev.on('creds.update', saveCreds)
//
// Errors are thrown, never swallowed: a database outage makes calls fail (the socket retries),
// it never answers "absent" for keys it could not read nor acknowledges a write it did not make.
// Tested by authstate-harness: python3 -m harness run --target node:examples/node-store/index.js
import { checkCompanyId, clearKeys, close, getKeys, readCreds, setKeys, writeCreds } from './store.js'
import { initAuthCreds } from './fresh-creds.js'

export default async function useNodeAuthState (companyId) {
  checkCompanyId(companyId)
  const creds = (await readCreds(companyId)) ?? initAuthCreds()
  return {
    state: {
      creds,
      keys: {
        get: (type, ids) => getKeys(companyId, type, ids),
        set: (data) => setKeys(companyId, data),
        clear: () => clearKeys(companyId)
      }
    },
    saveCreds: () => writeCreds(companyId, creds)
  }
}

export { close }
