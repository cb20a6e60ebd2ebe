"""The stored-message record (RocketMQ's MessageDecoder v1 layout), properties, sysFlag, tag hash.

One record, as it sits in the CommitLog and travels in PULL_MESSAGE bodies
(both hosts IPv4; an IPv6 host is 16 address bytes instead of 4, shifting every
later field by 12)::

    +0   TOTALSIZE        int32   = 91 + B + T + P (+12 per IPv6 host)
    +4   MAGICCODE        int32   0xDAA320A7
    +8   BODYCRC          int32   crc32(body) & 0x7FFFFFFF
    +12  QUEUEID          int32
    +16  FLAG             int32
    +20  QUEUEOFFSET      int64   patched by the CommitLog at append
    +28  PHYSICALOFFSET   int64   patched by the CommitLog at append
    +36  SYSFLAG          int32
    +40  BORNTIMESTAMP    int64
    +48  BORNHOST         4|16 bytes address + int32 port
    +56  STORETIMESTAMP   int64   patched by the CommitLog at append (+68 if born host v6)
    +64  STOREHOST        4|16 bytes address + int32 port
    +72  RECONSUMETIMES   int32
    +76  PREPARED_TX_OFF  int64
    +84  BODYLEN B        int32
    +88  BODY             B bytes
         TOPICLEN T       int8 (signed; <= 127)
         TOPIC            T bytes UTF-8
         PROPERTIESLEN P  int16 (signed; <= 32767)
         PROPERTIES       P bytes UTF-8

All integers big-endian. Decoders raise only ProtocolError.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import socket
import struct
import zlib
from collections.abc import Mapping

from rocketpy import limits
from rocketpy.errors import ProtocolError

MESSAGE_MAGIC = 0xDAA320A7
BLANK_MAGIC = 0xCBD43194
MESSAGE_MAGIC_SIGNED = MESSAGE_MAGIC - (1 << 32)
BLANK_MAGIC_SIGNED = BLANK_MAGIC - (1 << 32)


class SysFlag(enum.IntFlag):
    """Message sysFlag bits (MessageSysFlag.java)."""

    COMPRESSED = 0x1
    MULTI_TAGS = 0x2
    TRANSACTION_PREPARED = 0x4
    TRANSACTION_COMMIT = 0x8
    TRANSACTION_ROLLBACK = 0xC
    BORNHOST_V6 = 0x10
    STOREHOST_V6 = 0x20


TRANSACTION_TYPE_MASK = 0xC
TRANSACTION_NOT = 0x0
TRANSACTION_PREPARED = 0x4
TRANSACTION_COMMIT = 0x8
TRANSACTION_ROLLBACK = 0xC


def transaction_type(sys_flag: int) -> int:
    return sys_flag & TRANSACTION_TYPE_MASK


def gets_queue_entry(sys_flag: int) -> bool:
    """Only NOT and COMMIT records get a ConsumeQueue entry and a queue offset."""
    return transaction_type(sys_flag) in (TRANSACTION_NOT, TRANSACTION_COMMIT)


# Fixed part before the born host: TOTALSIZE..BORNTIMESTAMP.
_HEAD = struct.Struct(">iIiiiqqiq")          # 48 bytes
_PORT = struct.Struct(">i")
_STORE_TS = struct.Struct(">q")
_TAIL_FIXED = struct.Struct(">iqi")          # RECONSUMETIMES, PREPARED_TX_OFFSET, BODYLEN
_TOPIC_LEN = struct.Struct(">b")
_PROPS_LEN = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")

RECORD_FIXED_SIZE_V4 = 91                    # every field but body, topic, properties
assert _HEAD.size == 48
assert _HEAD.size + 8 + 8 + 8 + _TAIL_FIXED.size + 1 + 2 == RECORD_FIXED_SIZE_V4

TOTALSIZE_POS = 0
MAGIC_POS = 4
BODYCRC_POS = 8
QUEUEID_POS = 12
QUEUEOFFSET_POS = 20
PHYSICALOFFSET_POS = 28
SYSFLAG_POS = 36
BORNTIMESTAMP_POS = 40
BORNHOST_POS = 48


def host_sizes(sys_flag: int) -> tuple[int, int]:
    """Address byte sizes (born, store) for a sysFlag."""
    born = 16 if sys_flag & SysFlag.BORNHOST_V6 else 4
    store = 16 if sys_flag & SysFlag.STOREHOST_V6 else 4
    return born, store


def store_timestamp_pos(sys_flag: int) -> int:
    born, _ = host_sizes(sys_flag)
    return BORNHOST_POS + born + 4


def record_size(body_len: int, topic_len: int, props_len: int, sys_flag: int = 0) -> int:
    born, store = host_sizes(sys_flag)
    return RECORD_FIXED_SIZE_V4 + (born - 4) + (store - 4) + body_len + topic_len + props_len


def body_crc(body: bytes | memoryview) -> int:
    return zlib.crc32(body) & 0x7FFFFFFF


@dataclasses.dataclass(frozen=True, slots=True)
class MessageRecord:
    """One stored message. `properties` is the raw properties string (see parse_properties)."""

    topic: str
    body: bytes
    queue_id: int = 0
    flag: int = 0
    queue_offset: int = 0
    phys_offset: int = 0
    sys_flag: int = 0
    born_timestamp: int = 0
    born_host: str = "127.0.0.1"
    born_port: int = 0
    store_timestamp: int = 0
    store_host: str = "127.0.0.1"
    store_port: int = 0
    reconsume_times: int = 0
    prepared_transaction_offset: int = 0
    properties: str = ""
    body_crc: int = -1               # -1 on encode: computed from body

    @property
    def size(self) -> int:
        return record_size(len(self.body), len(self.topic.encode()), len(self.properties.encode()),
                           self.sys_flag)

    def property_map(self) -> dict[str, str]:
        return parse_properties(self.properties)

    @property
    def tags(self) -> str | None:
        return parse_properties(self.properties).get(PROPERTY_TAGS)

    @property
    def keys(self) -> list[str]:
        return [k for k in parse_properties(self.properties).get(PROPERTY_KEYS, "").split(" ") if k]

    @property
    def uniq_key(self) -> str | None:
        return parse_properties(self.properties).get(PROPERTY_UNIQ_KEY)


def _pack_host(host: str, v6: bool) -> bytes:
    try:
        if v6:
            return socket.inet_pton(socket.AF_INET6, host)
        if ":" in host:                 # an IPv4-mapped IPv6 peer ("::ffff:a.b.c.d") stores 4 bytes
            return _v4_from_mapped(host)
        if host.count(".") != 3:        # inet_aton would take "1.2.3" as 1.2.0.3
            raise OSError(host)
        return socket.inet_aton(host)
    except (OSError, ValueError):       # ipaddress raises ValueError; inet_* OSError (or ValueError on NUL)
        raise ProtocolError(f"host {host!r} is not a valid IPv{'6' if v6 else '4'} address") from None


def _v4_from_mapped(host: str) -> bytes:
    addr = ipaddress.ip_address(host)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.packed
    raise OSError(host)


def _unpack_host(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntoa(raw)
    return socket.inet_ntop(socket.AF_INET6, raw)


def encode_record(msg: MessageRecord) -> bytearray:
    """Encode one record; queue offset, phys offset and store time are written as given.

    Raises ProtocolError for values the format cannot hold (lengths, hosts, integers
    out of range, text that is not encodable as UTF-8).
    """
    try:
        return _encode_record(msg)
    except (struct.error, UnicodeEncodeError) as exc:
        raise ProtocolError(f"message does not fit the record format: {exc}") from None


def _encode_record(msg: MessageRecord) -> bytearray:
    topic_b = msg.topic.encode()
    props_b = msg.properties.encode()
    if not 0 < len(topic_b) <= limits.TOPIC_NAME_LENGTH_MAX:
        raise ProtocolError(f"topic length {len(topic_b)} outside 1..{limits.TOPIC_NAME_LENGTH_MAX}")
    if len(props_b) > limits.PROPERTIES_SIZE_MAX:
        raise ProtocolError(f"properties length {len(props_b)} exceeds {limits.PROPERTIES_SIZE_MAX}")
    born_v6 = bool(msg.sys_flag & SysFlag.BORNHOST_V6)
    store_v6 = bool(msg.sys_flag & SysFlag.STOREHOST_V6)
    size = record_size(len(msg.body), len(topic_b), len(props_b), msg.sys_flag)
    crc = body_crc(msg.body) if msg.body_crc < 0 else msg.body_crc
    out = bytearray(size)
    _HEAD.pack_into(out, 0, size, MESSAGE_MAGIC, crc, msg.queue_id, msg.flag, msg.queue_offset,
                    msg.phys_offset, msg.sys_flag, msg.born_timestamp)
    pos = BORNHOST_POS
    born = _pack_host(msg.born_host, born_v6)
    out[pos:pos + len(born)] = born
    pos += len(born)
    _PORT.pack_into(out, pos, msg.born_port)
    pos += 4
    _STORE_TS.pack_into(out, pos, msg.store_timestamp)
    pos += 8
    store = _pack_host(msg.store_host, store_v6)
    out[pos:pos + len(store)] = store
    pos += len(store)
    _PORT.pack_into(out, pos, msg.store_port)
    pos += 4
    _TAIL_FIXED.pack_into(out, pos, msg.reconsume_times, msg.prepared_transaction_offset, len(msg.body))
    pos += _TAIL_FIXED.size
    out[pos:pos + len(msg.body)] = msg.body
    pos += len(msg.body)
    _TOPIC_LEN.pack_into(out, pos, len(topic_b))
    pos += 1
    out[pos:pos + len(topic_b)] = topic_b
    pos += len(topic_b)
    _PROPS_LEN.pack_into(out, pos, len(props_b))
    pos += 2
    out[pos:pos + len(props_b)] = props_b
    pos += len(props_b)
    assert pos == size
    return out


def patch_record(buf: bytearray | memoryview, pos: int, *, queue_offset: int, phys_offset: int,
                 store_timestamp: int) -> None:
    """Fill in the three fields the CommitLog assigns at append time."""
    _I64.pack_into(buf, pos + QUEUEOFFSET_POS, queue_offset)
    _I64.pack_into(buf, pos + PHYSICALOFFSET_POS, phys_offset)
    sys_flag = _I32.unpack_from(buf, pos + SYSFLAG_POS)[0]
    _I64.pack_into(buf, pos + store_timestamp_pos(sys_flag), store_timestamp)


@dataclasses.dataclass(frozen=True, slots=True)
class RecordHeader:
    """The fixed fields of a record, read without copying the body."""

    total_size: int
    magic: int
    body_crc: int
    queue_id: int
    flag: int
    queue_offset: int
    phys_offset: int
    sys_flag: int
    born_timestamp: int
    store_timestamp: int


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> RecordHeader:
    """Read the fixed fields of the record at pos (no validation beyond bounds)."""
    if pos < 0 or len(buf) - pos < _HEAD.size:
        raise ProtocolError(f"record header at {pos} runs past the buffer ({len(buf)} bytes)")
    (total, magic, crc, qid, flag, qoff, poff, sysflag, born_ts) = _HEAD.unpack_from(buf, pos)
    ts_pos = pos + store_timestamp_pos(sysflag)
    if len(buf) < ts_pos + 8:
        raise ProtocolError(f"record at {pos} is truncated before its store timestamp")
    store_ts = _STORE_TS.unpack_from(buf, ts_pos)[0]
    return RecordHeader(total, magic, crc, qid, flag, qoff, poff, sysflag, born_ts, store_ts)


def decode_record(buf: bytes | bytearray | memoryview, pos: int = 0, *, check_crc: bool = False
                  ) -> MessageRecord:
    """Decode the record at pos; raises ProtocolError for anything malformed."""
    view = memoryview(buf)
    end_buf = len(view)
    if pos < 0 or end_buf - pos < _HEAD.size:
        raise ProtocolError(f"record at {pos} is shorter than its fixed header")
    (total, magic, crc, qid, flag, qoff, poff, sysflag, born_ts) = _HEAD.unpack_from(view, pos)
    if magic != MESSAGE_MAGIC:
        raise ProtocolError(f"bad magic 0x{magic:08X} at {pos}")
    if total < RECORD_FIXED_SIZE_V4 or total > end_buf - pos:
        raise ProtocolError(f"record size {total} at {pos} does not fit the {end_buf - pos} bytes left")
    end = pos + total
    born_len, store_len = host_sizes(sysflag)
    p = pos + BORNHOST_POS
    try:
        born_host = _unpack_host(bytes(view[p:p + born_len]))
        p += born_len
        born_port = _PORT.unpack_from(view, p)[0]
        p += 4
        store_ts = _STORE_TS.unpack_from(view, p)[0]
        p += 8
        store_host = _unpack_host(bytes(view[p:p + store_len]))
        p += store_len
        store_port = _PORT.unpack_from(view, p)[0]
        p += 4
        reconsume, prepared, body_len = _TAIL_FIXED.unpack_from(view, p)
        p += _TAIL_FIXED.size
        if body_len < 0 or p + body_len + 1 > end:
            raise ProtocolError(f"body length {body_len} at {pos} runs past the record")
        body = bytes(view[p:p + body_len])
        p += body_len
        topic_len = _TOPIC_LEN.unpack_from(view, p)[0]
        p += 1
        if topic_len <= 0 or p + topic_len + 2 > end:
            raise ProtocolError(f"topic length {topic_len} at {pos} is invalid")
        topic = bytes(view[p:p + topic_len]).decode()
        p += topic_len
        props_len = _PROPS_LEN.unpack_from(view, p)[0]
        p += 2
        if props_len < 0 or p + props_len != end:
            raise ProtocolError(
                f"record at {pos}: size {total} disagrees with its fields (properties length {props_len})")
        props = bytes(view[p:p + props_len]).decode()
    except (struct.error, UnicodeDecodeError, OSError, ValueError) as exc:
        raise ProtocolError(f"malformed record at {pos}: {exc}") from None
    if check_crc and body_crc(body) != crc:
        raise ProtocolError(f"body CRC mismatch in record at {pos}")
    return MessageRecord(
        topic=topic, body=body, queue_id=qid, flag=flag, queue_offset=qoff, phys_offset=poff,
        sys_flag=sysflag, born_timestamp=born_ts, born_host=born_host, born_port=born_port,
        store_timestamp=store_ts, store_host=store_host, store_port=store_port,
        reconsume_times=reconsume, prepared_transaction_offset=prepared, properties=props,
        body_crc=crc)


def record_properties(buf: bytes | bytearray | memoryview, pos: int = 0) -> dict[str, str]:
    """Only the properties of the record at pos (MessageDecoder.decodeProperties): what the
    broker's SQL92 filter reads for each candidate, without copying the body."""
    view = memoryview(buf)
    try:
        total = _HEAD.unpack_from(view, pos)[0]
        sysflag = _HEAD.unpack_from(view, pos)[7]
        born_len, store_len = host_sizes(sysflag)
        p = pos + BORNHOST_POS + born_len + 4 + 8 + store_len + 4
        body_len = _TAIL_FIXED.unpack_from(view, p)[2]
        p += _TAIL_FIXED.size + body_len
        topic_len = _TOPIC_LEN.unpack_from(view, p)[0]
        p += 1 + topic_len
        props_len = _PROPS_LEN.unpack_from(view, p)[0]
        p += 2
        end = pos + total
        if body_len < 0 or topic_len <= 0 or props_len < 0 or p + props_len > end or end > len(view):
            raise ProtocolError(f"record at {pos}: its field lengths run past its size {total}")
        return parse_properties(bytes(view[p:p + props_len]).decode())
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed record at {pos}: {exc}") from None


