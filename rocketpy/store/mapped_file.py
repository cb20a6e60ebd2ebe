"""Fixed-size files named by their first byte's global offset (RocketMQ's MappedFile / MappedFileQueue).

A queue is a directory of equally sized files::

    00000000000000000000  00000000000000004096  00000000000000008192 ...
    |<---- file_size ---->|<---- file_size ---->|

Writes go through `pwrite` only; reads go through a read-only shared map of
the file (the kernel page cache is the shared memory between the writer and
reader processes). A write through a map can SIGBUS on a full disk, so no map
here is ever writable.

New files are created under a `.tmp` name, zero-filled by writing (an
fdatasync into written zeros is about twice as fast as into a sparse or
fallocated file, ARCHITECTURE.md), synced, then renamed into place and the
directory synced, so a crash never leaves a short file under a real name.
`prepare_next_file()` does that ahead of time, off the writer's hot path.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading

from rocketpy.errors import CorruptStoreError, StoreError
from rocketpy.store.io import FileIO, write_all, zero_fill

log = logging.getLogger("rocketpy.store")

FILE_NAME_DIGITS = 20
TMP_SUFFIX = ".tmp"
_SCAN_CHUNK_SIZE = 1 << 20
# After a clean stop, recovery looks this far past the end for stray bytes before it
# decides to read the rest of the file.
TAIL_PROBE_SIZE = 64 * 1024


def file_name(file_start: int) -> str:
    """The 20-digit name of the file whose first byte is at global offset file_start."""
    assert 0 <= file_start < 10**FILE_NAME_DIGITS
    return f"{file_start:0{FILE_NAME_DIGITS}d}"


def parse_file_name(name: str) -> int | None:
    if len(name) == FILE_NAME_DIGITS and name.isdigit():
        return int(name)
    return None


class MappedFile:
    """One file of a MappedFileQueue: pwrite to append, a read-only map to read."""

    __slots__ = ("io", "path", "file_start", "file_size", "fd", "writable", "_map", "_view")

    def __init__(self, io: FileIO, path: str, file_start: int, file_size: int, fd: int,
                 writable: bool) -> None:
        self.io = io
        self.path = path
        self.file_start = file_start
        self.file_size = file_size
        self.fd = fd
        self.writable = writable
        self._map: mmap.mmap | None = None
        self._view: memoryview | None = None

    @classmethod
    def create(cls, io: FileIO, dir_path: str, file_start: int, file_size: int) -> MappedFile:
        """Create the file full-size and zero-filled, durable under its final name."""
        path = os.path.join(dir_path, file_name(file_start))
        tmp = path + TMP_SUFFIX
        if io.exists(tmp):
            io.unlink(tmp)
        fd = io.open(tmp, create=True, size=file_size)
        try:
            io.fdatasync(fd)
            io.rename(tmp, path)
            io.fsync_dir(dir_path)
        except BaseException:
            io.close(fd)
            raise
        return cls(io, path, file_start, file_size, fd, True)

    @classmethod
    def open_existing(cls, io: FileIO, path: str, file_start: int, file_size: int, *,
                      writable: bool) -> MappedFile:
        fd = io.open(path, writable=writable)
        actual = io.file_size(fd)
        if actual != file_size:
            io.close(fd)
            raise CorruptStoreError(
                f"{path} is {actual} bytes, expected {file_size}: the file size setting changed or the "
                "file was cut; restore the file or the setting before starting")
        return cls(io, path, file_start, file_size, fd, writable)

    @property
    def file_end(self) -> int:
        return self.file_start + self.file_size

    def write(self, file_pos: int, data: bytes | bytearray | memoryview) -> None:
        assert self.writable, f"{self.path} is open read-only"
        assert 0 <= file_pos and file_pos + len(data) <= self.file_size, (file_pos, len(data))
        write_all(self.io, self.fd, data, file_pos)

    def view(self) -> memoryview:
        """A read-only view of the whole file (mapped on first use)."""
        view = self._view
        if view is None:
            self._map = self.io.mmap_readonly(self.fd, self.file_size)
            view = self._view = memoryview(self._map)
        return view

    def read(self, file_pos: int, size: int) -> memoryview:
        assert 0 <= file_pos and 0 <= size and file_pos + size <= self.file_size
        return self.view()[file_pos:file_pos + size]

    def sync(self) -> None:
        self.io.fdatasync(self.fd)

    def last_nonzero_pos(self, from_pos: int) -> int:
        """File position just past the last non-zero byte at or after from_pos (from_pos if none)."""
        view = self.view()
        end = self.file_size
        while end > from_pos:
            start = max(from_pos, end - _SCAN_CHUNK_SIZE)
            chunk = bytes(view[start:end])
            stripped = len(chunk.rstrip(b"\0"))
            if stripped:
                return start + stripped
            end = start
        return from_pos

    def looks_clean_after(self, file_pos: int) -> bool:
        """True when the TAIL_PROBE_SIZE bytes at file_pos are zero (a quick look, not proof)."""
        end = min(self.file_size, file_pos + TAIL_PROBE_SIZE)
        chunk = bytes(self.view()[file_pos:end])
        return chunk.count(0) == len(chunk)

    def zero_tail(self, file_pos: int, *, thorough: bool = True) -> int:
        """Zero [file_pos, last non-zero byte] and sync; returns how many bytes were zeroed.

        Not thorough (after a clean stop): only if the bytes right after file_pos are dirty.
        """
        if not thorough and self.looks_clean_after(file_pos):
            return 0
        last = self.last_nonzero_pos(file_pos)
        if last > file_pos:
            zero_fill(self.io, self.fd, file_pos, last)
            self.io.fdatasync(self.fd)
        return last - file_pos

    def close(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                # A reader still holds a slice; the map goes when its last slice does.
                pass
            self._map = None
        if self.fd >= 0:
            self.io.close(self.fd)
            self.fd = -1

    def destroy(self) -> None:
        self.close()
        self.io.unlink(self.path)


class MappedFileQueue:
    """A directory of equally sized MappedFiles, addressed by global offset.

    Writer mode (writable=True) creates, zero-fills, truncates and deletes files.
    Reader mode opens files read-only; call `refresh()` to see files the writer
    added or deleted since, and pass the published committed offset as `limit`
    to `read` so a reader never reads past what the writer has committed.
    """

    def __init__(self, io: FileIO, dir_path: str, file_size: int, *, writable: bool = True) -> None:
        assert file_size > 0
        self.io = io
        self.dir_path = dir_path
        self.file_size = file_size
        self.writable = writable
        self.files: list[MappedFile] = []
        # The next file being zero-filled a step at a time: (fd, file_start, bytes filled).
        self._warming: tuple[int, int, int] | None = None
        # Warm-up may run in a background thread of the writer: it and the append path
        # (file_for_write) take this lock, so a file is never created twice.
        self._warm_lock = threading.Lock()

    # --- loading ------------------------------------------------------------------

    def load(self) -> None:
        """Open every file in the directory, checking names, sizes and contiguity."""
        assert not self.files, "load() runs once"
        if not self.io.exists(self.dir_path):
            if not self.writable:
                return
            self.io.makedirs(self.dir_path)
        starts = self._list_starts()
        self.files = [self._open(start) for start in starts]

    def _list_starts(self) -> list[int]:
        starts: list[int] = []
        for name in self.io.listdir(self.dir_path):
            if name.endswith(TMP_SUFFIX):
                if self.writable:
                    self.io.unlink(os.path.join(self.dir_path, name))
                continue
            start = parse_file_name(name)
            if start is None:
                log.warning("ignoring unexpected file %s in %s", name, self.dir_path)
                continue
            if start % self.file_size:
                raise CorruptStoreError(
                    f"{os.path.join(self.dir_path, name)}: name is not a multiple of the file size "
                    f"{self.file_size}; the file size setting changed - restore it")
            starts.append(start)
        starts.sort()
        for prev, cur in zip(starts, starts[1:], strict=False):
            if cur != prev + self.file_size:
                raise CorruptStoreError(
                    f"{self.dir_path}: files {file_name(prev)} and {file_name(cur)} are not contiguous; "
                    "a file is missing")
        return starts

    def _open(self, start: int) -> MappedFile:
        path = os.path.join(self.dir_path, file_name(start))
        return MappedFile.open_existing(self.io, path, start, self.file_size, writable=self.writable)

    def refresh(self) -> None:
        """Reader mode: follow files created or deleted by the writer since the last look.

        A file deleted and created again under the same name (recovery after a writer crash
        deletes files past the recovered end, among them a warmed next file a reader may have
        mapped; the new writer then creates it again) is mapped again: the old map would show
        the deleted file's bytes forever."""
        if not self.io.exists(self.dir_path):
            for mf in self.files:
                mf.close()
            self.files = []
            return
        names = set()
        for name in self.io.listdir(self.dir_path):
            start = parse_file_name(name)
            if start is not None:
                names.add(start)
        keep: list[MappedFile] = []
        for mf in self.files:
            if mf.file_start in names and self.io.same_file(mf.fd, mf.path):
                keep.append(mf)
            else:
                mf.close()
        have = {mf.file_start for mf in keep}
        for start in sorted(names - have):
            try:
                keep.append(self._open(start))
            except FileNotFoundError:
                continue
        keep.sort(key=lambda mf: mf.file_start)
        self.files = keep

    # --- addressing -----------------------------------------------------------------

    @property
    def min_offset(self) -> int:
        """Global offset of the first byte of the first file (0 when empty)."""
        return self.files[0].file_start if self.files else 0

    @property
    def max_file_end(self) -> int:
        return self.files[-1].file_end if self.files else 0

    def file_start_of(self, phys: int) -> int:
        return phys - phys % self.file_size

    def find(self, phys: int) -> MappedFile | None:
        """The file holding global offset phys, or None."""
        files = self.files
        if not files:
            return None
        idx = (phys - files[0].file_start) // self.file_size
        if 0 <= idx < len(files):
            mf = files[idx]
            assert mf.file_start <= phys < mf.file_end
            return mf
        return None

    def read(self, phys: int, size: int, limit: int) -> memoryview | None:
        """size bytes at phys from the map, or None if not all of them lie below limit in one file."""
        if phys < 0 or size < 0 or phys + size > limit:
            return None
        mf = self.find(phys)
        if mf is None:
            return None
        file_pos = phys - mf.file_start
        if file_pos + size > mf.file_size:
            return None
        return mf.read(file_pos, size)

    # --- writing ----------------------------------------------------------------------

    def file_for_write(self, phys: int) -> MappedFile:
        """The file that holds phys, creating it (and only it) if it is the next one."""
        assert self.writable
        mf = self.find(phys)
        if mf is not None:
            return mf
        with self._warm_lock:
            return self._file_for_write_locked(phys)

    def _file_for_write_locked(self, phys: int) -> MappedFile:
        mf = self.find(phys)
        if mf is not None:
            return mf
        start = self.file_start_of(phys)
        if self.files and start != self.files[-1].file_end:
            raise StoreError(
                f"{self.dir_path}: write at {phys} is not in the last file or the next one "
                f"(files end at {self.max_file_end})")
        if self._warming is not None and self._warming[1] == start:
            # The hot path caught up with the warm-up: finish it now.
            while not self._warm_step_locked(self.files[-1].file_start if self.files else 0, self.file_size):
                pass
            mf = self.find(phys)
            assert mf is not None
            return mf
        self._abandon_warming()
        mf = MappedFile.create(self.io, self.dir_path, start, self.file_size)
        self.files.append(mf)
        return mf

    def warm_next_file_step(self, write_pos: int, step_bytes: int) -> bool:
        """Zero-fill up to step_bytes more of the file after write_pos's file, synced as it goes.

        The writer calls this on idle turns, so warming a 1 GiB file never stalls
        puts for more than one step. The file appears under its final name only
        once it is complete (until then it is a .tmp that recovery deletes).
        Returns True when the next file exists.
        """
        assert self.writable and step_bytes > 0
        with self._warm_lock:
            return self._warm_step_locked(write_pos, step_bytes)

    def _warm_step_locked(self, write_pos: int, step_bytes: int) -> bool:
        if not self.files:
            return False
        cur = self.find(write_pos)
        if cur is None or cur is not self.files[-1]:
            return cur is not None
        start = cur.file_end
        if self._warming is None or self._warming[1] != start:
            self._abandon_warming()
            tmp = os.path.join(self.dir_path, file_name(start)) + TMP_SUFFIX
            if self.io.exists(tmp):
                self.io.unlink(tmp)
            self._warming = (self.io.open(tmp, create=True, size=0), start, 0)
        fd, start, filled = self._warming
        end = min(self.file_size, filled + step_bytes)
        try:
            zero_fill(self.io, fd, filled, end)
            self.io.fdatasync(fd)
        except BaseException:
            self._abandon_warming()
            raise
        if end < self.file_size:
            self._warming = (fd, start, end)
            return False
        self._warming = None
        path = os.path.join(self.dir_path, file_name(start))
        try:
            self.io.rename(path + TMP_SUFFIX, path)
            self.io.fsync_dir(self.dir_path)
        except BaseException:
            self.io.close(fd)
            raise
        self.files.append(MappedFile(self.io, path, start, self.file_size, fd, True))
        return True

    def _abandon_warming(self) -> None:
        if self._warming is None:
            return
        fd, start, _ = self._warming
        self._warming = None
        self.io.close(fd)
        tmp = os.path.join(self.dir_path, file_name(start)) + TMP_SUFFIX
        if self.io.exists(tmp):
            self.io.unlink(tmp)

    def prepare_next_file(self, write_pos: int) -> bool:
        """Create the file after the one holding write_pos if missing (warm-up, off the hot path)."""
        assert self.writable
        if not self.files:
            return False
        cur = self.find(write_pos)
        if cur is None or cur is not self.files[-1]:
            return False
        mf = MappedFile.create(self.io, self.dir_path, cur.file_end, self.file_size)
        self.files.append(mf)
        return True

    def sync_range(self, start: int, end: int) -> None:
        """fdatasync every file that holds a byte of [start, end)."""
        if end <= start:
            return
        for mf in self.files:
            if mf.file_end > start and mf.file_start < end:
                mf.sync()

    def truncate_dirty(self, offset: int, *, thorough: bool = True) -> tuple[int, list[str]]:
        """Drop everything at and after offset: zero the tail of its file, delete later files.

        Returns (non-zero bytes removed, deleted paths). Only recovery calls this.
        thorough=False (the previous run stopped cleanly) skips reading whole files when
        the bytes right after offset are zero: a 1 GiB file is not read at every start.
        """
        assert self.writable
        removed = 0
        deleted: list[str] = []
        keep: list[MappedFile] = []
        for mf in self.files:
            if mf.file_start > offset:
                if thorough or not mf.looks_clean_after(0):
                    removed += mf.last_nonzero_pos(0)
                deleted.append(mf.path)
                mf.destroy()
                continue
            if mf.file_end > offset:
                removed += mf.zero_tail(offset - mf.file_start, thorough=thorough)
            keep.append(mf)
        if deleted:
            self.io.fsync_dir(self.dir_path)
            log.warning("%s: deleted %d file(s) after offset %d: %s", self.dir_path, len(deleted),
                        offset, ", ".join(os.path.basename(p) for p in deleted))
        self.files = keep
        return removed, deleted

    def delete_first(self, count: int) -> list[str]:
        """Delete the first count files (retention); never the last file."""
        assert self.writable
        count = min(count, len(self.files) - 1)
        deleted: list[str] = []
        for _ in range(max(0, count)):
            mf = self.files.pop(0)
            deleted.append(mf.path)
            mf.destroy()
        if deleted:
            self.io.fsync_dir(self.dir_path)
        return deleted

    def delete_all(self) -> list[str]:
        assert self.writable
        deleted = [mf.path for mf in self.files]
        for mf in self.files:
            mf.destroy()
        self.files = []
        if deleted:
            self.io.fsync_dir(self.dir_path)
        return deleted

    def close(self) -> None:
        self._abandon_warming()
        for mf in self.files:
            mf.close()
        self.files = []
