// Reads alice's original folder (argv[2]) and the folder exported from PostgreSQL (argv[3]) with
// Baileys' own useMultiFileAuthState, compares them with what Baileys held (stdin: the output of
// generate.mjs), then keeps using the exported state for real: messages with bob (argv[4]) and
// carol (argv[5]), group messages, a brand-new contact (argv[6], empty) starting a session from
// an exported pre-key, and an app-state patch decoded against the exported LT-hash state.
// Prints JSON {compared, mismatches, functional}.
import { readFileSync } from 'node:fs'
import { BufferJSON, decodeSyncdPatch, getNextPreKeys, proto } from '@whiskeysockets/baileys'
import { ALICE_ME, BOB, CAROL, NEW_GROUP, OLD_GROUP, bundle, canon, isDeepStrictEqual, open, text } from './common.mjs'

const [originalDir, exportedDir, bobDir, carolDir, daveDir] = process.argv.slice(2)
const expected = JSON.parse(readFileSync(0, 'utf-8'))
const original = await open(originalDir)
const alice = await open(exportedDir)

// 1. deep equality: exported vs what Baileys held, and vs Baileys' own folder, key by key
const mismatches = []
let compared = 0
const check = (what, got, want, fromOriginal) => {
  compared++
  if (canon(got) !== want) mismatches.push(`${what}: differs from what Baileys held`)
  if (!isDeepStrictEqual(got, fromOriginal)) mismatches.push(`${what}: not deep-equal to Baileys' own folder`)
}
check('creds', alice.state.creds, expected.creds, original.state.creds)
for (const [type, entries] of Object.entries(expected.keys)) {
  const ids = Object.keys(entries)
  const got = await alice.state.keys.get(type, ids)
  const fromOriginal = await original.state.keys.get(type, ids)
  for (const id of ids) check(`${type} ${id}`, got[id], entries[id], fromOriginal[id])
}

// 2. the exported state keeps working
const functional = {}
const roundTrip = async (label, fn) => {
  try { functional[label] = (await fn()) === true } catch (e) { functional[label] = String(e && e.stack || e) }
}
const bob = await open(bobDir)
const carol = await open(carolDir)
const dave = await open(daveDir)
const same = (a, b) => Buffer.from(a).toString() === b

await roundTrip('bob -> alice (existing session)', async () => {
  const m = await bob.repo.encryptMessage({ jid: ALICE_ME, data: text('after rollback') })
  return m.type === 'msg' && same(await alice.repo.decryptMessage({ jid: BOB, ...m, ciphertext: m.ciphertext }), 'after rollback')
})
await roundTrip('alice -> bob (existing session)', async () => {
  const m = await alice.repo.encryptMessage({ jid: BOB, data: text('still here') })
  return m.type === 'msg' && same(await bob.repo.decryptMessage({ jid: ALICE_ME, ...m }), 'still here')
})
await roundTrip('carol (LID) <-> alice', async () => {
  const m = await carol.repo.encryptMessage({ jid: ALICE_ME, data: text('lid hi') })
  const ok = same(await alice.repo.decryptMessage({ jid: CAROL, ...m }), 'lid hi')
  const r = await alice.repo.encryptMessage({ jid: CAROL, data: text('lid reply') })
  return ok && same(await carol.repo.decryptMessage({ jid: ALICE_ME, ...r }), 'lid reply')
})
await roundTrip('bob -> old-style group (bob sender key held by alice)', async () => {
  const m = await bob.repo.encryptGroupMessage({ group: OLD_GROUP, meId: BOB, data: text('group after') })
  return same(await alice.repo.decryptGroupMessage({ group: OLD_GROUP, authorJid: BOB, msg: m.ciphertext }), 'group after')
})
await roundTrip('alice -> new group (alice own sender key)', async () => {
  const m = await alice.repo.encryptGroupMessage({ group: NEW_GROUP, meId: ALICE_ME, data: text('mine') })
  return same(await bob.repo.decryptGroupMessage({ group: NEW_GROUP, authorJid: ALICE_ME, msg: m.ciphertext }), 'mine')
})
await roundTrip('new contact from an exported pre-key (pkmsg)', async () => {
  const DAVE = '5511900000004@s.whatsapp.net'
  Object.assign(dave.state.creds, (await getNextPreKeys(dave.auth, 1)).update)
  const preKeyId = String(alice.state.creds.nextPreKeyId - 1)
  const { [preKeyId]: preKey } = await alice.state.keys.get('pre-key', [preKeyId])
  await dave.repo.injectE2ESession({ jid: ALICE_ME, session: bundle(alice.state.creds, +preKeyId, preKey) })
  const m = await dave.repo.encryptMessage({ jid: ALICE_ME, data: text('new here') })
  return m.type === 'pkmsg' && same(await alice.repo.decryptMessage({ jid: DAVE, ...m }), 'new here')
})
await roundTrip('app-state patch decoded against the exported LT hash', async () => {
  const { [expected.appState.keyId]: key } = await alice.state.keys.get('app-state-sync-key', [expected.appState.keyId])
  const { regular_high: state } = await alice.state.keys.get('app-state-sync-version', ['regular_high'])
  const patch = proto.SyncdPatch.fromObject(JSON.parse(expected.appState.patch, BufferJSON.reviver))
  let muted
  const result = await decodeSyncdPatch(patch, 'regular_high', state, async (id) => id === expected.appState.keyId ? key : undefined,
    (m) => { muted = m.syncAction.value?.muteAction?.muted }, true)
  return Buffer.from(result.hash).toString('base64') === expected.appState.expectedHash && muted === false
})

process.stdout.write(JSON.stringify({ compared, mismatches, functional }))
