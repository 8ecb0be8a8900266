// What the team's service already has and the adapter reuses: its company id rule and its pool
// settings. The short timeouts make an outage fail a call in seconds instead of hanging it.
const COMPANY_ID = /^[A-Za-z0-9_-]{1,50}$/

export function checkCompanyId (companyId) {
  if (typeof companyId !== 'string') throw new TypeError(`company id must be a string of 1 to 50 characters of [A-Za-z0-9_-], got ${companyId === null ? 'null' : typeof companyId}`)
  if (!COMPANY_ID.test(companyId)) throw new RangeError(`company id must be 1 to 50 characters of [A-Za-z0-9_-] (${companyId.length} characters given)`)
  return companyId
}

export const poolOptions = {
  connectionString: process.env.DATABASE_URL, // the harness sets it (and PGHOST... for new pg.Pool())
  max: 10,
  connectionTimeoutMillis: 1500,
  query_timeout: 1500,
  statement_timeout: 1500,
  keepAlive: true
}
