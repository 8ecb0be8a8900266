// Real Baileys makes real auth state for "alice" (argv[2]) with peers bob (argv[3]) and carol
// (argv[4]): every key type Baileys writes offline, through Baileys' own code paths, stored by
// Baileys' own useMultiFileAuthState. Prints JSON: what alice's key store holds (canonical JSON
// per key, captured from every keys.set), plus a pending app-state patch for verify.mjs.
import { randomBytes } from 'node:crypto'
import {
  BufferJSON, encodeSyncdPatch, getNextPreKeys, newLTHashState, proto,
} from '@whiskeysockets/baileys'
import {
  buildMergedTcTokenIndexWrite, storeTcTokensFromIqResult,
} from '@whiskeysockets/baileys/lib/Utils/tc-token-utils.js'
import Long from 'long'
import { ALICE_ME, BOB, CAROL, CAROL_PN, NEW_GROUP, OLD_GROUP, bundle, canon, open, text } from './common.mjs'

const [aliceDir, bobDir, carolDir] = process.argv.slice(2)
const alice = await open(aliceDir)
const bob = await open(bobDir)
const carol = await open(carolDir)

// What alice's Baileys holds: every value that went through its key store, last write wins.
const held = {}
const rawSet = alice.state.keys.set
alice.state.keys.set = async (data) => {
  for (const [type, entries] of Object.entries(data)) {
    for (const [id, value] of Object.entries(entries)) {
      held[type] ??= {}
      if (value) held[type][id] = canon(value)
      else delete held[type][id]
    }
  }
  return rawSet(data)
}

async function topUpPreKeys (who, count) {
  const { update } = await getNextPreKeys(who.auth, count)
  Object.assign(who.state.creds, update)
  await who.saveCreds()
}

alice.state.creds.me = { id: ALICE_ME, lid: '123450000000001:7@lid', name: 'Alice Ünïcode 🚀' }
alice.state.creds.platform = 'android'
alice.state.creds.routingInfo = randomBytes(24)
await topUpPreKeys(alice, 30)   // pre-key 1..30 (Baileys uploads these)
await topUpPreKeys(bob, 5)
await topUpPreKeys(carol, 5)
bob.state.creds.me = { id: BOB, name: 'Bob' }
carol.state.creds.me = { id: CAROL, name: 'Carol' }

// 1:1 sessions: bob and carol each start one with alice from her pre-key bundle (pkmsg); alice
// decrypts (session + identity-key, pre-key consumed) and both sides exchange more messages.
const alicePreKeys = await alice.state.keys.get('pre-key', ['1', '2'])
await bob.repo.injectE2ESession({ jid: ALICE_ME, session: bundle(alice.state.creds, 1, alicePreKeys['1']) })
await carol.repo.injectE2ESession({ jid: ALICE_ME, session: bundle(alice.state.creds, 2, alicePreKeys['2']) })
for (const [peer, jid] of [[bob, BOB], [carol, CAROL]]) {
  for (let i = 0; i < 3; i++) {
    const sent = await peer.repo.encryptMessage({ jid: ALICE_ME, data: text(`hello ${i}`) })
    const got = await alice.repo.decryptMessage({ jid, type: sent.type, ciphertext: sent.ciphertext })
    if (Buffer.from(got).toString() !== `hello ${i}`) throw new Error('1:1 decrypt mismatch')
    const reply = await alice.repo.encryptMessage({ jid, data: text(`reply ${i}`) })
    await peer.repo.decryptMessage({ jid: ALICE_ME, type: reply.type, ciphertext: reply.ciphertext })
  }
}

