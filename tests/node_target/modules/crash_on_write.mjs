// BROKEN ON PURPOSE (test module): loads fine, then its process dies on the first keys.set,
// printing why first, as a store with an unhandled 'error' or a process.exit somewhere does. In
// the property suite the test must fail naming the crash, with these last lines of output, and
// the run exit 1 (a verdict about the store), not 2.
const creds = new Map()

export default async function useCrashOnWriteAuthState (companyId) {
  const state = { creds: structuredClone(creds.get(companyId) ?? { registered: false, noiseKey: {} }) }
  state.keys = {
    get: async () => ({}),
    set: async () => {
      process.stderr.write('crash_on_write: writing is not implemented, giving up\n')
      process.exit(3)
    }
  }
  return { state, saveCreds: async () => { creds.set(companyId, structuredClone(state.creds)) } }
}
