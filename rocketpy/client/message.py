"""What users send and receive: Message, MessageExt, MessageQueue, send and pull results.

The wire forms live in `rocketpy.protocol.message` (the stored record, properties); this
module is the user's view of them. A `Message` keeps its system properties (TAGS, KEYS,
DELAY, UNIQ_KEY, ...) and user properties in one `properties` map, as RocketMQ does, so a
message read back carries the same map it was sent with.
"""

from __future__ import annotations

import dataclasses
import enum
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from rocketpy import limits
from rocketpy.errors import MessageIllegalError, ProtocolError
from rocketpy.protocol import message as pm
from rocketpy.protocol.bodies import MessageQueue as WireMessageQueue
from rocketpy.protocol.msgid import offset_msg_id

# Property names a user may not set through with_property: the SDK or broker owns them
# (MessageConst.STRING_HASH_SET, less the ones with their own Message field).
RESERVED_PROPERTY_NAMES = frozenset({
    pm.PROPERTY_WAIT_STORE_MSG_OK, pm.PROPERTY_RETRY_TOPIC, pm.PROPERTY_REAL_TOPIC,
    pm.PROPERTY_REAL_QUEUE_ID, pm.PROPERTY_TRANSACTION_PREPARED, pm.PROPERTY_PRODUCER_GROUP,
    pm.PROPERTY_MIN_OFFSET, pm.PROPERTY_MAX_OFFSET, pm.PROPERTY_ORIGIN_MESSAGE_ID,
    pm.PROPERTY_RECONSUME_TIME, pm.PROPERTY_MAX_RECONSUME_TIMES, pm.PROPERTY_MSG_REGION,
    pm.PROPERTY_TRACE_SWITCH, pm.PROPERTY_UNIQ_KEY, pm.PROPERTY_CONSUME_START_TIMESTAMP,
    pm.PROPERTY_TRANSACTION_PREPARED_QUEUE_OFFSET, pm.PROPERTY_TRANSACTION_CHECK_TIMES,
    pm.PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS, pm.PROPERTY_CLUSTER, pm.PROPERTY_TAGS,
    pm.PROPERTY_KEYS, pm.PROPERTY_DELAY_TIME_LEVEL,
})
PROPERTY_TRANSACTION_ID = "__transactionId__"


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class MessageQueue:
    """One queue of a topic on one broker: the unit of ordering, allocation and offsets."""

    topic: str
    broker_name: str
    queue_id: int

    def to_obj(self) -> dict[str, Any]:
        """The JSON object RocketMQ bodies use (LockBatchRequestBody, ResetOffsetBody, ...)."""
        return {"topic": self.topic, "brokerName": self.broker_name, "queueId": self.queue_id}

    def to_wire(self) -> WireMessageQueue:
        return WireMessageQueue(self.topic, self.broker_name, self.queue_id)

    @classmethod
    def from_wire(cls, mq: WireMessageQueue) -> MessageQueue:
        return cls(mq.topic, mq.broker_name, mq.queue_id)

    def __str__(self) -> str:
        return f"{self.topic}@{self.broker_name}:{self.queue_id}"


def _keys_text(keys: str | Iterable[str] | None) -> str | None:
    if keys is None:
        return None
    if isinstance(keys, str):
        return keys or None
    joined = " ".join(k for k in keys if k)
    return joined or None


