"""What travels through the put rings (worker -> writer) and the response rings (writer -> worker).

The worker does the expensive part of a send (decode the request, encode the
stored records); the writer only assigns offsets, appends, and answers with
one fixed-size response per request, because every message of one request is
contiguous in the CommitLog and consecutive in its queue.

Put request::

    +0   request_id     uint64   the worker's own counter
    +8   generation     uint32   writer generation the worker saw; stale -> refused
    +12  flags          uint16   FLAG_WAIT (answer after flush), FLAG_BATCH
    +14  record_count   uint16
    +16  queue_id       int32
    +20  sys_flag       int32
    +24  topic_len      uint16
    +26  (zero)         uint16
    +28  records_len    uint32
    +32  topic          topic_len bytes
         records        records_len bytes: record_count encoded records, back to back

Put response::

    +0   request_id         uint64
    +8   status             uint32   PutStatus
    +12  record_count       uint32
    +16  first_phys_offset  int64
    +24  first_queue_offset int64
    +32  store_timestamp    int64
    +40  end_phys_offset    int64    the request is durable once flushed_offset >= this
"""

from __future__ import annotations

import dataclasses
import enum
import struct

from rocketpy.errors import ProtocolError

FLAG_WAIT = 0x1
FLAG_BATCH = 0x2

_REQUEST = struct.Struct("<QIHHiiHHI")
_RESPONSE = struct.Struct("<QIIqqqq")
REQUEST_HEADER_SIZE = _REQUEST.size
RESPONSE_SIZE = _RESPONSE.size
assert REQUEST_HEADER_SIZE == 32 and RESPONSE_SIZE == 48


class PutStatus(enum.IntEnum):
    PUT_OK = 0
    MESSAGE_ILLEGAL = 1
    SERVICE_NOT_AVAILABLE = 2     # disk full, not writable, shutting down
    STALE_GENERATION = 3          # sent to a writer that has since restarted: retry
    STORE_ERROR = 4               # I/O error in the writer


@dataclasses.dataclass(frozen=True, slots=True)
class PutRequestView:
    request_id: int
    generation: int
    flags: int
    record_count: int
    queue_id: int
    sys_flag: int
    topic: str
    records: memoryview


def encode_put_request_parts(request_id: int, generation: int, flags: int, record_count: int,
                             queue_id: int, sys_flag: int, topic: bytes, records_len: int) -> bytes:
    """The header and topic; the records follow as separate parts (no concatenation copy)."""
    return _REQUEST.pack(request_id, generation, flags, record_count, queue_id, sys_flag,
                         len(topic), 0, records_len) + topic


def decode_put_request(buf: memoryview) -> PutRequestView:
    if len(buf) < REQUEST_HEADER_SIZE:
        raise ProtocolError(f"put request of {len(buf)} bytes is shorter than its header")
    (request_id, generation, flags, count, queue_id, sys_flag, topic_len, _zero,
     records_len) = _REQUEST.unpack_from(buf, 0)
    end_topic = REQUEST_HEADER_SIZE + topic_len
    if end_topic + records_len != len(buf):
        raise ProtocolError("put request lengths disagree with its size")
    topic = bytes(buf[REQUEST_HEADER_SIZE:end_topic]).decode()
    return PutRequestView(request_id, generation, flags, count, queue_id, sys_flag, topic,
                          buf[end_topic:])


@dataclasses.dataclass(frozen=True, slots=True)
class PutResponse:
    request_id: int
    status: PutStatus
    record_count: int = 0
    first_phys_offset: int = 0
    first_queue_offset: int = 0
    store_timestamp: int = 0
    end_phys_offset: int = 0

    def encode(self) -> bytes:
        return _RESPONSE.pack(self.request_id, int(self.status), self.record_count, self.first_phys_offset,
                              self.first_queue_offset, self.store_timestamp, self.end_phys_offset)

    @classmethod
    def decode(cls, buf: bytes | memoryview) -> PutResponse:
        if len(buf) != RESPONSE_SIZE:
            raise ProtocolError(f"put response of {len(buf)} bytes, expected {RESPONSE_SIZE}")
        rid, status, count, first_phys, first_q, ts, end = _RESPONSE.unpack_from(buf, 0)
        return cls(rid, PutStatus(status), count, first_phys, first_q, ts, end)
