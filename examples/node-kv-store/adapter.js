// The adapter the harness targets: `useX(companyId)` -> the store's (pool, sessionId).
//   python3 -m harness run --target node:examples/node-kv-store/adapter.js --suite property
import pg from 'pg'
import { usePostgresAuthState } from './postgres-auth-state.js'
import { checkCompanyId, poolOptions } from './service.js'

const pool = new pg.Pool(poolOptions)
pool.on('error', () => {}) // an idle client's broken connection: the next query reconnects
export default (companyId) => usePostgresAuthState(pool, checkCompanyId(companyId))
export const close = () => pool.end()
