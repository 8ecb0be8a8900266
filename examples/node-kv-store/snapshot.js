// adapter.js plus the optional `snapshot(companyId)` hook: a direct read of one company's durable
// state, which the harness's durable reader prefers over loading it through a fresh instance.
//   python3 -m harness run --target node:examples/node-kv-store/snapshot.js --suite chaos
import pg from 'pg'
import { usePostgresAuthState, readSession } from './postgres-auth-state.js'
import { checkCompanyId, poolOptions } from './service.js'

const pool = new pg.Pool(poolOptions)
pool.on('error', () => {})
export default (companyId) => usePostgresAuthState(pool, checkCompanyId(companyId))
export const snapshot = (companyId) => readSession(pool, checkCompanyId(companyId))
export const close = () => pool.end()
