// Module resolution fallback (registered by sidecar.mjs with node:module register()).
// A bare import the module's own directory cannot resolve (no node_modules there: the
// dependencies were installed on first use into the harness's cache) is resolved again as if
// it were imported from the cache's package.json. Everything else resolves as usual.
let fallbackParent = null

export async function initialize (data) {
  fallbackParent = data?.fallbackParent ?? null
}

const isBare = (s) => !s.startsWith('.') && !s.startsWith('/') && !s.includes(':')

export async function resolve (specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context)
  } catch (err) {
    if (fallbackParent && isBare(specifier) && err?.code === 'ERR_MODULE_NOT_FOUND') {
      return nextResolve(specifier, { ...context, parentURL: fallbackParent })
    }
    throw err
  }
}
