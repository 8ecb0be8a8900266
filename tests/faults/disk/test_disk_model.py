"""The disk model's semantics, without a mount: what a power loss keeps and what it forgets,
and how the I/O faults behave (the FUSE tests check the same claims through real syscalls)."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from harness.faults.disk.faultstate import EVERY
from harness.faults.disk.model import LazyDisk


def write_file(disk: LazyDisk, path: str, data: bytes, *, fsync: bool = False,
               dir_fsync: bool = False) -> int:
    fh = disk.create(path, 0o600)
    assert disk.write(path, data, 0, fh) == len(data)
    if fsync:
        disk.fsync(path, fh)
    if dir_fsync:
        disk.fsyncdir(os.path.dirname(path) or "/")
    disk.release(fh)
    return fh


def content(disk: LazyDisk, path: str) -> bytes:
    return disk.read(path, 1 << 20, 0, None)


def test_unsynced_write_is_gone_after_power_loss() -> None:
    disk = LazyDisk()
    write_file(disk, "/f", b"durable", fsync=True, dir_fsync=True)
    fh = disk.open("/f", os.O_WRONLY)
    disk.write("/f", b" and more", 7, fh)
    assert content(disk, "/f") == b"durable and more"  # every process sees it until the loss
    report = disk.power_loss()
    assert content(disk, "/f") == b"durable"
    assert report["bytes_dropped"] == len(b" and more")
    assert report["files"] == {"/f": 9} and report["files_affected"] == 1
    assert disk.counters.bytes_dropped == 9


def test_fsynced_write_survives() -> None:
    disk = LazyDisk()
    write_file(disk, "/f", b"abc", fsync=True, dir_fsync=True)
    assert disk.power_loss()["bytes_dropped"] == 0
    assert content(disk, "/f") == b"abc"


def test_new_file_needs_a_directory_fsync() -> None:
    disk = LazyDisk()
    write_file(disk, "/named", b"y", fsync=True, dir_fsync=True)
    write_file(disk, "/only-data", b"x", fsync=True)  # its data is durable, its name is not
    report = disk.power_loss()
    assert "+/only-data" in report["names_undone"]
    assert disk.readdir("/") == [".", "..", "named"]


def test_rename_without_directory_fsync_is_undone() -> None:
    disk = LazyDisk()
    write_file(disk, "/journal", b"old", fsync=True, dir_fsync=True)
    write_file(disk, "/journal.tmp", b"new", fsync=True)
    disk.rename("/journal.tmp", "/journal")
    assert content(disk, "/journal") == b"new"
    disk.power_loss()
    assert content(disk, "/journal") == b"old"
    assert disk.readdir("/") == [".", "..", "journal"]


def test_rename_with_directory_fsync_is_kept() -> None:
    disk = LazyDisk()
    write_file(disk, "/journal", b"old", fsync=True, dir_fsync=True)
    write_file(disk, "/journal.tmp", b"new", fsync=True)
    disk.rename("/journal.tmp", "/journal")
    disk.fsyncdir("/")
    disk.power_loss()
    assert content(disk, "/journal") == b"new"


def test_unlink_without_directory_fsync_is_undone() -> None:
    disk = LazyDisk()
    write_file(disk, "/f", b"abc", fsync=True, dir_fsync=True)
    disk.unlink("/f")
    report = disk.power_loss()
    assert report["names_undone"] == ["-/f"]
    assert content(disk, "/f") == b"abc"


def test_fsynced_data_of_a_file_renamed_later_follows_its_new_durable_name() -> None:
    disk = LazyDisk()
    disk.mkdir("/d", 0o700)
    disk.fsyncdir("/")
    write_file(disk, "/d/a", b"1", fsync=True, dir_fsync=True)
    fh = disk.open("/d/a", os.O_WRONLY)
    disk.write(None, b"2", 1, fh)
    disk.fsync(None, fh)
    disk.power_loss()
    assert content(disk, "/d/a") == b"12"


def test_torn_op_persists_a_prefix_of_the_last_write() -> None:
    disk = LazyDisk()
    write_file(disk, "/wal", b"H" * 8, fsync=True, dir_fsync=True)
    fh = disk.open("/wal", os.O_WRONLY)
    disk.write(None, b"A" * 100, 8, fh)  # unsynced, persisted whole (it came first)
    disk.write(None, b"B" * 100, 108, fh)  # the last write: torn
    report = disk.power_loss("torn-op", keep_bytes=30)
    assert content(disk, "/wal") == b"H" * 8 + b"A" * 100 + b"B" * 30
    torn = report["torn"]
    assert torn["path"] == "/wal" and torn["torn_write_kept_bytes"] == 30
    assert report["bytes_dropped"] == 70


def test_torn_op_never_persists_the_whole_write() -> None:
    disk = LazyDisk()
    write_file(disk, "/wal", b"xyz", dir_fsync=True)
    report = disk.power_loss("torn-op", keep_bytes=10_000)
    assert report["torn"]["torn_write_kept_bytes"] == 2
    assert content(disk, "/wal") == b"xy"


def test_torn_seq_persists_sectors_out_of_order() -> None:
    disk = LazyDisk()
    write_file(disk, "/wal", b"", fsync=True, dir_fsync=True)
    fh = disk.open("/wal", os.O_WRONLY)
    data = bytes(range(256)) * 16  # 4096 bytes: 8 sectors of 512
    disk.write(None, data, 0, fh)
    report = disk.power_loss("torn-seq", seed=7)
    torn = report["torn"]
    assert torn["pieces"] == 8 and torn["reordered"]
    after = content(disk, "/wal")
    assert after[-512:] == data[-512:]  # the last sector always lands
    missing = [i for i in range(8) if after[i * 512:(i + 1) * 512] != data[i * 512:(i + 1) * 512]]
    assert missing, "an earlier sector must be missing: the result is not a prefix"
    assert all(after[i * 512:(i + 1) * 512] == bytes(512) for i in missing)  # a hole of zeros
    assert report["bytes_dropped"] == len(missing) * 512


def test_enospc_mid_write_gives_a_short_write_then_enospc() -> None:
    disk = LazyDisk()
    fh = disk.create("/f", 0o600)
    disk.set_faults(enospc_budget=10)
    assert disk.write(None, b"x" * 25, 0, fh) == 10
    with pytest.raises(OSError) as caught:
        disk.write(None, b"y", 10, fh)
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as caught:
        disk.create("/g", 0o600)
    assert caught.value.errno == errno.ENOSPC
    assert disk.counters.short_writes == 1 and disk.counters.enospc_errors == 2
    disk.clear_faults()
    assert disk.write(None, b"y", 10, fh) == 1


def test_eio_on_write_counts_down() -> None:
    disk = LazyDisk()
    fh = disk.create("/f", 0o600)
    disk.set_faults(eio_writes=1)
    with pytest.raises(OSError) as caught:
        disk.write(None, b"a", 0, fh)
    assert caught.value.errno == errno.EIO
    assert disk.write(None, b"a", 0, fh) == 1


def test_eio_on_fsync_drops_the_pages_fsyncgate() -> None:
    disk = LazyDisk()
    write_file(disk, "/f", b"base", fsync=True, dir_fsync=True)
    fh = disk.open("/f", os.O_WRONLY)
    disk.write(None, b"LOST", 4, fh)
    disk.set_faults(eio_fsyncs=1)
    with pytest.raises(OSError) as caught:
        disk.fsync(None, fh)
    assert caught.value.errno == errno.EIO
    assert content(disk, "/f") == b"baseLOST"  # still in the page cache
    disk.fsync(None, fh)  # the retry "succeeds"...
    assert disk.status()["unsynced_bytes"] == 0
    disk.power_loss()
    assert content(disk, "/f") == b"base"  # ...without the data
    assert disk.counters.bytes_dropped_by_failed_fsync == 4


def test_eio_on_every_fsync() -> None:
    disk = LazyDisk()
    fh = disk.create("/f", 0o600)
    disk.set_faults(eio_fsyncs=EVERY)
    for _ in range(3):
        with pytest.raises(OSError):
            disk.fsync(None, fh)
    with pytest.raises(OSError):
        disk.fsyncdir("/")
    assert disk.counters.eio_fsync_errors == 4


def test_fsync_delay_delays() -> None:
    disk = LazyDisk()
    fh = disk.create("/f", 0o600)
    disk.set_faults(fsync_delay_s=0.2)
    started = time.monotonic()
    disk.fsync(None, fh)
    assert time.monotonic() - started >= 0.2
    assert disk.counters.fsyncs_delayed == 1


def test_a_held_fsync_cut_by_a_power_loss_never_syncs() -> None:
    disk = LazyDisk()
    write_file(disk, "/f", b"", fsync=True, dir_fsync=True)
    fh = disk.open("/f", os.O_WRONLY)
    disk.write(None, b"in flight", 0, fh)
    disk.gate.hold()
    outcome: list[int] = []

    def sync() -> None:
        try:
            disk.fsync(None, fh)
            outcome.append(0)
        except OSError as exc:
            outcome.append(exc.errno or -1)

    thread = threading.Thread(target=sync)
    thread.start()
    while disk.gate.waiting == 0:
        time.sleep(0.005)
    assert disk.wait_idle(idle_s=0.01, timeout_s=2)  # a held fsync does not count as busy
    report = disk.power_loss()
    disk.gate.release()
    thread.join(5)
    assert outcome == [errno.EIO]
    assert report["bytes_dropped"] == 9 and content(disk, "/f") == b""


def test_backing_directory_holds_exactly_the_durable_state(tmp_path: Path) -> None:
    disk = LazyDisk(tmp_path)
    disk.mkdir("/creds", 0o700)
    disk.fsyncdir("/")
    write_file(disk, "/creds/a.json", b"{}", fsync=True, dir_fsync=True)
    write_file(disk, "/wal", b"synced", fsync=True, dir_fsync=True)
    fh = disk.open("/wal", os.O_WRONLY)
    disk.write(None, b"+unsynced", 6, fh)
    write_file(disk, "/unnamed", b"data", fsync=True)
    assert (tmp_path / "wal").read_bytes() == b"synced"
    assert (tmp_path / "creds" / "a.json").read_bytes() == b"{}"
    assert not (tmp_path / "unnamed").exists()
    again = LazyDisk(tmp_path)  # a new mount starts from what survived
    assert content(again, "/wal") == b"synced"
    assert again.readdir("/creds") == [".", "..", "a.json"]
    disk.rename("/wal", "/wal.old")
    disk.fsyncdir("/")
    assert not (tmp_path / "wal").exists()
    assert (tmp_path / "wal.old").read_bytes() == b"synced"


def test_enospc_that_clears_by_itself_after_some_refusals() -> None:
    disk = LazyDisk()
    fh = disk.create("/f", 0o600)
    disk.set_faults(enospc_budget=4, enospc_refusals=1)
    assert disk.write(None, b"abcdef", 0, fh) == 4  # short
    with pytest.raises(OSError):
        disk.write(None, b"ef", 4, fh)  # the one refusal...
    assert disk.write(None, b"ef", 4, fh) == 2  # ...then space is back
    assert content(disk, "/f") == b"abcdef"
    assert disk.counters.failed_paths == ["short write (open file)", "ENOSPC (open file)"]


def test_a_slow_refusal_waits_without_holding_up_other_calls() -> None:
    disk = LazyDisk()
    fh = disk.create("/f", 0o600)
    disk.set_faults(enospc_budget=0, enospc_refusals=1, enospc_delay_s=0.3)
    errors: list[int] = []

    def refused() -> None:
        try:
            disk.write(None, b"x", 0, fh)
        except OSError as exc:
            errors.append(exc.errno or 0)

    thread = threading.Thread(target=refused)
    started = time.monotonic()
    thread.start()
    time.sleep(0.05)
    assert disk.write(None, b"y", 0, fh) == 1  # space is back, and the lock is free
    thread.join(5)
    assert errors == [errno.ENOSPC] and time.monotonic() - started >= 0.3


def test_torn_op_tears_a_durably_named_file_rather_than_a_temporary_one() -> None:
    disk = LazyDisk()
    write_file(disk, "/wal", b"", fsync=True, dir_fsync=True)
    fh = disk.open("/wal", os.O_WRONLY)
    disk.write(None, b"W" * 10, 0, fh)
    write_file(disk, "/creds.tmp", b"T" * 10)  # written last, but gone after the loss anyway
    report = disk.power_loss("torn-op", keep_bytes=4)
    assert report["torn"]["path"] == "/wal"
    assert content(disk, "/wal") == b"WWWW"
