"""What the disk-fault filesystem costs: the resilient store's journal append (one record,
write + fdatasync, as an acknowledged write during an outage) on the FUSE mount vs a plain
directory, in the same run, calls alternating.

Two baselines, both printed and recorded as figures (not gated: the FUSE layer is a test
instrument, not part of the store):
- the plain directory the chaos scenarios would otherwise use (the work disk: its fdatasync
  reaches a real device, which the FUSE filesystem never does, so this ratio can be below 1);
- tmpfs (/dev/shm), where fdatasync costs nothing: the FUSE layer's own overhead per append
  (two round trips through the kernel and the filesystem's Python process).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.authstate.resilient.journal import Journal
from harness.bench.compare import Comparison, paired_calls
from harness.faults.disk import DiskUnavailable, FaultyDisk, unavailable

pytestmark = pytest.mark.bench

APPENDS = 400
ROW = ("session", "5511999.1", "x" * 1200)  # a Signal session, the most common journaled write
SHM = Path("/dev/shm")


@pytest.fixture
def fuse_dir(tmp_path: Path) -> Iterator[Path]:
    if (missing := unavailable()) is not None:
        pytest.skip(f"disk faults need FUSE: {missing.reason} ({missing.hint})")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        disk = FaultyDisk.start(mountpoint, tmp_path / "backing")
    except DiskUnavailable as exc:
        pytest.skip(f"disk faults need FUSE: {exc}")
    try:
        yield mountpoint
    finally:
        disk.stop()


async def _append_p50(ours_dir: Path, base_dir: Path) -> tuple[float, float, float, float]:
    ours = await asyncio.to_thread(Journal.open, ours_dir / "journal.wal")
    base = await asyncio.to_thread(Journal.open, base_dir / "journal.wal")
    try:
        ours_t, base_t = await paired_calls(
            lambda: ours.append("co", "keys", 1.0, rows=[ROW]),
            lambda: base.append("co", "keys", 1.0, rows=[ROW]), iterations=APPENDS, warmup=20)
    finally:
        await ours.close()
        await base.close()
    return (ours_t.percentile(50) * 1e3, base_t.percentile(50) * 1e3,
            ours_t.percentile(99) * 1e3, base_t.percentile(99) * 1e3)


def _record(record_comparison, name: str, baseline: str,  # type: ignore[no-untyped-def]
            figures: tuple[float, float, float, float]) -> Comparison:
    ours, base, ours99, base99 = figures
    return record_comparison(Comparison(
        name, "p50 latency", "ms", ours, base, higher_is_better=False, target=10.0,
        rounds=APPENDS, gated=False,
        note=f"journal append (1 record of {len(ROW[2])} B, write + fdatasync) on the disk-fault "
             f"FUSE filesystem vs {baseline}; p99 {ours99:.3f} vs {base99:.3f} ms; not gated"))


def test_journal_append_on_fuse_vs_plain_directory(bench_loop, fuse_dir, tmp_path,
                                                    record_comparison) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    figures = bench_loop.run_until_complete(_append_p50(fuse_dir, plain))
    c = _record(record_comparison, "disk faults: journal append on FUSE vs plain directory",
                f"a plain directory on the same disk ({plain.parent})", figures)
    assert c.ours > 0 and c.baseline > 0


def test_journal_append_on_fuse_vs_tmpfs(bench_loop, fuse_dir, record_comparison) -> None:
    if not SHM.is_dir():
        pytest.skip("no /dev/shm (tmpfs) to measure the FUSE layer's own cost against")
    with tempfile.TemporaryDirectory(dir=SHM) as shm:
        figures = bench_loop.run_until_complete(_append_p50(fuse_dir, Path(shm)))
    c = _record(record_comparison, "disk faults: journal append on FUSE vs tmpfs",
                "tmpfs (fdatasync costs nothing there: the FUSE layer's own cost)", figures)
    assert c.ours > 0 and c.baseline > 0
