"""The signal workload: real Signal conversations (Baileys' own libsignal) through the store.

Companies paired into 1:1 conversations and groups exchange messages encrypted and decrypted
by Baileys' Signal repository, every key read and write going through the target under test
(workload.py); a stand-in for the WhatsApp server delivers them (server.py); each delivery is
decrypted or fails with libsignal's error (tally.py); failures are joined with the checker's
anomalies on the same keys (attribution.py); a new pod continues every conversation from
PostgreSQL alone (newpod.py). The engine runs in Node.js (engine.mjs, engine.py): in a `node:`
target's own sidecar, or in a bridge sidecar whose key store is a Python target (bridge.py).
docs/signal.md explains the model and its limits.
"""
