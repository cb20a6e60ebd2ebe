"""Seqlock-published records in shared memory.

Nothing in Python guarantees that an 8-byte store into a map is atomic, so
every multi-byte value that crosses a process boundary is published under a
sequence counter: the single writer makes the counter odd, writes the fields,
makes it even again; a reader reads the counter, the fields and the counter
again, and retries when the two differ or the first was odd. This relies on
x86-64 keeping stores in program order and loads in program order (TSO);
`shm.check_platform` refuses anything else.

Layout of one record at `offset` (8-byte aligned)::

    +0  seq     uint64   even = stable, odd = write in progress
    +8  fields  as given by the record's struct format (little-endian)

A writer preempted mid-write keeps readers spinning briefly (they yield the
CPU so it can finish); a writer killed mid-write leaves the counter odd, and
readers give up after limits.SEQLOCK_READ_TIMEOUT_MS (SeqlockTornError) and the supervisor, which restarts
that writer, calls `reset()` before the new writer takes over.
"""

from __future__ import annotations

import os
import struct
import time
from typing import Any

from rocketpy import limits
from rocketpy.errors import RocketpyError

_SEQ = struct.Struct("<Q")  # size only; loads and stores go through a typed view
_SPINS_BEFORE_YIELD = 64


class SeqlockTornError(RocketpyError):
    """A seqlock stayed odd: its writer died mid-update and has not been replaced yet."""

    retriable = True


class SeqlockRecord:
    """A fixed set of fields written by one process and read by any."""

    __slots__ = ("_buf", "_offset", "_fields", "_size", "_seq")

    def __init__(self, buf: Any, offset: int, fields_format: str) -> None:
        assert offset % 8 == 0, "seqlock records are 8-byte aligned"
        self._buf = buf
        self._offset = offset
        self._fields = struct.Struct("<" + fields_format.lstrip("<>=!@"))
        self._size = _SEQ.size + self._fields.size
        assert offset + self._size <= len(buf), "record runs past the segment"
        # The sequence is loaded and stored as one aligned 8-byte word through a
        # typed view. struct.pack_into would not do: it zero-fills its target
        # before writing, so a reader could see the counter pass through 0 (even).
        self._seq = memoryview(buf)[offset:offset + 8].cast("Q")

    @property
    def size(self) -> int:
        return self._size

    @staticmethod
    def size_for(fields_format: str) -> int:
        raw = _SEQ.size + struct.calcsize("<" + fields_format.lstrip("<>=!@"))
        return (raw + 7) & ~7

    def write(self, *values: Any) -> None:
        """Publish new values (single writer only).

        The sequence is read back from the segment rather than cached, so a
        successor writer (after a restart) continues the same sequence and a
        reader can never see an old even value reappear around a torn write.
        """
        seq_view = self._seq
        seq = seq_view[0]
        seq += seq & 1   # a predecessor died mid-write: continue from the next even value
        seq_view[0] = seq + 1
        self._fields.pack_into(self._buf, self._offset + 8, *values)
        seq_view[0] = seq + 2

    def read(self) -> tuple[Any, ...]:
        buf, off, fields, seq_view = self._buf, self._offset, self._fields, self._seq
        deadline = 0.0
        while True:
            for _ in range(_SPINS_BEFORE_YIELD):
                before = seq_view[0]
                if before & 1:
                    continue
                values = fields.unpack_from(buf, off + 8)
                if seq_view[0] == before:
                    return values
            # The writer is descheduled mid-update (or dead): let it run.
            now = time.monotonic()
            if not deadline:
                deadline = now + limits.SEQLOCK_READ_TIMEOUT_MS / 1000
            elif now > deadline:
                raise SeqlockTornError(
                    f"seqlock at {off} stayed odd for {limits.SEQLOCK_READ_TIMEOUT_MS} ms: its writer died")
            os.sched_yield()

    def reset(self) -> None:
        """Make a torn record readable again (supervisor, before a new writer starts)."""
        seq = self._seq[0]
        if seq & 1:
            self._seq[0] = seq + 1