// Group sender keys: bob sends in an old-style group (alice stores bob's sender key); alice sends
// in a new group (alice's own sender key; bob processes her distribution message).
const fromBob = await bob.repo.encryptGroupMessage({ group: OLD_GROUP, meId: BOB, data: text('g1') })
await alice.repo.processSenderKeyDistributionMessage({
  item: { groupId: OLD_GROUP, axolotlSenderKeyDistributionMessage: fromBob.senderKeyDistributionMessage },
  authorJid: BOB,
})
await alice.repo.decryptGroupMessage({ group: OLD_GROUP, authorJid: BOB, msg: fromBob.ciphertext })
const fromAlice = await alice.repo.encryptGroupMessage({ group: NEW_GROUP, meId: ALICE_ME, data: text('g2') })
await bob.repo.processSenderKeyDistributionMessage({
  item: { groupId: NEW_GROUP, axolotlSenderKeyDistributionMessage: fromAlice.senderKeyDistributionMessage },
  authorJid: ALICE_ME,
})
await bob.repo.decryptGroupMessage({ group: NEW_GROUP, authorJid: ALICE_ME, msg: fromAlice.ciphertext })
// what messages-send.js records after distributing the sender key to each device
await alice.keys.set({ 'sender-key-memory': { [NEW_GROUP]: { [BOB]: true, [CAROL]: true } } })

// LID <-> PN mapping through Baileys' LIDMappingStore (pn user -> lid user, and `<lid>_reverse`)
await alice.repo.lidMapping.storeLIDPNMappings([{ lid: '987654321012345@lid', pn: CAROL_PN }])

// Device lists, as messages-send.js stores them after a usync
await alice.keys.set({ 'device-list': { 5511900000002: ['0', '1', '23'], 987654321012345: ['0', '3'] } })

// Trusted-contact tokens through Baileys' own IQ-result handler, plus the `__index` sentinel
const tokenNode = (jid) => ({ tag: 'token', attrs: { type: 'trusted_contact', jid, t: '1763800000' }, content: randomBytes(40) })
await storeTcTokensFromIqResult({
  result: { tag: 'iq', attrs: {}, content: [{ tag: 'tokens', attrs: {}, content: [tokenNode(BOB)] }] },
  keys: alice.keys, getLIDForPN: async () => undefined,
})
await alice.keys.set({ tctoken: await buildMergedTcTokenIndexWrite(alice.keys, [BOB]) })

// App-state sync keys as process-message.js stores them: decoded protobuf messages, ids are the
// base64 of the key id (chosen so the ids hold '/', '+' and '=').
const syncKeyIds = [Buffer.from([0, 0, 0, 0, 0xfb, 0xff]), Buffer.from([0, 1, 0xfe, 0xfb, 0xef])]
for (const [i, keyId] of syncKeyIds.entries()) {
  const bytes = proto.Message.AppStateSyncKeyData.encode({
    keyData: randomBytes(32),
    fingerprint: { rawId: 1000 + i, currentIndex: i, deviceIndexes: [0, 1, 7] },
    timestamp: Long.fromNumber(1763800000000 + i),
  }).finish()
  await alice.keys.set({ 'app-state-sync-key': { [keyId.toString('base64')]: proto.Message.AppStateSyncKeyData.decode(bytes) } })
}
const appKeyId = syncKeyIds[0].toString('base64')
const getAppStateSyncKey = async (id) => (await alice.state.keys.get('app-state-sync-key', [id]))[id]

// App-state versions: real LT-hash states from Baileys' own patch encoder, several mutations
const mute = (jid, muted) => ({
  type: 'regular_high', index: ['mute', jid], apiVersion: 2, operation: proto.SyncdMutation.SyncdOperation.SET,
  syncAction: { timestamp: Date.now(), muteAction: { muted, muteEndTimestamp: muted ? 1893456000 : 0 } },
})
let ltState = newLTHashState()
for (const jid of [BOB, CAROL, NEW_GROUP, OLD_GROUP]) {
  ltState = (await encodeSyncdPatch(mute(jid, true), appKeyId, ltState, getAppStateSyncKey)).state
}
await alice.keys.set({ 'app-state-sync-version': { regular_high: ltState } })
// One more patch (overwriting an existing index), NOT applied: verify.mjs decodes it against the
// state read back from the exported folder and must reach the same LT hash.
const pending = await encodeSyncdPatch(mute(BOB, false), appKeyId, ltState, getAppStateSyncKey)

await alice.saveCreds()
await bob.saveCreds()
await carol.saveCreds()

process.stdout.write(JSON.stringify({
  creds: canon(alice.state.creds),
  keys: held,
  appState: {
    keyId: appKeyId,
    patch: JSON.stringify({ ...pending.patch, version: { version: pending.state.version } }, BufferJSON.replacer),
    expectedHash: Buffer.from(pending.state.hash).toString('base64'),
  },
}))
