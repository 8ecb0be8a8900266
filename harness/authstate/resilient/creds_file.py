"""The creds file cache: the last creds each company had in PostgreSQL, one file per company.

A new process (after a deploy or a crash) can then load a paired company while PostgreSQL is
away. `<cache_dir>/creds/<company>.json` (0600, directory 0700):

    {"format": "authstate-creds-cache", "version": 1, "company": "acme", "sha256": "<hex>"}\\n
    <creds JSON text, exactly as stored>

Written with temp file + fsync + rename + directory fsync, and only when the content changed.
A file of another version, another company, or whose content does not match its checksum is
ignored with a warning (never trusted, never deleted: it may help a person).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

import orjson

from harness.authstate.resilient.dirlock import FILE_MODE, fsync_dir, make_private_dir

log = logging.getLogger("harness.authstate.resilient")

FORMAT = "authstate-creds-cache"
VERSION = 1


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class CredsFileCache:
    """Blocking file I/O: call `read`/`write` in a worker thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._written: dict[str, str] = {}  # company -> sha256 of what its file holds
        make_private_dir(directory)

    def path(self, company: str) -> Path:
        return self.directory / f"{company}.json"  # company ids are [A-Za-z0-9_-]: safe names

    def read(self, company: str) -> str | None:
        """The cached creds text, or None (no file, or one that cannot be trusted)."""
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

    def write(self, company: str, text: str) -> bool:
        """Store `text` for `company` durably; False when the file already held it."""
        digest = _digest(text)
        if company not in self._written:  # first write of this process: what is on disk?
            self.read(company)  # records the file's digest if the file is sound
        if self._written.get(company) == digest:
            return False
        header = orjson.dumps({"format": FORMAT, "version": VERSION, "company": company,
                               "sha256": digest})
        path = self.path(company)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
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
        os.replace(tmp, path)
        fsync_dir(self.directory)
        self._written[company] = digest
        return True
