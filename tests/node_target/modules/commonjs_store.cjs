// A CommonJS module: `module.exports = { useCjsAuthState }`, picked with #useCjsAuthState.
const creds = {}
module.exports.useCjsAuthState = async (companyId) => ({
  state: { creds: creds[companyId] ?? { cjs: true }, keys: { get: async () => ({}), set: async () => {} } },
  saveCreds: async () => {}
})
