"""The file-I/O seam of the store: every byte the store reads or writes goes through a FileIO.

`RealFileIO` is the production implementation (os.pwrite, os.fdatasync, read-only
mmap). `FaultyFileIO` works on the same real files but remembers, per file, what
each write overwrote since that file's last fdatasync, so a test can simulate a
power cut and the other faults the store must survive:

| fault | how to inject | what the store must do |
|---|---|---|
| lost unsynced tail | `crash(lose_unsynced=True)` | recovery truncates to the last flushed record |
| torn last write | `crash(torn_keep_bytes=n)` | only the first n bytes of the last pwrite survive |
| bit flip | `flip_bit(path, pos, bit)` | CRC check on recovery catches it |
| disk full | `fail_enospc_after(n)` | partial write like the kernel's, then ENOSPC |
| EIO on fdatasync | `fail_next_fdatasync()` | the flush surfaces as StoreError |

Faults are explicit calls, so a seeded test decides where they land and can
print the seed to replay them. Writes never go through a map: a store into a
shared map of a file on a full disk raises SIGBUS, which no Python code can
handle. Maps are read-only (PROT_READ, MAP_SHARED) and see pwrite's bytes
through the page cache.
"""

from __future__ import annotations

import dataclasses
import errno
import mmap
import os
from typing import Protocol

ZERO_FILL_CHUNK_SIZE = 1 << 20


class FileIO(Protocol):
    """Everything the store asks of the file system; paths are absolute or relative strings."""

    def open(self, path: str, *, create: bool = False, size: int | None = None,
             writable: bool = True) -> int:
        """Open and return an fd (read-only unless writable). With create, make the file
        (it must not exist) and zero-fill it to size."""

    def pwrite(self, fd: int, data: bytes | bytearray | memoryview, pos: int) -> int: ...

    def pread(self, fd: int, n: int, pos: int) -> bytes: ...

    def fdatasync(self, fd: int) -> None: ...

    def ftruncate(self, fd: int, size: int) -> None: ...

    def file_size(self, fd: int) -> int: ...

    def close(self, fd: int) -> None: ...

    def unlink(self, path: str) -> None: ...

    def listdir(self, path: str) -> list[str]: ...

    def exists(self, path: str) -> bool: ...

    def makedirs(self, path: str) -> None: ...

    def rmdir(self, path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None: ...

    def fsync_dir(self, path: str) -> None: ...

    def mtime_ms(self, path: str) -> int: ...

    def same_file(self, fd: int, path: str) -> bool:
        """True when fd is still the file at path (not one deleted and created again)."""

    def mmap_readonly(self, fd: int, size: int) -> mmap.mmap: ...


def write_all(io: FileIO, fd: int, data: bytes | bytearray | memoryview, pos: int) -> None:
    """pwrite until every byte is written (the kernel may return a short count)."""
    view = memoryview(data)
    done = 0
    total = len(view)
    while done < total:
        n = io.pwrite(fd, view[done:] if done else view, pos + done)
        if n <= 0:
            raise OSError(errno.EIO, f"pwrite returned {n}")
        done += n


def zero_fill(io: FileIO, fd: int, start: int, end: int) -> None:
    """Write zeros over [start, end): real blocks, not holes (fdatasync into them is cheaper)."""
    if end <= start:
        return
    zeros = bytes(min(ZERO_FILL_CHUNK_SIZE, end - start))
    pos = start
    while pos < end:
        n = min(len(zeros), end - pos)
        write_all(io, fd, memoryview(zeros)[:n], pos)
        pos += n


class RealFileIO:
    """Production file I/O."""

    def open(self, path: str, *, create: bool = False, size: int | None = None,
             writable: bool = True) -> int:
        flags = (os.O_RDWR if writable or create else os.O_RDONLY) | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
        if create and size:
            try:
                zero_fill(self, fd, 0, size)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def pwrite(self, fd: int, data: bytes | bytearray | memoryview, pos: int) -> int:
        return os.pwrite(fd, data, pos)

    def pread(self, fd: int, n: int, pos: int) -> bytes:
        return os.pread(fd, n, pos)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def file_size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def close(self, fd: int) -> None:
        os.close(fd)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def mtime_ms(self, path: str) -> int:
        return os.stat(path).st_mtime_ns // 1_000_000

    def same_file(self, fd: int, path: str) -> bool:
        try:
            at_path = os.stat(path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)

    def mmap_readonly(self, fd: int, size: int) -> mmap.mmap:
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)