def iter_records(buf: bytes | bytearray | memoryview, *, check_crc: bool = False) -> list[MessageRecord]:
    """Decode concatenated records (a PULL_MESSAGE body) until the buffer ends."""
    out: list[MessageRecord] = []
    pos = 0
    n = len(buf)
    while pos < n:
        rec = decode_record(buf, pos, check_crc=check_crc)
        out.append(rec)
        pos += rec.size
    return out


# --- properties ----------------------------------------------------------------

NAME_VALUE_SEPARATOR = "\x01"
PROPERTY_SEPARATOR = "\x02"

PROPERTY_KEYS = "KEYS"
PROPERTY_TAGS = "TAGS"
PROPERTY_WAIT_STORE_MSG_OK = "WAIT"
PROPERTY_DELAY_TIME_LEVEL = "DELAY"
PROPERTY_RETRY_TOPIC = "RETRY_TOPIC"
PROPERTY_REAL_TOPIC = "REAL_TOPIC"
PROPERTY_REAL_QUEUE_ID = "REAL_QID"
PROPERTY_TRANSACTION_PREPARED = "TRAN_MSG"
PROPERTY_PRODUCER_GROUP = "PGROUP"
PROPERTY_MIN_OFFSET = "MIN_OFFSET"
PROPERTY_MAX_OFFSET = "MAX_OFFSET"
PROPERTY_ORIGIN_MESSAGE_ID = "ORIGIN_MESSAGE_ID"
PROPERTY_RECONSUME_TIME = "RECONSUME_TIME"
PROPERTY_MAX_RECONSUME_TIMES = "MAX_RECONSUME_TIMES"
PROPERTY_MSG_REGION = "MSG_REGION"
PROPERTY_TRACE_SWITCH = "TRACE_ON"
PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX = "UNIQ_KEY"
PROPERTY_UNIQ_KEY = PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX
PROPERTY_CONSUME_START_TIMESTAMP = "CONSUME_START_TIME"
PROPERTY_TRANSACTION_PREPARED_QUEUE_OFFSET = "TRAN_PREPARED_QUEUE_OFFSET"
PROPERTY_TRANSACTION_CHECK_TIMES = "TRANSACTION_CHECK_TIMES"
PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS = "CHECK_IMMUNITY_TIME_IN_SECONDS"
PROPERTY_CLUSTER = "CLUSTER"


