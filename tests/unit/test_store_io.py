"""The file-I/O seam: RealFileIO basics and every fault FaultyFileIO injects."""

from __future__ import annotations

import errno
import os

import pytest

from rocketpy.store.io import FaultyFileIO, RealFileIO, write_all, zero_fill


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_real_open_create_zero_fills_to_size(tmp_path):
    io = RealFileIO()
    path = str(tmp_path / "f")
    fd = io.open(path, create=True, size=10_000)
    assert io.file_size(fd) == 10_000
    assert io.pwrite(fd, b"abc", 5) == 3
    assert io.pread(fd, 4, 4) == b"\0abc"
    io.fdatasync(fd)
    mm = io.mmap_readonly(fd, 10_000)
    assert mm[5:8] == b"abc"
    io.pwrite(fd, b"Z", 5)
    assert mm[5:6] == b"Z", "a read-only shared map sees pwrite's bytes"
    with pytest.raises(TypeError):
        mm[0] = 1  # type: ignore[index]
    mm.close()
    io.close(fd)
    with pytest.raises(FileExistsError):
        io.open(path, create=True, size=1)
    assert io.listdir(str(tmp_path)) == ["f"]
    io.rename(path, path + "2")
    io.fsync_dir(str(tmp_path))
    assert io.exists(path + "2") and not io.exists(path)
    io.unlink(path + "2")


def test_write_all_and_zero_fill(tmp_path):
    io = RealFileIO()
    fd = io.open(str(tmp_path / "f"), create=True, size=0)
    write_all(io, fd, b"\xff" * 5000, 0)
    zero_fill(io, fd, 10, 4000)
    data = io.pread(fd, 5000, 0)
    assert data[:10] == b"\xff" * 10 and data[10:4000] == bytes(3990) and data[4000:] == b"\xff" * 1000
    io.close(fd)


def test_lose_unsynced_restores_bytes_and_size(tmp_path):
    io = FaultyFileIO()
    path = str(tmp_path / "f")
    fd = io.open(path, create=True, size=100)
    io.fdatasync(fd)
    io.pwrite(fd, b"synced", 0)
    io.fdatasync(fd)
    io.pwrite(fd, b"lost-1", 10)
    io.pwrite(fd, b"XXXX", 0)            # overwrites synced bytes: the old ones must come back
    io.pwrite(fd, b"grow", 100)          # extends the file: the size must come back
    assert io.unsynced_bytes() == 14
    io.crash(lose_unsynced=True)
    data = _read(path)
    assert len(data) == 100
    assert data[:6] == b"synced" and data[10:16] == bytes(6)


def test_unsynced_survives_process_crash(tmp_path):
    io = FaultyFileIO()
    path = str(tmp_path / "f")
    fd = io.open(path, create=True, size=16)
    io.pwrite(fd, b"kept", 0)
    io.crash(lose_unsynced=False)        # kill -9: the page cache keeps it
    assert _read(path)[:4] == b"kept"


def test_torn_last_write_keeps_a_prefix(tmp_path):
    io = FaultyFileIO()
    path = str(tmp_path / "f")
    fd = io.open(path, create=True, size=32)
    io.fdatasync(fd)
    io.pwrite(fd, b"first", 0)
    io.pwrite(fd, b"0123456789", 10)
    io.crash(lose_unsynced=False, torn_keep_bytes=4)
    data = _read(path)
    assert data[:5] == b"first"
    assert data[10:20] == b"0123" + bytes(6)


def test_torn_with_lost_unsynced(tmp_path):
    io = FaultyFileIO()
    path = str(tmp_path / "f")
    fd = io.open(path, create=True, size=32)
    io.fdatasync(fd)
    io.pwrite(fd, b"first", 0)
    io.pwrite(fd, b"0123456789", 10)
    io.crash(lose_unsynced=True, torn_keep_bytes=3)
    data = _read(path)
    assert data[:5] == bytes(5) and data[10:20] == b"012" + bytes(7)


def test_flip_bit(tmp_path):
    io = FaultyFileIO()
    path = str(tmp_path / "f")
    fd = io.open(path, create=True, size=8)
    io.close(fd)
    io.flip_bit(path, 3, 7)
    assert _read(path) == bytes(3) + b"\x80" + bytes(4)


def test_enospc_partial_write_then_error(tmp_path):
    io = FaultyFileIO()
    fd = io.open(str(tmp_path / "f"), create=True, size=64)
    io.fail_enospc_after(10)
    assert io.pwrite(fd, b"a" * 6, 0) == 6
    assert io.pwrite(fd, b"b" * 6, 6) == 4, "a write crossing the limit is short, like the kernel's"
    with pytest.raises(OSError) as info:
        io.pwrite(fd, b"c", 10)
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        write_all(io, fd, b"d" * 3, 20)
    io.clear_enospc()
    assert io.pwrite(fd, b"e", 30) == 1


def test_eio_on_next_fdatasync_keeps_data_unsynced(tmp_path):
    io = FaultyFileIO()
    path = str(tmp_path / "f")
    fd = io.open(path, create=True, size=8)
    io.fdatasync(fd)
    io.pwrite(fd, b"data", 0)
    io.fail_next_fdatasync()
    with pytest.raises(OSError) as info:
        io.fdatasync(fd)
    assert info.value.errno == errno.EIO
    assert io.unsynced_bytes() == 4
    io.crash(lose_unsynced=True)
    assert _read(path) == bytes(8)


def test_rename_carries_undo_log(tmp_path):
    io = FaultyFileIO()
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    fd = io.open(a, create=True, size=8)
    io.fdatasync(fd)
    io.pwrite(fd, b"x", 0)
    io.rename(a, b)
    io.crash(lose_unsynced=True)
    assert _read(b) == bytes(8)
    assert not os.path.exists(a)
