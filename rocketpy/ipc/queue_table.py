"""The per-queue offset table: the dispatcher publishes each ConsumeQueue's max offset.

Workers answer GET_MAX_OFFSET and decide whether a parked pull can be answered
from this table, without reading the ConsumeQueue files. Open addressing with
linear probing over a fixed number of slots (a bound: limits.QUEUE_TABLE_SLOTS);
a key is never moved once placed, so a reader's probe sequence is stable::

    +0     header   magic 'RKPQ', layout version, slot count (power of two)
    +64    slots    48 bytes each, a seqlock record:
                    key_hash uint64 (0 = empty), max_offset int64, min_offset int64,
                    last_store_ts int64, spare int64

The key hash is a 64-bit BLAKE2b of "<topic>\\x00<queueId>"; 0 is remapped to 1.
Only the dispatcher writes (`QueueTableWriter`); any process reads.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from rocketpy.errors import RocketpyError
from rocketpy.ipc.seqlock import SeqlockRecord

MAGIC = 0x52_4B_50_51  # 'RKPQ'
LAYOUT_VERSION = 1
_HEADER = struct.Struct("<III")
_SLOTS_AT = 64
_SLOT_FIELDS = "Qqqqq"
_SLOT_STRIDE = 56
assert SeqlockRecord.size_for(_SLOT_FIELDS) <= _SLOT_STRIDE


class QueueTableFull(RocketpyError):
    """More queues than the table's slots; raise limits.QUEUE_TABLE_SLOTS."""


def queue_table_size(slot_count: int) -> int:
    return _SLOTS_AT + slot_count * _SLOT_STRIDE


def queue_key_hash(topic: str, queue_id: int) -> int:
    digest = hashlib.blake2b(f"{topic}\x00{queue_id}".encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value or 1


def init_queue_table(buf: Any, slot_count: int) -> None:
    assert slot_count >= 8 and slot_count & (slot_count - 1) == 0, "slot count must be a power of two"
    size = queue_table_size(slot_count)
    assert len(buf) >= size
    buf[:size] = bytes(size)
    _HEADER.pack_into(buf, 0, MAGIC, LAYOUT_VERSION, slot_count)


class QueueTable:
    """Read access (any process)."""

    def __init__(self, buf: Any) -> None:
        magic, version, count = _HEADER.unpack_from(buf, 0)
        assert magic == MAGIC and version == LAYOUT_VERSION, "not a rocketpy queue table"
        self.slot_count: int = count
        self._mask = count - 1
        self._slots = [SeqlockRecord(buf, _SLOTS_AT + i * _SLOT_STRIDE, _SLOT_FIELDS) for i in range(count)]

    def _find(self, key: int) -> int | None:
        i = key & self._mask
        for _ in range(self.slot_count):
            slot_key = self._slots[i].read()[0]
            if slot_key == key:
                return i
            if slot_key == 0:
                return None
            i = (i + 1) & self._mask
        return None

    def get(self, topic: str, queue_id: int) -> tuple[int, int, int] | None:
        """(max_offset, min_offset, last_store_ts) of a queue, or None if never dispatched."""
        key = queue_key_hash(topic, queue_id)
        i = self._find(key)
        if i is None:
            return None
        values = self._slots[i].read()
        if values[0] != key:  # cannot happen: keys never move; kept as a guard
            return None
        return int(values[1]), int(values[2]), int(values[3])

    def max_offset(self, topic: str, queue_id: int) -> int:
        entry = self.get(topic, queue_id)
        return entry[0] if entry else 0


class QueueTableWriter(QueueTable):
    """The dispatcher's side; caches slot positions so a publish costs one seqlock write."""

    def __init__(self, buf: Any) -> None:
        super().__init__(buf)
        self._where: dict[tuple[str, int], tuple[int, int]] = {}

    def publish(self, topic: str, queue_id: int, max_offset: int, min_offset: int, last_store_ts: int) -> None:
        found = self._where.get((topic, queue_id))
        if found is None:
            key = queue_key_hash(topic, queue_id)
            i = self._find(key)
            if i is None:
                i = self._claim(key)
            found = (i, key)
            self._where[(topic, queue_id)] = found
        i, key = found
        self._slots[i].write(key, max_offset, min_offset, last_store_ts, 0)

    def _claim(self, key: int) -> int:
        i = key & self._mask
        for _ in range(self.slot_count):
            if self._slots[i].read()[0] == 0:
                return i
            i = (i + 1) & self._mask
        raise QueueTableFull(f"queue table full at {self.slot_count} queues; raise QUEUE_TABLE_SLOTS")
