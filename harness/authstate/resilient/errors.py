"""Errors of the resilient store's local files (journal, lock). Each says what to do."""

from __future__ import annotations

from harness.authstate.errors import AuthStateError


class JournalError(AuthStateError):
    """The local write-ahead journal cannot be used as it is."""


class JournalLocked(JournalError):
    """Another store (this process or another one) holds the cache directory.

    Two stores appending to one journal would interleave sequence numbers and each replay the
    other's writes: the directory is exclusive, enforced with a lock, never by convention.
    """


class JournalCorrupt(JournalError):
    """A record in the middle of the journal fails its checksum (not a torn tail).

    The file is left untouched: it may hold acknowledged writes that are not in PostgreSQL yet.
    """


class JournalWriteFailed(JournalError):
    """Writing or syncing the journal failed after a record was queued: it may be on disk."""
