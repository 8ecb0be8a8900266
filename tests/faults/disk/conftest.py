"""A mounted fault-injecting filesystem per test (skipped, saying how to enable it, where FUSE
cannot be mounted)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.faults.disk import DiskUnavailable, FaultyDisk, unavailable


@pytest.fixture
def faulty_disk(tmp_path: Path) -> Iterator[FaultyDisk]:
    missing = unavailable()
    if missing is not None:
        pytest.skip(f"disk faults need FUSE: {missing.reason} ({missing.hint})")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        disk = FaultyDisk.start(mountpoint, tmp_path / "backing")
    except DiskUnavailable as exc:
        pytest.skip(f"disk faults need FUSE: {exc}")
    try:
        yield disk
    finally:
        disk.stop()
