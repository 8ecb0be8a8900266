// Shared by generate.mjs and verify.mjs (inlined by the test: scripts run from the node cache).
import { isDeepStrictEqual } from 'node:util'
import {
  BufferJSON, addTransactionCapability, generateSignalPubKey, useMultiFileAuthState,
} from '@whiskeysockets/baileys'
import { makeLibSignalRepository } from '@whiskeysockets/baileys/lib/Signal/libsignal.js'
import P from 'pino'

export const logger = P({ level: 'silent' })
export const TX = { maxCommitRetries: 1, delayBetweenTriesMs: 10 }

// JIDs of the in-process identities: alice is the company whose state goes through PostgreSQL.
export const ALICE_ME = '5511900000001:7@s.whatsapp.net'
export const BOB = '5511900000002@s.whatsapp.net'
export const CAROL = '987654321012345:3@lid'            // a LID peer: signal address user_1.3
export const CAROL_PN = '5511900000003@s.whatsapp.net'
export const OLD_GROUP = '5511900000001-1600000000@g.us' // old-style group id: contains '-'
export const NEW_GROUP = '120363000000000001@g.us'

/** Baileys' own multi-file store + its transaction layer + its libsignal repository. */
export async function open (folder) {
  const { state, saveCreds } = await useMultiFileAuthState(folder)
  const keys = addTransactionCapability(state.keys, logger, TX)
  const auth = { creds: state.creds, keys }
  const repo = makeLibSignalRepository(auth, logger, async () => undefined)
  return { state, keys, auth, repo, saveCreds }
}

/** A pre-key bundle as Baileys builds it from the server's key fetch (parseAndInjectE2ESessions). */
export function bundle (creds, preKeyId, preKey) {
  return {
    registrationId: creds.registrationId,
    identityKey: generateSignalPubKey(creds.signedIdentityKey.public),
    signedPreKey: {
      keyId: creds.signedPreKey.keyId,
      publicKey: generateSignalPubKey(creds.signedPreKey.keyPair.public),
      signature: creds.signedPreKey.signature,
    },
    preKey: { keyId: preKeyId, publicKey: generateSignalPubKey(preKey.public) },
  }
}

function sortKeys (v) {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map(k => [k, sortKeys(v[k])]))
  }
  return v
}

/** A value's JSON as Baileys writes it, with object keys sorted: equal iff the values are. */
export function canon (value) {
  return JSON.stringify(sortKeys(JSON.parse(JSON.stringify(value, BufferJSON.replacer))))
}

export { isDeepStrictEqual }

export const text = (s) => Buffer.from(s, 'utf-8')
