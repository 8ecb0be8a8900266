"""The fault-injecting filesystem through real syscalls on a real FUSE mount: what a power
loss keeps and forgets, torn writes, ENOSPC mid-write, EIO on fsync (fsyncgate), fsync delay,
kernel flock, and that no mount outlives the harness."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.faults.disk import FaultyDisk, unavailable
from harness.faults.disk.mount import Unavailable, _mounted

REPO = Path(__file__).resolve().parents[3]


def make(path: Path, data: bytes, *, fsync: bool = True, dir_fsync: bool = True) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    if dir_fsync:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_unsynced_append_is_lost_and_fdatasynced_one_survives(faulty_disk: FaultyDisk) -> None:
    wal = faulty_disk.mountpoint / "journal.wal"
    make(wal, b"HEADER")
    fd = os.open(wal, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"|acked")
        os.fdatasync(fd)
        os.write(fd, b"|unsynced")
    finally:
        os.close(fd)
    assert wal.read_bytes() == b"HEADER|acked|unsynced"
    report = faulty_disk.power_loss()
    assert wal.read_bytes() == b"HEADER|acked"
    assert report["bytes_dropped"] == len(b"|unsynced")
    assert report["files"] == {"/journal.wal": 9}
    assert (faulty_disk.backing / "journal.wal").read_bytes() == b"HEADER|acked"


def test_create_and_rename_without_directory_fsync_are_undone(faulty_disk: FaultyDisk) -> None:
    root = faulty_disk.mountpoint
    make(root / "journal.wal", b"old")
    make(root / "journal.wal.tmp", b"new", dir_fsync=False)  # fsynced data, no dir fsync
    os.replace(root / "journal.wal.tmp", root / "journal.wal")
    assert (root / "journal.wal").read_bytes() == b"new"
    report = faulty_disk.power_loss()
    assert (root / "journal.wal").read_bytes() == b"old"
    assert sorted(os.listdir(root)) == ["journal.wal"]
    assert "+/journal.wal" in report["names_undone"]
    make(root / "journal.wal.tmp", b"new", dir_fsync=False)
    os.replace(root / "journal.wal.tmp", root / "journal.wal")
    fsync_dir(root)  # now the rename is durable
    faulty_disk.power_loss()
    assert (root / "journal.wal").read_bytes() == b"new"


def test_torn_op_keeps_a_prefix_of_the_last_write(faulty_disk: FaultyDisk) -> None:
    wal = faulty_disk.mountpoint / "wal"
    make(wal, b"")
    fd = os.open(wal, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"R" * 1000)
    finally:
        os.close(fd)
    report = faulty_disk.power_loss("torn-op", keep_bytes=123)
    assert wal.read_bytes() == b"R" * 123
    assert report["torn"]["torn_write_kept_bytes"] == 123 and report["bytes_dropped"] == 877


def test_enospc_mid_write_is_a_short_write_then_enospc(faulty_disk: FaultyDisk) -> None:
    path = faulty_disk.mountpoint / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        faulty_disk.enospc(after_bytes=100)
        assert os.write(fd, b"x" * 300) == 100
        with pytest.raises(OSError) as caught:
            os.write(fd, b"x" * 200)
        assert caught.value.errno == errno.ENOSPC
        with pytest.raises(OSError) as caught:
            os.open(faulty_disk.mountpoint / "new", os.O_WRONLY | os.O_CREAT, 0o600)
        assert caught.value.errno == errno.ENOSPC
        faulty_disk.clear_faults()
        assert os.write(fd, b"y") == 1
    finally:
        os.close(fd)
    counters = faulty_disk.status()["counters"]
    assert counters["short_writes"] == 1 and counters["enospc_errors"] == 2


def test_eio_on_fsync_drops_the_dirty_pages(faulty_disk: FaultyDisk) -> None:
    path = faulty_disk.mountpoint / "f"
    make(path, b"base")
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        os.write(fd, b"LOST")
        faulty_disk.eio("fsync", count=1)
        with pytest.raises(OSError) as caught:
            os.fdatasync(fd)
        assert caught.value.errno == errno.EIO
        assert os.pread(fd, 100, 0) == b"baseLOST"  # still readable...
        os.fdatasync(fd)  # ...and the retry succeeds...
    finally:
        os.close(fd)
    faulty_disk.power_loss()
    assert path.read_bytes() == b"base"  # ...without the data
    assert faulty_disk.status()["counters"]["bytes_dropped_by_failed_fsync"] == 4


def test_eio_on_write(faulty_disk: FaultyDisk) -> None:
    fd = os.open(faulty_disk.mountpoint / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        faulty_disk.eio("write", count=1)
        with pytest.raises(OSError) as caught:
            os.write(fd, b"abc")
        assert caught.value.errno == errno.EIO
        assert os.write(fd, b"abc") == 3
    finally:
        os.close(fd)


def test_fsync_delay_delays_every_fsync(faulty_disk: FaultyDisk) -> None:
    path = faulty_disk.mountpoint / "f"
    make(path, b"x")
    faulty_disk.fsync_delay(0.3)
    fd = os.open(path, os.O_WRONLY)
    try:
        started = time.monotonic()
        os.fdatasync(fd)
        assert time.monotonic() - started >= 0.3
    finally:
        os.close(fd)
    faulty_disk.clear_faults()
    assert faulty_disk.status()["counters"]["fsyncs_delayed"] == 1


def test_flock_is_kept_by_the_kernel_and_released_when_the_holder_dies(
        faulty_disk: FaultyDisk) -> None:
    lock = faulty_disk.mountpoint / "lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; "
         f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT, 0o600); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_the_mount_does_not_outlive_a_killed_harness(tmp_path: Path) -> None:
    if (missing := unavailable()) is not None:
        pytest.skip(f"disk faults need FUSE: {missing.reason} ({missing.hint})")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    script = ("import sys, time; from pathlib import Path; "
              "from harness.faults.disk import FaultyDisk; "
              f"d = FaultyDisk.start(Path({str(mountpoint)!r}), Path({str(tmp_path / 'b')!r})); "
              "print(d.proc.pid, flush=True); time.sleep(60)")
    harness = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                               text=True)
    try:
        assert harness.stdout is not None
        fs_pid = int(harness.stdout.readline())
        assert _mounted(mountpoint)
        harness.kill()  # no cleanup code of the harness runs
        harness.wait(10)
        give_up = time.monotonic() + 20
        while (_mounted(mountpoint) or _alive(fs_pid)) and time.monotonic() < give_up:
            time.sleep(0.1)
        assert not _mounted(mountpoint), "the mount outlived the harness"
        assert not _alive(fs_pid), "the filesystem process outlived the harness"
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purpose
        return stat.read().split()[2] != "Z"


def test_unavailable_says_how_to_enable(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes.util

    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    missing = unavailable()
    assert isinstance(missing, Unavailable)
    assert "libfuse3" in missing.reason and "apt-get install fuse3" in missing.hint
