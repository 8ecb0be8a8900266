// The auth state of a Python target, seen from Node.js: Baileys' `useXAuthState(companyId)`
// shape, where every call goes back to the harness (harness/node_target/callback.mjs), which
// answers it with the Python store under test (harness/signal/bridge.py) and records it in the
// operation history. The signal engine runs libsignal over this state as it does over a Node.js
// module's own store. Id maps travel as pairs (PROTOCOL.md: BufferJSON would turn {"5": 0}
// into bytes).
import { callHarness } from '../node_target/callback.mjs'

export default async function useHarnessAuthState (companyId) {
  const { creds } = await callHarness('load', { company: companyId })
  const state = {
    creds,
    keys: {
      get: async (type, ids) => Object.fromEntries(await callHarness('get', { company: companyId, type, ids })),
      set: async (data) => {
        const pairs = Object.entries(data).map(([type, entries]) => [type, Object.entries(entries ?? {})])
        await callHarness('set', { company: companyId, data: pairs })
      }
    }
  }
  return { state, saveCreds: async () => { await callHarness('save', { company: companyId, creds: state.creds }) } }
}