class Message:
    """A message to send.

        Message("Orders", b"...", tags="paid", keys=["order-42"]).with_property("region", "eu")

    `keys` are indexed by the broker (query by key); `tags` are what consumers filter on;
    `delay_level` (1..18 with the default levels 1s..2h) delays delivery. The SDK sets
    the UNIQ_KEY property (the message id consumers see) at the first send; a message
    sent again keeps it.
    """

    __slots__ = ("topic", "body", "properties", "flag", "wait_store_msg_ok")

    def __init__(self, topic: str, body: bytes, tags: str | None = None,
                 keys: str | Iterable[str] | None = None, properties: Mapping[str, str] | None = None,
                 delay_level: int = 0, flag: int = 0, wait_store_msg_ok: bool = True) -> None:
        if not isinstance(body, bytes | bytearray | memoryview):
            raise MessageIllegalError(
                f"message body must be bytes, got {type(body).__name__}; encode text with .encode()")
        self.topic = topic
        self.body = bytes(body)
        self.properties: dict[str, str] = dict(properties or {})
        self.flag = flag
        self.wait_store_msg_ok = wait_store_msg_ok
        if tags:
            self.tags = tags
        if keys:
            self.keys = keys
        if delay_level:
            self.delay_level = delay_level

    def __repr__(self) -> str:
        return (f"Message(topic={self.topic!r}, body=<{len(self.body)} bytes>, "
                f"properties={self.properties!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.topic, self.body, self.properties, self.flag) == (
            other.topic, other.body, other.properties, other.flag)

    __hash__ = None  # type: ignore[assignment]

    # --- system properties as attributes ------------------------------------------------

    @property
    def tags(self) -> str | None:
        return self.properties.get(pm.PROPERTY_TAGS)

    @tags.setter
    def tags(self, value: str | None) -> None:
        _set_or_drop(self.properties, pm.PROPERTY_TAGS, value)

    @property
    def keys(self) -> list[str]:
        return [k for k in self.properties.get(pm.PROPERTY_KEYS, "").split(" ") if k]

    @keys.setter
    def keys(self, value: str | Iterable[str] | None) -> None:
        _set_or_drop(self.properties, pm.PROPERTY_KEYS, _keys_text(value))

    @property
    def delay_level(self) -> int:
        text = self.properties.get(pm.PROPERTY_DELAY_TIME_LEVEL)
        return int(text) if text and text.lstrip("-").isdigit() else 0

    @delay_level.setter
    def delay_level(self, level: int) -> None:
        if not isinstance(level, int) or level < 0:
            raise MessageIllegalError(f"delay_level {level!r} must be an integer >= 0 (0 = no delay)")
        _set_or_drop(self.properties, pm.PROPERTY_DELAY_TIME_LEVEL, str(level) if level else None)

    @property
    def uniq_key(self) -> str | None:
        return self.properties.get(pm.PROPERTY_UNIQ_KEY)

    @property
    def user_properties(self) -> dict[str, str]:
        """The properties that are not RocketMQ's own."""
        return {k: v for k, v in self.properties.items() if k not in RESERVED_PROPERTY_NAMES}

    def with_property(self, name: str, value: str) -> Message:
        """Set a user property and return the message (chainable)."""
        if name in RESERVED_PROPERTY_NAMES:
            raise MessageIllegalError(f"property name {name!r} is reserved by RocketMQ; choose another name")
        if not name or not isinstance(value, str) or not value:
            raise MessageIllegalError(f"property {name!r} needs a non-empty name and a non-empty string value")
        self.properties[name] = value
        return self

    def properties_text(self) -> str:
        """The properties as they travel (k\\x01v\\x02...), WAIT included as Java sends it."""
        props = self.properties
        if self.wait_store_msg_ok and pm.PROPERTY_WAIT_STORE_MSG_OK not in props:
            props = {**props, pm.PROPERTY_WAIT_STORE_MSG_OK: "true"}
        try:
            return pm.format_properties(props)
        except ProtocolError as exc:
            raise MessageIllegalError(f"{exc}; remove the \\x01/\\x02 characters") from None


def _set_or_drop(props: dict[str, str], name: str, value: str | None) -> None:
    if value:
        props[name] = value
    else:
        props.pop(name, None)


@dataclasses.dataclass(slots=True)
class MessageExt:
    """A received message (RocketMQ's MessageExt / MessageClientExt).

    `msg_id` is the producer's UNIQ_KEY when there is one, else the broker's offset id
    (`offset_msg_id`: store host, port and CommitLog offset). The body is already
    inflated when the producer compressed it.
    """

    topic: str
    body: bytes
    properties: dict[str, str]
    queue_id: int
    queue_offset: int
    commitlog_offset: int
    sys_flag: int
    born_timestamp: int
    born_host: str
    store_timestamp: int
    store_host: str
    reconsume_times: int
    msg_id: str
    offset_msg_id: str
    broker_name: str = ""
    flag: int = 0
    body_crc: int = 0
    prepared_transaction_offset: int = 0

    @property
    def tags(self) -> str | None:
        return self.properties.get(pm.PROPERTY_TAGS)

    @property
    def keys(self) -> list[str]:
        return [k for k in self.properties.get(pm.PROPERTY_KEYS, "").split(" ") if k]

    @property
    def delay_level(self) -> int:
        text = self.properties.get(pm.PROPERTY_DELAY_TIME_LEVEL, "")
        return int(text) if text.isdigit() else 0

    @property
    def user_properties(self) -> dict[str, str]:
        return {k: v for k, v in self.properties.items() if k not in RESERVED_PROPERTY_NAMES}

    @property
    def uniq_key(self) -> str | None:
        return self.properties.get(pm.PROPERTY_UNIQ_KEY)

    @property
    def message_queue(self) -> MessageQueue:
        return MessageQueue(self.topic, self.broker_name, self.queue_id)

    def get_property(self, name: str) -> str | None:
        return self.properties.get(name)

    @classmethod
    def from_record(cls, rec: pm.MessageRecord, broker_name: str = "") -> MessageExt:
        """The user's view of a decoded record: body inflated, ids computed."""
        body = rec.body
        if rec.sys_flag & pm.SysFlag.COMPRESSED:
            body = inflate_body(body)
        props = pm.parse_properties(rec.properties)
        host, port = _split_host(rec.store_host), rec.store_port
        try:
            offset_id = offset_msg_id(host, port, rec.phys_offset)
        except ProtocolError:
            offset_id = ""
        return cls(
            topic=rec.topic, body=body, properties=props, queue_id=rec.queue_id,
            queue_offset=rec.queue_offset, commitlog_offset=rec.phys_offset, sys_flag=rec.sys_flag,
            born_timestamp=rec.born_timestamp, born_host=f"{rec.born_host}:{rec.born_port}",
            store_timestamp=rec.store_timestamp, store_host=f"{rec.store_host}:{rec.store_port}",
            reconsume_times=rec.reconsume_times,
            msg_id=props.get(pm.PROPERTY_UNIQ_KEY) or offset_id, offset_msg_id=offset_id,
            broker_name=broker_name, flag=rec.flag, body_crc=rec.body_crc,
            prepared_transaction_offset=rec.prepared_transaction_offset)


