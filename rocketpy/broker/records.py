"""Stored records as the broker builds them: the pure parts of a put, shared by the worker's send
path (`handlers/send.py`, `handlers/sendback.py`) and control's own puts (the delay scheduler).

Nothing here does I/O. A record is encoded as parts (fixed head, body, topic, properties) with
queue offset, phys offset and store time left 0 for the writer to patch; properties are rewritten
for the broker's own rules: WAIT is honoured and not stored, CLUSTER is stamped, and a message
with a DELAY level is parked in SCHEDULE_TOPIC_XXXX (RocketMQ's CommitLog.asyncPutMessage).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
import zlib

from rocketpy.protocol import topics as t
from rocketpy.protocol.message import (
    MESSAGE_MAGIC,
    NAME_VALUE_SEPARATOR,
    PROPERTY_CLUSTER,
    PROPERTY_DELAY_TIME_LEVEL,
    PROPERTY_REAL_QUEUE_ID,
    PROPERTY_REAL_TOPIC,
    PROPERTY_SEPARATOR,
    PROPERTY_WAIT_STORE_MSG_OK,
    SysFlag,
    format_properties,
    parse_properties,
)

_PROPS_LEN = struct.Struct(">h")
_WAIT_PREFIX = PROPERTY_WAIT_STORE_MSG_OK + NAME_VALUE_SEPARATOR
_CLUSTER_PREFIX = PROPERTY_CLUSTER + NAME_VALUE_SEPARATOR
DELAY_PREFIX = PROPERTY_DELAY_TIME_LEVEL + NAME_VALUE_SEPARATOR
# sysFlag bits as plain ints: IntFlag arithmetic costs microseconds on the hot path.
_BORNHOST_V6 = int(SysFlag.BORNHOST_V6)
_STOREHOST_V6 = int(SysFlag.STOREHOST_V6)
_HOST_V6_BITS = _BORNHOST_V6 | _STOREHOST_V6
SCHEDULE_TOPIC = t.RMQ_SYS_SCHEDULE_TOPIC


def _record_head(born_len: int, store_len: int) -> struct.Struct:
    """Everything of a stored record before its body (protocol.message layout)::

        TOTALSIZE MAGIC BODYCRC QUEUEID FLAG QUEUEOFFSET PHYSOFFSET SYSFLAG BORNTS
        BORNHOST(4|16) BORNPORT STORETS STOREHOST(4|16) STOREPORT RECONSUME PREPARED_TX BODYLEN
    """
    return struct.Struct(f">iIiiiqqiq{born_len}siq{store_len}siiqi")


HEADS = {(b, s): _record_head(b, s) for b in (4, 16) for s in (4, 16)}
assert HEADS[(4, 4)].size + 1 + 2 == 91, "record layout drifted from protocol.message"


def host_bytes(ip: str) -> tuple[bytes, bool]:
    """(address bytes, is IPv6) of a host as stored in a record; v4-mapped IPv6 is stored as IPv4."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped.packed, False
        return addr.packed, True
    return addr.packed, False


def host_flags(sys_flag: int, born_v6: bool, store_v6: bool) -> int:
    """sysFlag with the BORNHOST_V6 / STOREHOST_V6 bits matching the hosts actually stored."""
    sys_flag &= ~_HOST_V6_BITS
    if born_v6:
        sys_flag |= _BORNHOST_V6
    if store_v6:
        sys_flag |= _STOREHOST_V6
    return sys_flag


def topic_part(topic: str) -> bytes:
    """TOPICLEN (1 byte) + topic, as stored."""
    topic_b = topic.encode()
    return bytes((len(topic_b),)) + topic_b


def record_parts(body: bytes, topic_part_b: bytes, props_b: bytes, queue_id: int, flag: int, sys_flag: int,
                 born_ts: int, born_ip: bytes, born_port: int, store_ip: bytes, store_port: int,
                 reconsume: int, prepared_tx_offset: int = 0) -> tuple[list[bytes], int]:
    """One stored record as parts: fixed head, body, topic, properties (queue offset, phys offset
    and store time are left 0 for the writer to patch)."""
    head = HEADS[(len(born_ip), len(store_ip))]
    size = head.size + len(body) + len(topic_part_b) + 2 + len(props_b)
    head_b = head.pack(size, MESSAGE_MAGIC, zlib.crc32(body) & 0x7FFFFFFF, queue_id, flag, 0, 0, sys_flag,
                       born_ts, born_ip, born_port, 0, store_ip, store_port, reconsume, prepared_tx_offset,
                       len(body))
    return [head_b, body, topic_part_b, _PROPS_LEN.pack(len(props_b)) + props_b], size


