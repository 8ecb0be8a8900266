// Fresh, never-paired creds in the shape of Baileys' initAuthCreds(). A real store imports
// initAuthCreds from '@whiskeysockets/baileys'; this example avoids the dependency: its key pairs
// are real X25519 keys (node:crypto) but the signed pre-key's signature is random bytes, not an
// XEdDSA signature (nothing here verifies it; a socket would re-pair anyway).
import { generateKeyPairSync, randomBytes, randomInt } from 'node:crypto'

function keyPair () {
  const { publicKey, privateKey } = generateKeyPairSync('x25519')
  return {
    public: Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url'),
    private: Buffer.from(privateKey.export({ format: 'jwk' }).d, 'base64url')
  }
}

export function initAuthCreds () {
  const identityKey = keyPair()
  return {
    noiseKey: keyPair(),
    pairingEphemeralKeyPair: keyPair(),
    signedIdentityKey: identityKey,
    signedPreKey: { keyPair: keyPair(), signature: randomBytes(64), keyId: 1 },
    registrationId: randomInt(1, 16384),
    advSecretKey: randomBytes(32).toString('base64'),
    processedHistoryMessages: [],
    nextPreKeyId: 1,
    firstUnuploadedPreKeyId: 1,
    accountSyncCounter: 0,
    accountSettings: { unarchiveChats: false },
    registered: false
  }
}
