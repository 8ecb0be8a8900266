"""The creds file cache: the last creds each company had in PostgreSQL, one file per company.

A new process (after a deploy or a crash) can then load a paired company while PostgreSQL is
away. `<cache_dir>/creds/<company>.json` (0600, directory 0700):

    {"format": "authstate-creds-cache", "version": 1, "company": "acme", "sha256": "<hex>"}\\n
    <creds JSON text, exactly as stored>

Written with temp file + fsync + rename + directory fsync, and only when the content changed.
A file of another version, another company, or whose content does not match its checksum is
ignored with a warning (never trusted, never deleted: it may help a person).

Writers of one company take turns (a lock per company), each in its own temp file, and every
write or removal carries a version: the order in which the store learnt the creds (a save
acknowledged, a read answered). A write whose version is older than the last one done is
dropped, so a load that read the creds just before a save cannot put the older creds back on
disk after the save wrote the newer ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import orjson

from harness.authstate.resilient.dirlock import fsync_dir, make_private_dir

log = logging.getLogger("harness.authstate.resilient")

FORMAT = "authstate-creds-cache"
VERSION = 1


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class CredsFileCache:
    """Blocking file I/O: call `read`/`write`/`remove` in a worker thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._written: dict[str, str] = {}  # company -> sha256 of what its file holds
        self._versions: dict[str, int] = {}  # company -> version of the last write or removal
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        make_private_dir(directory)

    def path(self, company: str) -> Path:
        return self.directory / f"{company}.json"  # company ids are [A-Za-z0-9_-]: safe names

    def _lock(self, company: str) -> threading.RLock:
        with self._locks_guard:
            lock = self._locks.get(company)
            if lock is None:
                lock = self._locks[company] = threading.RLock()
            return lock

    def _stale(self, company: str, version: int | None) -> bool:
        """True when a newer write or removal was done already (the caller holds the lock)."""
        if version is None:
            return False
        if version < self._versions.get(company, 0):
            return True
        self._versions[company] = version
        return False

    def read(self, company: str) -> str | None:
        """The cached creds text, or None (no file, or one that cannot be trusted)."""
        with self._lock(company):
            return self._read(company)

    def _read(self, company: str) -> str | None:
        path = self.path(company)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("creds cache %s unreadable (%s); ignored", path, exc)
            return None
        head, sep, body = raw.partition(b"\n")
        try:
            header = orjson.loads(head) if sep else None
        except orjson.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            log.warning("creds cache %s is not a creds cache file; ignored", path)
            return None
        if header.get("version") != VERSION:
            log.warning("creds cache %s has version %r, this store reads version %d; ignored",
                        path, header.get("version"), VERSION)
            return None
        if header.get("company") != company:
            log.warning("creds cache %s belongs to company %r, not %r; ignored", path,
                        header.get("company"), company)
            return None
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text = None
        if text is None or _digest(text) != header.get("sha256"):
            log.warning("creds cache %s does not match its checksum (damaged or edited); "
                        "ignored", path)
            return None
        self._written[company] = header["sha256"]
        return text

    def write(self, company: str, text: str, version: int | None = None) -> bool:
        """Store `text` for `company` durably; False when the file already held it or a newer
        `version` was written (or removed) already. None: no ordering (always written)."""
        digest = _digest(text)
        with self._lock(company):
            if self._stale(company, version):
                return False
            if company not in self._written:  # first write of this process: what is on disk?
                self.read(company)  # records the file's digest if the file is sound
            if self._written.get(company) == digest:
                return False
            header = orjson.dumps({"format": FORMAT, "version": VERSION, "company": company,
                                   "sha256": digest})
            path = self.path(company)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                       dir=self.directory)  # 0600, a name of its own
            try:
                data = header + b"\n" + text.encode()
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            os.close(fd)
            try:
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._written[company] = digest
            fsync_dir(self.directory)
            return True

    def remove(self, company: str, version: int | None = None) -> None:
        """Delete the company's file (logout); an older write arriving later is dropped."""
        with self._lock(company):
            if self._stale(company, version):
                return
            self._written.pop(company, None)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(company))
                fsync_dir(self.directory)
