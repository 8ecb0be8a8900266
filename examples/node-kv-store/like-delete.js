// BROKEN ON PURPOSE: the same store, with the deleteSession() many published stores have:
//
//   DELETE FROM auth_sessions WHERE session_key LIKE $1 || ':%'
//
// In LIKE, `_` matches any one character (and `%` any run), and company ids may contain `_`:
// logging out `a_b` also deletes every key of `axb`, `a-b`, `a1b`... Another tenant's session is
// gone. The harness's tenant-isolation property must fail this store naming `cross-tenant`:
//   python3 -m harness run --target node:examples/node-kv-store/like-delete.js --suite property
import pg from 'pg'
import { usePostgresAuthState } from './postgres-auth-state.js'
import { checkCompanyId, poolOptions } from './service.js'

const pool = new pg.Pool(poolOptions)
pool.on('error', () => {})

export default async function useLikeDeleteAuthState (companyId) {
  const auth = await usePostgresAuthState(pool, checkCompanyId(companyId))
  auth.deleteSession = async () => {
    await pool.query("DELETE FROM auth_sessions WHERE session_key LIKE $1 || ':%'", [companyId])
  }
  return auth
}
export const close = () => pool.end()
