"""A single-producer single-consumer byte ring in shared memory.

Each worker has one put ring to the writer and one response ring back; the
writer drains all put rings in one batch. Messages are length-prefixed and
8-byte aligned; a message never wraps — the producer writes a wrap marker and
starts again at 0::

    +0     header    magic 'RKPR', layout version, capacity (bytes, power of two)
    +64    tail      seqlock record: bytes ever produced    (owned by the producer)
    +128   head      seqlock record: bytes ever consumed    (owned by the consumer)
    +192   data      capacity bytes

    message:  | length uint32 | payload (length bytes) | pad to 8 |
    wrap:     | 0xFFFFFFFF    |  (rest of the ring up to the end is skipped)

`head` and `tail` only grow; position = counter % capacity. The producer sees
a full ring as a refusal (the worker answers SYSTEM_BUSY), never as a wait.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from rocketpy.errors import RocketpyError
from rocketpy.ipc.seqlock import SeqlockRecord

MAGIC = 0x52_4B_50_52  # 'RKPR'
LAYOUT_VERSION = 1
_HEADER = struct.Struct("<IIQ")
_TAIL_AT = 64
_HEAD_AT = 128
DATA_AT = 192
_LEN = struct.Struct("<I")
WRAP_MARKER = 0xFFFFFFFF
ALIGN = 8


class RingMessageTooLarge(RocketpyError):
    """A message longer than half the ring; the ring's size bounds a message."""


def ring_segment_size(capacity: int) -> int:
    return DATA_AT + capacity


def _padded(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def init_ring(buf: Any, capacity: int) -> None:
    """Lay out an empty ring (by the segment's creator, before any fork)."""
    assert capacity >= 64 and capacity & (capacity - 1) == 0, "capacity must be a power of two"
    assert len(buf) >= ring_segment_size(capacity)
    buf[:DATA_AT] = bytes(DATA_AT)
    _HEADER.pack_into(buf, 0, MAGIC, LAYOUT_VERSION, capacity)


class _RingView:
    def __init__(self, buf: Any) -> None:
        magic, version, capacity = _HEADER.unpack_from(buf, 0)
        assert magic == MAGIC and version == LAYOUT_VERSION, "not a rocketpy ring"
        self._buf = buf
        self._view = memoryview(buf)
        self.capacity: int = capacity
        self._mask = capacity - 1
        self._tail = SeqlockRecord(buf, _TAIL_AT, "Q")
        self._head = SeqlockRecord(buf, _HEAD_AT, "Q")
        self.message_size_max = capacity // 2 - _LEN.size

    def used(self) -> int:
        return int(self._tail.read()[0] - self._head.read()[0])


class RingProducer(_RingView):
    """The producing side: `put` copies messages in and publishes the tail once per call."""

    def __init__(self, buf: Any) -> None:
        super().__init__(buf)
        self._tail_local = int(self._tail.read()[0])
        self._head_cached = int(self._head.read()[0])

    def _free(self, needed: int) -> bool:
        if self._tail_local + needed - self._head_cached <= self.capacity:
            return True
        self._head_cached = int(self._head.read()[0])
        return self._tail_local + needed - self._head_cached <= self.capacity

    def _append_locked(self, parts: Sequence[bytes | bytearray | memoryview], length: int) -> bool:
        if length > self.message_size_max:
            raise RingMessageTooLarge(
                f"message of {length} bytes exceeds the ring's limit of {self.message_size_max}")
        need = _padded(_LEN.size + length)
        pos = self._tail_local & self._mask
        to_end = self.capacity - pos
        wrap = to_end < need
        if not self._free(need + (to_end if wrap else 0)):
            return False
        if wrap:
            _LEN.pack_into(self._buf, DATA_AT + pos, WRAP_MARKER)
            self._tail_local += to_end
            pos = 0
        start = DATA_AT + pos
        _LEN.pack_into(self._buf, start, length)
        at = start + _LEN.size
        view = self._view
        for part in parts:
            n = len(part)
            view[at:at + n] = part
            at += n
        self._tail_local += need
        return True

    def put(self, payload: bytes | bytearray | memoryview) -> bool:
        """Append one message; False when the ring is full."""
        if not self._append_locked((payload,), len(payload)):
            return False
        self._tail.write(self._tail_local)
        return True

    def put_parts(self, parts: Sequence[bytes | bytearray | memoryview]) -> bool:
        """Append one message made of several parts (no concatenation copy)."""
        if not self._append_locked(parts, sum(len(p) for p in parts)):
            return False
        self._tail.write(self._tail_local)
        return True

    def put_many(self, payloads: Sequence[bytes | bytearray | memoryview]) -> int:
        """Append as many as fit, in order; publish once. Returns how many were written."""
        written = 0
        for payload in payloads:
            if not self._append_locked((payload,), len(payload)):
                break
            written += 1
        if written:
            self._tail.write(self._tail_local)
        return written


class RingConsumer(_RingView):
    """The consuming side: `peek` returns views of waiting messages; `release` frees them."""

    def __init__(self, buf: Any) -> None:
        super().__init__(buf)
        self._head_local = int(self._head.read()[0])
        self._pending_head = self._head_local

    def peek(self, max_messages: int = 1 << 30) -> list[memoryview]:
        """Views of the messages produced since the last release (valid until `release`)."""
        tail = int(self._tail.read()[0])
        out: list[memoryview] = []
        cursor = self._pending_head
        view, mask, buf = self._view, self._mask, self._buf
        while cursor < tail and len(out) < max_messages:
            pos = cursor & mask
            length = _LEN.unpack_from(buf, DATA_AT + pos)[0]
            if length == WRAP_MARKER:
                cursor += self.capacity - pos
                continue
            assert length <= self.message_size_max, f"ring message length {length} is corrupt"
            start = DATA_AT + pos + _LEN.size
            out.append(view[start:start + length])
            cursor += _padded(_LEN.size + length)
        assert cursor <= tail or not out, "ring cursor ran past the tail"
        self._pending_head = cursor
        return out

    def release(self) -> None:
        """Give back the space of every message returned by `peek` so far."""
        if self._pending_head != self._head_local:
            self._head_local = self._pending_head
            self._head.write(self._head_local)

    def drain(self, max_messages: int = 1 << 30) -> list[bytes]:
        """Copies of waiting messages, released at once."""
        msgs = [bytes(m) for m in self.peek(max_messages)]
        self.release()
        return msgs