def parse_properties(text: str) -> dict[str, str]:
    """Parse `k\\x01v\\x02...`; tolerates a trailing separator, empty items, items without \\x01
    and empty values (all skipped), as RocketMQ's readers do."""
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(PROPERTY_SEPARATOR):
        name, sep, value = item.partition(NAME_VALUE_SEPARATOR)
        if sep and name and value:
            out[name] = value
    return out


def format_properties(props: Mapping[str, str]) -> str:
    """Encode properties without a trailing separator (RocketMQ 4.9.3+ style)."""
    for k, v in props.items():
        if any(c in k or c in v for c in (NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR)):
            raise ProtocolError(f"property {k!r} contains a reserved separator character")
    return PROPERTY_SEPARATOR.join(f"{k}{NAME_VALUE_SEPARATOR}{v}" for k, v in props.items())


# --- tag hash ------------------------------------------------------------------


def java_string_hash(text: str) -> int:
    """Java's String.hashCode over UTF-16 code units, as a signed int32."""
    h = 0
    if text.isascii():
        for ch in text:
            h = (31 * h + ord(ch)) & 0xFFFFFFFF
    else:
        # surrogatepass: a lone surrogate is one UTF-16 unit in Java; strict encoding would raise
        units = text.encode("utf-16-be", "surrogatepass")
        for i in range(0, len(units), 2):
            h = (31 * h + ((units[i] << 8) | units[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def tags_code(tags: str | None) -> int:
    """The ConsumeQueue tagsCode of a TAGS value: its hash, or 0 when absent/empty."""
    if not tags:
        return 0
    return java_string_hash(tags)


def index_key_hash(key: str) -> int:
    """IndexFile key hash: |hashCode|, with Integer.MIN_VALUE mapped to 0."""
    h = java_string_hash(key)
    if h == -(1 << 31):
        return 0
    return abs(h)
