// Calls from the sidecar back into the harness: the harness serves what a module asks for.
//
// The signal workload's key store for a Python target lives in Python: libsignal runs here, and
// every key read and write it makes is a call to the harness, answered by the store under test.
// sidecar.mjs installs the transport (its reply pipe) and hands every `{"reply": n, ...}` line
// it reads to settleCall(); a module (harness/signal/bridge_store.mjs) imports callHarness().
// ES modules are singletons per URL, so both see the same pending calls. PROTOCOL.md describes
// the messages.
let send = null
let next = 1
const pending = new Map()

export function installTransport (fn) {
  send = fn
}

export function callHarness (op, payload = {}) {
  if (!send) return Promise.reject(new Error('bridge: no harness transport (not in the sidecar)'))
  const call = next++
  return new Promise((resolve, reject) => {
    pending.set(call, { resolve, reject })
    send({ call, op, ...payload })
  })
}

export function settleCall (msg) {
  const waiter = pending.get(msg.reply)
  if (!waiter) return
  pending.delete(msg.reply)
  if (msg.error) {
    const e = new Error(String(msg.error.message ?? ''))
    e.name = msg.error.name || 'Error'
    if (msg.error.outcome) e.outcome = msg.error.outcome
    if (msg.error.code !== undefined) e.code = msg.error.code
    waiter.reject(e)
  } else {
    waiter.resolve(msg.ok)
  }
}

export function pendingCalls () {
  return pending.size
}