# --- properties ---------------------------------------------------------------------------------


def wait_and_strip(props: str) -> tuple[str, bool]:
    """(properties without WAIT, whether the client waits): WAIT is honoured, not stored (4.9.1+).

    Java's isWaitStoreMsgOK: absent -> true, else Boolean.parseBoolean.
    """
    at = props.find(_WAIT_PREFIX)
    if at < 0:
        return props, True
    if at == 0 or props[at - 1] == PROPERTY_SEPARATOR:
        end = props.find(PROPERTY_SEPARATOR, at)
        stop = len(props) if end < 0 else end
        if props.find(_WAIT_PREFIX, stop) < 0:      # the usual case: one WAIT item
            value = props[at + len(_WAIT_PREFIX):stop]
            rest = props[:at] + props[stop + 1:] if end >= 0 else props[:max(0, at - 1)]
            return rest, (value.lower() == "true") if value else True
    wait = True
    kept: list[str] = []
    for item in props.split(PROPERTY_SEPARATOR):
        if item.startswith(_WAIT_PREFIX):
            value = item[len(_WAIT_PREFIX):]
            if value:
                wait = value.lower() == "true"
        elif item:
            kept.append(item)
    return PROPERTY_SEPARATOR.join(kept), wait


def with_cluster(props: str, cluster: str) -> str:
    """Add CLUSTER=<cluster> (replacing any value the client sent)."""
    if _CLUSTER_PREFIX in props:
        parsed = parse_properties(props)
        parsed[PROPERTY_CLUSTER] = cluster
        return format_properties(parsed)
    entry = _CLUSTER_PREFIX + cluster
    if not props:
        return entry
    if props.endswith(PROPERTY_SEPARATOR):
        return props + entry
    return props + PROPERTY_SEPARATOR + entry


def has_true(props: str, prefix: str) -> bool:
    """Whether the property `prefix` (name + \\x01) is present with the value true."""
    if prefix not in props:
        return False
    value = parse_properties(props).get(prefix[:-1], "")
    return value.lower() == "true"


def delay_level(props: str) -> int:
    """The DELAY property as Java's getDelayTimeLevel reads it: absent or not a number -> 0."""
    if DELAY_PREFIX not in props:
        return 0
    value = parse_properties(props).get(PROPERTY_DELAY_TIME_LEVEL, "")
    try:
        return int(value)
    except ValueError:
        return 0


def without_property(props: str, name: str) -> str:
    """The properties without `name` (untouched when it is absent)."""
    if name + NAME_VALUE_SEPARATOR not in props:
        return props
    parsed = parse_properties(props)
    parsed.pop(name, None)
    return format_properties(parsed)


# --- delay ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Destination:
    """Where a record is stored and with which properties."""

    topic: str
    queue_id: int
    props: str


def schedule_rewrite(topic: str, queue_id: int, props: str, level_count: int) -> Destination:
    """Park a delayed message in SCHEDULE_TOPIC_XXXX (RocketMQ's CommitLog.asyncPutMessage).

    A DELAY level > 0 sends it to queue level-1 of the schedule topic, the level capped at the
    highest configured one (and written back capped), with REAL_TOPIC / REAL_QID naming where
    the scheduler delivers it. Anything else is returned unchanged. Callers skip transactional
    half messages (they are parked in the half topic instead).
    """
    level = delay_level(props)
    if level <= 0 or level_count <= 0:
        return Destination(topic, queue_id, props)
    level = min(level, level_count)
    parsed = parse_properties(props)
    parsed[PROPERTY_DELAY_TIME_LEVEL] = str(level)
    parsed[PROPERTY_REAL_TOPIC] = topic
    parsed[PROPERTY_REAL_QUEUE_ID] = str(queue_id)
    return Destination(SCHEDULE_TOPIC, level - 1, format_properties(parsed))


def deliver_timestamp_ms(store_timestamp_ms: int, level: int, levels_ms: tuple[int, ...]) -> int:
    """When a parked message is due: its store time + its level's delay (the schedule queue
    entry's tagsCode, RocketMQ's computeDeliverTimestamp); level is capped to the table."""
    level = max(1, min(level, len(levels_ms)))
    return store_timestamp_ms + levels_ms[level - 1]
