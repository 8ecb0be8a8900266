// Baileys' BufferJSON (@whiskeysockets/baileys 7.x, lib/Utils/generics.js), copied verbatim so the
// sidecar needs no Baileys install: the harness's codec (harness/authstate/codec.py) writes and
// reads exactly these forms, so bytes cross the bridge unchanged.
export const BufferJSON = {
  replacer: (k, value) => {
    if (Buffer.isBuffer(value) || value instanceof Uint8Array || value?.type === 'Buffer') {
      return { type: 'Buffer', data: Buffer.from(value?.data || value).toString('base64') }
    }
    return value
  },
  reviver: (_, value) => {
    if (typeof value === 'object' && value !== null && value.type === 'Buffer' && typeof value.data === 'string') {
      return Buffer.from(value.data, 'base64')
    }
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const keys = Object.keys(value)
      if (keys.length > 0 && keys.every(k => !isNaN(parseInt(k, 10)))) {
        const values = Object.values(value)
        if (values.every(v => typeof v === 'number')) {
          return Buffer.from(values)
        }
      }
    }
    return value
  }
}
