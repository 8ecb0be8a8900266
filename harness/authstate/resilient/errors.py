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
    """Writing or syncing the journal failed after a record was queued.

    `maybe_written`: False when the file was put back as it was at the last acknowledged record
    (the record is definitely not in it and will never be replayed); True when it may be there
    (putting the file back failed too, or the disk never answered within the sync deadline).
    """

    def __init__(self, message: str, *, hint: str | None = None,
                 maybe_written: bool = True) -> None:
        super().__init__(message, hint=hint)
        self.maybe_written = maybe_written
