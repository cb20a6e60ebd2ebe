"""StoreCheckpoint, the abort marker and the store lock (storage-format.md §7).

The `checkpoint` file is RocketMQ's 4096-byte file; we add a CRC32 after the
three stamps, which RocketMQ ignores (it reads only the first 24 bytes)::

    +0   physicMsgTimestamp   int64   store time of the last flushed CommitLog record
    +8   logicsMsgTimestamp   int64   store time of the last dispatched record
    +16  indexMsgTimestamp    int64   endTimestamp of the last flushed index file
    +24  crc32(bytes 0..24)   int32   rocketpy only; a mismatch means "no checkpoint"
    +28  zero                 ... up to 4096

The checkpoint is a hint: a torn or missing one makes recovery scan more, never less.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import zlib

from rocketpy import limits
from rocketpy.errors import StoreError
from rocketpy.store.io import FileIO, RealFileIO, write_all

log = logging.getLogger("rocketpy.store")

STAMPS = struct.Struct(">qqq")
CRC = struct.Struct(">I")
CHECKPOINT_DATA_SIZE = STAMPS.size + CRC.size
ABORT_FILE = "abort"
LOCK_FILE = "lock"
assert CHECKPOINT_DATA_SIZE <= limits.CHECKPOINT_FILE_SIZE


def min_timestamp_for_recovery(physic_msg_timestamp: int, logics_msg_timestamp: int,
                               index_msg_timestamp: int = 0, *, message_index_safe: bool = False) -> int:
    """Abnormal recovery starts at the first file whose first record is at or before this
    (RocketMQ's StoreCheckpoint.getMinTimestamp / getMinTimestampIndex)."""
    ts = max(0, min(physic_msg_timestamp, logics_msg_timestamp) - limits.RECOVERY_CHECKPOINT_SLACK_MS)
    if message_index_safe:
        ts = min(ts, index_msg_timestamp)
    return ts


class StoreCheckpoint:
    """The `checkpoint` file. Usage::

        cp = StoreCheckpoint(root + "/checkpoint", io=io)   # opens or creates; never raises on junk
        cp.valid            # False if the file was missing, short or failed its CRC (stamps are 0)
        cp.physic_msg_timestamp = ts; cp.logics_msg_timestamp = ts; cp.index_msg_timestamp = ts
        cp.flush()          # pwrite + fdatasync
        cp.min_timestamp()  # where abnormal recovery may start
        cp.close()
    """

    def __init__(self, path: str, io: FileIO | None = None) -> None:
        self.path = path
        self._io: FileIO = io if io is not None else RealFileIO()
        self.physic_msg_timestamp = 0
        self.logics_msg_timestamp = 0
        self.index_msg_timestamp = 0
        self.valid = False
        if self._io.exists(path):
            self._fd = self._io.open(path, writable=True)
            if self._io.file_size(self._fd) < limits.CHECKPOINT_FILE_SIZE:
                self._io.ftruncate(self._fd, limits.CHECKPOINT_FILE_SIZE)
            self._load()
        else:
            self._fd = self._io.open(path, create=True, size=limits.CHECKPOINT_FILE_SIZE)

    def _load(self) -> None:
        raw = self._io.pread(self._fd, CHECKPOINT_DATA_SIZE, 0)
        if len(raw) != CHECKPOINT_DATA_SIZE:
            log.warning("checkpoint %s is short; treated as absent", self.path)
            return
        stamps = raw[:STAMPS.size]
        if CRC.unpack_from(raw, STAMPS.size)[0] != zlib.crc32(stamps):
            log.warning("checkpoint %s fails its CRC (torn or written by RocketMQ); treated as absent",
                        self.path)
            return
        self.physic_msg_timestamp, self.logics_msg_timestamp, self.index_msg_timestamp = STAMPS.unpack(stamps)
        self.valid = True

    def encode(self) -> bytes:
        stamps = STAMPS.pack(self.physic_msg_timestamp, self.logics_msg_timestamp, self.index_msg_timestamp)
        return stamps + CRC.pack(zlib.crc32(stamps))

    def flush(self) -> None:
        write_all(self._io, self._fd, self.encode(), 0)
        self._io.fdatasync(self._fd)

    def min_timestamp(self, *, message_index_safe: bool = False) -> int:
        return min_timestamp_for_recovery(self.physic_msg_timestamp, self.logics_msg_timestamp,
                                          self.index_msg_timestamp, message_index_safe=message_index_safe)

    def close(self) -> None:
        if self._fd >= 0:
            self._io.close(self._fd)
            self._fd = -1


class AbortMarker:
    """The empty `abort` file: `create()` at start, `remove()` at clean shutdown;
    `present` at start means the previous run crashed (abnormal recovery)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, ABORT_FILE)

    @property
    def present(self) -> bool:
        return os.path.exists(self.path)

    def create(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        os.close(fd)
        _fsync_dir(self.root)

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        _fsync_dir(self.root)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None)


class StoreLock:
    """Exclusive lock on `<root>/lock` while a store runs. Usage::

        lock = StoreLock(root); lock.acquire()   # StoreError "another broker is using <root>"
        ...; lock.release()                      # or: with StoreLock(root): ...

    Uses an open-file-description fcntl lock on the first byte (F_OFD_SETLK), so a
    second opener fails even in the same process, and it conflicts with the POSIX
    lock a Java RocketMQ broker takes; falls back to flock where OFD locks are missing.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, LOCK_FILE)
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self) -> None:
        assert self._fd < 0, "lock already held by this object"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            if _F_OFD_SETLK is not None:
                # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks)
                fcntl.fcntl(fd, _F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0))
            else:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StoreError(f"another broker is using {self.root}; stop it or pick another "
                                 f"storePathRootDir") from None
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
