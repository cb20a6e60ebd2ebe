"""Admin bodies keyed by MessageQueue: TopicStatsTable and ConsumeStats.

Java writes these with fastjson, which puts a whole object where JSON wants a
string key (remoting-protocol.md §14)::

    {"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"maxOffset":5,...}}}

Java's `mqadmin` reads them back with fastjson, so a broker must write this
form; `parse_fastjson` reads it (and plain JSON) so our admin client can talk to
a Java broker too. Field names are RocketMQ's (common/admin/TopicOffset,
OffsetWrapper, ConsumeStats at rocketmq-all-4.9.8).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

import orjson

from rocketpy import limits
from rocketpy.errors import ProtocolError
from rocketpy.protocol.bodies import MessageQueue, as_int, as_obj, parse_json_lenient

_WS = b" \t\r\n"


class _Parser:
    """Recursive descent over JSON plus fastjson's object keys; a key object becomes its
    canonical JSON text (sorted keys), so maps stay plain dicts."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.depth = 0

    def fail(self, what: str) -> ProtocolError:
        return ProtocolError(f"admin body is not valid JSON at byte {self.pos}: {what}")

    def skip(self) -> None:
        data, pos = self.data, self.pos
        while pos < len(data) and data[pos] in _WS:
            pos += 1
        self.pos = pos

    def value(self) -> Any:
        self.skip()
        if self.pos >= len(self.data):
            raise self.fail("unexpected end")
        c = self.data[self.pos]
        if c == 0x7B:                              # {
            return self.obj()
        if c == 0x5B:                              # [
            return self.arr()
        return self.scalar()

    def scalar(self) -> Any:
        """A string, number, true/false/null: orjson decodes the token we delimit."""
        data, start = self.data, self.pos
        if data[start] == 0x22:                    # a string: find the closing quote
            pos = start + 1
            while True:
                end = data.find(b'"', pos)
                if end < 0:
                    raise self.fail("unterminated string")
                backslashes = 0
                while data[end - 1 - backslashes] == 0x5C:
                    backslashes += 1
                if backslashes % 2 == 0:
                    break
                pos = end + 1
            self.pos = end + 1
        else:
            pos = start
            while pos < len(data) and data[pos] not in b",:}] \t\r\n":
                pos += 1
            self.pos = pos
        try:
            return orjson.loads(data[start:self.pos])
        except orjson.JSONDecodeError:
            raise self.fail(f"bad token {data[start:self.pos][:20]!r}") from None

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > limits.ADMIN_BODY_DEPTH_MAX:
            raise self.fail(f"nested deeper than {limits.ADMIN_BODY_DEPTH_MAX}")

    def obj(self) -> dict[str, Any]:
        self._enter()
        self.pos += 1
        out: dict[str, Any] = {}
        self.skip()
        if self.data[self.pos:self.pos + 1] == b"}":
            self.pos += 1
            self.depth -= 1
            return out
        while True:
            self.skip()
            key = self.value()
            if isinstance(key, dict):
                key = orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()
            elif not isinstance(key, str):
                key = str(key)
            self.skip()
            if self.data[self.pos:self.pos + 1] != b":":
                raise self.fail("expected ':'")
            self.pos += 1
            out[key] = self.value()
            self.skip()
            c = self.data[self.pos:self.pos + 1]
            self.pos += 1
            if c == b"}":
                self.depth -= 1
                return out
            if c != b",":
                raise self.fail("expected ',' or '}'")

    def arr(self) -> list[Any]:
        self._enter()
        self.pos += 1
        out: list[Any] = []
        self.skip()
        if self.data[self.pos:self.pos + 1] == b"]":
            self.pos += 1
            self.depth -= 1
            return out
        while True:
            out.append(self.value())
            self.skip()
            c = self.data[self.pos:self.pos + 1]
            self.pos += 1
            if c == b"]":
                self.depth -= 1
                return out
            if c != b",":
                raise self.fail("expected ',' or ']'")


def parse_fastjson(data: bytes | bytearray | memoryview) -> Any:
    """Plain JSON, or fastjson with object map keys (each turned into its sorted JSON text)."""
    raw = bytes(data)
    try:
        return parse_json_lenient(raw)
    except ProtocolError:
        pass
    parser = _Parser(raw)
    try:
        result = parser.value()
    except IndexError:
        raise parser.fail("unexpected end") from None
    parser.skip()
    if parser.pos != len(raw):
        raise parser.fail("trailing bytes")
    return result


