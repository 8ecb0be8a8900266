// Fails on import: the bridge must report it at open, with the module's output.
throw new Error('probe: this module cannot be imported')