def _split_host(host: str) -> str:
    return host


def inflate_body(body: bytes) -> bytes:
    """Inflate a COMPRESSED body (zlib, as Java's UtilAll.uncompress), bounded in size."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(body, limits.MESSAGE_SIZE_MAX_DEFAULT * 4)
    except zlib.error as exc:
        raise ProtocolError(f"compressed message body does not inflate: {exc}") from None
    if inflater.unconsumed_tail:
        raise ProtocolError("compressed message body inflates past 16 MiB; refusing it")
    return out


def decode_messages(body: bytes | bytearray | memoryview, broker_name: str = "") -> list[MessageExt]:
    """The messages of a PULL_MESSAGE response body (records back to back)."""
    return [MessageExt.from_record(rec, broker_name) for rec in pm.iter_records(body)]


# --- results -----------------------------------------------------------------------------


class SendStatus(enum.Enum):
    """How a broker stored a sent message (SendStatus); anything but SEND_OK still stored it."""

    SEND_OK = "SEND_OK"
    FLUSH_DISK_TIMEOUT = "FLUSH_DISK_TIMEOUT"
    FLUSH_SLAVE_TIMEOUT = "FLUSH_SLAVE_TIMEOUT"
    SLAVE_NOT_AVAILABLE = "SLAVE_NOT_AVAILABLE"


@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    """The broker's answer to a send: the message id consumers will see (`msg_id`, the
    UNIQ_KEY; comma-joined for a batch), the broker's offset id, queue and queue offset."""

    status: SendStatus
    msg_id: str
    offset_msg_id: str
    message_queue: MessageQueue
    queue_offset: int
    transaction_id: str | None = None
    region_id: str | None = None
    trace_on: bool = True


class LocalTransactionState(enum.Enum):
    """The outcome of a local transaction; UNKNOW (RocketMQ's spelling) asks the broker to check back."""

    COMMIT_MESSAGE = "COMMIT_MESSAGE"
    ROLLBACK_MESSAGE = "ROLLBACK_MESSAGE"
    UNKNOW = "UNKNOW"
    UNKNOWN = "UNKNOW"  # alias with the usual spelling


@dataclasses.dataclass(frozen=True, slots=True)
class TransactionSendResult:
    """A half message's SendResult and what the local transaction decided."""

    send_result: SendResult
    local_transaction_state: LocalTransactionState

    @property
    def status(self) -> SendStatus:
        return self.send_result.status

    @property
    def msg_id(self) -> str:
        return self.send_result.msg_id

    @property
    def transaction_id(self) -> str | None:
        return self.send_result.transaction_id


class PullStatus(enum.Enum):
    """FOUND: messages; NO_NEW_MSG: none past the offset; NO_MATCHED_MSG: none matched the
    filter; OFFSET_ILLEGAL: the offset is outside the queue (use next_begin_offset)."""

    FOUND = "FOUND"
    NO_NEW_MSG = "NO_NEW_MSG"
    NO_MATCHED_MSG = "NO_MATCHED_MSG"
    OFFSET_ILLEGAL = "OFFSET_ILLEGAL"


@dataclasses.dataclass(frozen=True, slots=True)
class PullResult:
    status: PullStatus
    next_begin_offset: int
    min_offset: int
    max_offset: int
    messages: list[MessageExt] = dataclasses.field(default_factory=list)
    suggest_which_broker_id: int = 0


def properties_from(mapping: Mapping[str, str] | None) -> dict[str, str]:
    return dict(mapping or {})