@dataclasses.dataclass(slots=True)
class _Undo:
    """What one unsynced pwrite overwrote: restore `old` at `pos`, then the size to `old_size`."""

    pos: int
    old: bytes
    new_len: int
    old_size: int


@dataclasses.dataclass(slots=True)
class _LastWrite:
    path: str
    pos: int
    data: bytes


class FaultyFileIO(RealFileIO):
    """Real files plus injectable faults (see the module docstring).

    Undo logs are kept per path (a file may be open through several fds) and
    cleared by an fdatasync of that file. `crash()` closes every fd this object
    opened; the store object that used it must be dropped, and a new one opened
    on the same directory runs recovery.
    """

    def __init__(self) -> None:
        self._path_of: dict[int, str] = {}
        self._undo: dict[str, list[_Undo]] = {}
        self._last_write: _LastWrite | None = None
        self._last_write_by_path: dict[str, _LastWrite] = {}
        self._enospc_budget: int | None = None
        self._eio_next_fdatasync = False
        self.pwrite_count = 0
        self.fdatasync_count = 0
        self.crashed = False

    # --- fault controls ---------------------------------------------------------

    def fail_enospc_after(self, n_bytes: int) -> None:
        """Let n_bytes more be written, then fail pwrite with ENOSPC (a crossing write is short)."""
        assert n_bytes >= 0
        self._enospc_budget = n_bytes

    def clear_enospc(self) -> None:
        self._enospc_budget = None

    def fail_next_fdatasync(self) -> None:
        """The next fdatasync raises EIO (and syncs nothing)."""
        self._eio_next_fdatasync = True

    def flip_bit(self, path: str, pos: int, bit: int = 0) -> None:
        """Flip one bit of a file behind the store's back (media corruption)."""
        assert 0 <= bit < 8
        fd = os.open(path, os.O_RDWR)
        try:
            old = os.pread(fd, 1, pos)
            assert len(old) == 1, f"{path}: no byte at {pos}"
            os.pwrite(fd, bytes([old[0] ^ (1 << bit)]), pos)
        finally:
            os.close(fd)

    def unsynced_bytes(self) -> int:
        return sum(u.new_len for log in self._undo.values() for u in log)

    def crash(self, *, lose_unsynced: bool = True, torn_keep_bytes: int | None = None,
              torn_path: str | None = None) -> None:
        """Simulate a crash: close every fd; optionally drop unsynced writes and tear the last one.

        lose_unsynced: every pwrite since its file's last fdatasync is undone
        (bytes and file size), newest first - a power cut with nothing written back.
        Without it (kill -9) the writes stay, still unsynced: a later crash(lose_unsynced=True)
        can undo them unless something fdatasyncs them first.
        torn_keep_bytes: the last pwrite, if still unsynced, keeps only its first
        n bytes (the rest reverts), whether or not the other unsynced writes survive.
        torn_path: tear the last pwrite to this file instead of the last pwrite of all.
        """
        for fd in list(self._path_of):
            try:
                os.close(fd)
            except OSError:
                pass
        self._path_of.clear()
        last = self._last_write if torn_path is None else self._last_write_by_path.get(torn_path)
        last_undo: _Undo | None = None
        if last is not None and self._undo.get(last.path):
            last_undo = self._undo[last.path][-1]
        if lose_unsynced:
            for path, log in self._undo.items():
                if not os.path.exists(path):
                    continue
                self._apply_undo(path, log)
            self._undo.clear()
        elif torn_keep_bytes is not None and last is not None and last_undo is not None:
            self._apply_undo(last.path, [last_undo])
            # the torn write's pre-image stays on record: the kept prefix is still unsynced
        if torn_keep_bytes is not None and last is not None and last_undo is not None:
            keep = max(0, min(torn_keep_bytes, len(last.data)))
            if keep and os.path.exists(last.path):
                fd = os.open(last.path, os.O_RDWR)
                try:
                    os.pwrite(fd, last.data[:keep], last.pos)
                finally:
                    os.close(fd)
        # After a process crash the page cache keeps unsynced data, still unsynced: the undo
        # logs stay, so a later power cut can still lose it.
        self._last_write = None
        self._last_write_by_path.clear()
        self._enospc_budget = None
        self._eio_next_fdatasync = False
        self.crashed = True

    @staticmethod
    def _apply_undo(path: str, log: list[_Undo]) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            for undo in reversed(log):
                if undo.old:
                    os.pwrite(fd, undo.old, undo.pos)
                if os.fstat(fd).st_size != undo.old_size:
                    os.ftruncate(fd, undo.old_size)
        finally:
            os.close(fd)

    # --- FileIO -------------------------------------------------------------------

    def open(self, path: str, *, create: bool = False, size: int | None = None,
             writable: bool = True) -> int:
        if create:
            self._undo.pop(path, None)
        fd = super().open(path, create=create, size=None, writable=writable)
        self._path_of[fd] = path
        if create and size:
            try:
                zero_fill(self, fd, 0, size)
            except BaseException:
                self.close(fd)
                raise
        return fd

    def pwrite(self, fd: int, data: bytes | bytearray | memoryview, pos: int) -> int:
        path = self._path_of[fd]
        n = len(data)
        if self._enospc_budget is not None:
            if self._enospc_budget <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
            if n > self._enospc_budget:
                n = self._enospc_budget
                data = memoryview(data)[:n]
            self._enospc_budget -= n
        old_size = os.fstat(fd).st_size
        old = os.pread(fd, n, pos) if pos < old_size else b""
        self._undo.setdefault(path, []).append(_Undo(pos, old, n, old_size))
        written = os.pwrite(fd, data, pos)
        self._last_write = self._last_write_by_path[path] = _LastWrite(path, pos, bytes(data[:written]))
        self.pwrite_count += 1
        return written

    def fdatasync(self, fd: int) -> None:
        if self._eio_next_fdatasync:
            self._eio_next_fdatasync = False
            raise OSError(errno.EIO, os.strerror(errno.EIO), self._path_of.get(fd, "?"))
        os.fdatasync(fd)
        self.fdatasync_count += 1
        path = self._path_of[fd]
        self._undo.pop(path, None)
        self._last_write_by_path.pop(path, None)
        if self._last_write is not None and self._last_write.path == path:
            self._last_write = None

    def ftruncate(self, fd: int, size: int) -> None:
        # A truncate is treated as durable at once (recovery syncs right after it).
        os.ftruncate(fd, size)
        self._undo.pop(self._path_of[fd], None)

    def close(self, fd: int) -> None:
        self._path_of.pop(fd, None)
        os.close(fd)

    def unlink(self, path: str) -> None:
        self._undo.pop(path, None)
        os.unlink(path)

    def rename(self, src: str, dst: str) -> None:
        if src in self._undo:
            self._undo[dst] = self._undo.pop(src)
        for fd, p in self._path_of.items():
            if p == src:
                self._path_of[fd] = dst
        if src in self._last_write_by_path:
            moved = self._last_write_by_path.pop(src)
            moved.path = dst
            self._last_write_by_path[dst] = moved
        os.rename(src, dst)