def _mq_key(mq: MessageQueue) -> bytes:
    """A MessageQueue as fastjson writes a map key (fields in alphabetical order)."""
    return orjson.dumps({"brokerName": mq.broker_name, "queueId": mq.queue_id, "topic": mq.topic})


def dumps_mq_map(prefix: dict[str, Any], key: str, table: dict[MessageQueue, dict[str, Any]]) -> bytes:
    """`{...prefix, key: {<mq object>: value, ...}}` in fastjson's object-key form."""
    items = b",".join(_mq_key(mq) + b":" + orjson.dumps(v) for mq, v in table.items())
    head = orjson.dumps(prefix)[:-1]
    sep = b"," if prefix else b""
    return head + sep + orjson.dumps(key) + b":{" + items + b"}}"


def _mq_table(doc: dict[str, Any], what: str) -> list[tuple[MessageQueue, dict[str, Any]]]:
    table = doc.get("offsetTable") or {}
    if not isinstance(table, dict):
        raise ProtocolError(f"{what}.offsetTable: expected an object")
    out = []
    for k, v in table.items():
        mq = MessageQueue.from_obj(parse_json_lenient(k), f"{what}.offsetTable key")
        out.append((mq, as_obj(v, f"{what}.offsetTable[{k}]")))
    out.sort(key=lambda item: (item[0].topic, item[0].broker_name, item[0].queue_id))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class TopicOffset:
    min_offset: int
    max_offset: int
    last_update_timestamp: int

    def to_obj(self) -> dict[str, int]:
        return {"lastUpdateTimestamp": self.last_update_timestamp, "maxOffset": self.max_offset,
                "minOffset": self.min_offset}


@dataclasses.dataclass(frozen=True, slots=True)
class TopicStatsTable:
    """GET_TOPIC_STATS_INFO response body: per queue min/max offset and last store time."""

    WHAT: ClassVar[str] = "TopicStatsTable"
    offset_table: tuple[tuple[MessageQueue, TopicOffset], ...] = ()

    def to_json(self) -> bytes:
        return dumps_mq_map({}, "offsetTable", {mq: off.to_obj() for mq, off in self.offset_table})

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview) -> Self:
        doc = as_obj(parse_fastjson(data), cls.WHAT)
        rows = []
        for mq, v in _mq_table(doc, cls.WHAT):
            w = f"{cls.WHAT}[{mq.topic}:{mq.queue_id}]"
            rows.append((mq, TopicOffset(as_int(v.get("minOffset", 0), w), as_int(v.get("maxOffset", 0), w),
                                         as_int(v.get("lastUpdateTimestamp", 0), w))))
        return cls(tuple(rows))


@dataclasses.dataclass(frozen=True, slots=True)
class OffsetWrapper:
    broker_offset: int
    consumer_offset: int
    last_timestamp: int

    @property
    def lag(self) -> int:
        return max(0, self.broker_offset - self.consumer_offset)

    def to_obj(self) -> dict[str, int]:
        return {"brokerOffset": self.broker_offset, "consumerOffset": self.consumer_offset,
                "lastTimestamp": self.last_timestamp}


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumeStats:
    """GET_CONSUME_STATS response body: per queue broker offset, consumer offset, last consume time."""

    WHAT: ClassVar[str] = "ConsumeStats"
    offset_table: tuple[tuple[MessageQueue, OffsetWrapper], ...] = ()
    consume_tps: float = 0.0

    @property
    def total_lag(self) -> int:
        return sum(w.lag for _, w in self.offset_table)

    def to_json(self) -> bytes:
        return dumps_mq_map({"consumeTps": self.consume_tps}, "offsetTable",
                            {mq: w.to_obj() for mq, w in self.offset_table})

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview) -> Self:
        doc = as_obj(parse_fastjson(data), cls.WHAT)
        rows = []
        for mq, v in _mq_table(doc, cls.WHAT):
            w = f"{cls.WHAT}[{mq.topic}:{mq.queue_id}]"
            rows.append((mq, OffsetWrapper(as_int(v.get("brokerOffset", 0), w),
                                           as_int(v.get("consumerOffset", 0), w),
                                           as_int(v.get("lastTimestamp", 0), w))))
        tps = doc.get("consumeTps", 0.0)
        return cls(tuple(rows), float(tps) if isinstance(tps, int | float) else 0.0)
