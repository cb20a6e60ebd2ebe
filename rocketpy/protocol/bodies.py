"""JSON bodies of the remoting protocol (RocketMQ's RemotingSerializable subclasses).

Reading is lenient, in the ways fastjson is and real clients need
(remoting-protocol.md §8, §9.1, §9.9, §13; storage-format.md §8):

- integer map keys may come unquoted (`{0:"x"}`, what fastjson writes);
- numbers may come as strings and strings as numbers;
- booleans may come as `true`/`false`, `"true"`/`"false"`, `0`/`1` or `"0"`/`"1"`;
- enums may come as names (Java, ali-ons) or ordinals (C++);
- missing or null arrays and maps are empty; unknown keys are ignored.

Anything else that is wrong (not JSON, an object where a list belongs, a
number out of range) raises ProtocolError, never KeyError, TypeError or
ValueError. Writing is strict JSON with quoted keys, which every client reads.

Each body class has `from_json(bytes) -> Self` and `to_json() -> bytes`, plus
`from_obj`/`to_obj` for the already-parsed form, so bodies nest.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Self, TypeVar

import orjson

from rocketpy import limits
from rocketpy.errors import ProtocolError
from rocketpy.protocol.message import java_string_hash
from rocketpy.protocol.topics import PERM_READ_WRITE

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# --- lenient JSON -----------------------------------------------------------------

# A whole string literal (skipped as is), or a bare integer key after `{` or `,`.
# The string branch is possessive and also takes an unterminated string to the end,
# so a string is scanned once: no input makes this quadratic.
_BARE_INT_KEY = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|([{,])(\s*)(-?[0-9]+)(\s*):', re.DOTALL)


def _quote_key(m: re.Match[bytes]) -> bytes:
    if m.group(1) is None:
        return m.group(0)
    return m.group(1) + m.group(2) + b'"' + m.group(3) + b'"' + m.group(4) + b":"


def quote_bare_int_keys(data: bytes) -> bytes:
    """Rewrite fastjson's unquoted integer keys (`{0:12}`) as JSON (`{"0":12}`)."""
    return _BARE_INT_KEY.sub(_quote_key, data)


def parse_json_lenient(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON, also accepting fastjson's unquoted integer map keys; ProtocolError if invalid."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as first:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if not raw.strip():
            raise ProtocolError("JSON body is empty") from None
        try:
            return orjson.loads(quote_bare_int_keys(raw))
        except orjson.JSONDecodeError:
            raise ProtocolError(f"body is not valid JSON: {first}") from None
    except TypeError as exc:
        raise ProtocolError(f"body is not valid JSON: {exc}") from None


def dumps(obj: Any) -> bytes:
    """Strict JSON (quoted keys, UTF-8, compact)."""
    return orjson.dumps(obj)


# --- value coercion (what fastjson converts) -----------------------------------------

_INT_TEXT = re.compile(r"\s*[-+]?[0-9]+\s*")
_TRUE_TEXT = frozenset({"true", "1", "y", "t"})
_FALSE_TEXT = frozenset({"false", "0", "n", "f", ""})


def as_int(v: Any, what: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    if isinstance(v, bool):
        raise ProtocolError(f"{what}: expected a number, got a boolean")
    if isinstance(v, int):
        n = v
    elif isinstance(v, str) and _INT_TEXT.fullmatch(v):
        n = int(v)
    elif isinstance(v, float) and v.is_integer():
        n = int(v)
    else:
        raise ProtocolError(f"{what}: expected an integer, got {type(v).__name__} {str(v)[:40]!r}")
    if not lo <= n <= hi:
        raise ProtocolError(f"{what}: {n} is outside {lo}..{hi}")
    return n


def as_bool(v: Any, what: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return v == 1
    if isinstance(v, str):
        t = v.strip().lower()
        if t in _TRUE_TEXT:
            return True
        if t in _FALSE_TEXT:
            return False
    raise ProtocolError(f"{what}: expected a boolean, got {str(v)[:40]!r}")


def as_str(v: Any, what: str) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    raise ProtocolError(f"{what}: expected a string, got {type(v).__name__}")


def as_obj(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ProtocolError(f"{what}: expected a JSON object, got {type(v).__name__}")
    return v


def as_list(v: Any, what: str) -> list[Any]:
    """A JSON array; null (or missing) is empty."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise ProtocolError(f"{what}: expected a JSON array, got {type(v).__name__}")
    return v


def as_map(v: Any, what: str) -> dict[str, Any]:
    """A JSON object used as a map; null (or missing) is empty."""
    if v is None:
        return {}
    return as_obj(v, what)


def _req(d: Mapping[str, Any], key: str, what: str) -> Any:
    v = d.get(key)
    if v is None:
        raise ProtocolError(f"{what}: required field {key!r} is missing")
    return v


def get_str(d: Mapping[str, Any], key: str, what: str, default: str = "") -> str:
    v = d.get(key)
    return default if v is None else as_str(v, f"{what}.{key}")


def get_opt_str(d: Mapping[str, Any], key: str, what: str) -> str | None:
    v = d.get(key)
    return None if v is None else as_str(v, f"{what}.{key}")


def req_str(d: Mapping[str, Any], key: str, what: str) -> str:
    return as_str(_req(d, key, what), f"{what}.{key}")


def get_int(d: Mapping[str, Any], key: str, what: str, default: int = 0,
            lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    v = d.get(key)
    return default if v is None else as_int(v, f"{what}.{key}", lo, hi)


def get_int32(d: Mapping[str, Any], key: str, what: str, default: int = 0) -> int:
    return get_int(d, key, what, default, INT32_MIN, INT32_MAX)


def get_bool(d: Mapping[str, Any], key: str, what: str, default: bool = False) -> bool:
    v = d.get(key)
    return default if v is None else as_bool(v, f"{what}.{key}")


def get_str_list(d: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
    path = f"{what}.{key}"
    return tuple(as_str(x, path) for x in as_list(d.get(key), path))


T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


def get_list_of(d: Mapping[str, Any], key: str, what: str,
                parse: Callable[[Any, str], T]) -> tuple[T, ...]:
    path = f"{what}.{key}"
    return tuple(parse(x, f"{path}[{i}]") for i, x in enumerate(as_list(d.get(key), path)))


def as_enum(cls: type[E], v: Any, what: str) -> E:
    """An enum member from its wire name (Java) or its ordinal (C++), number or text."""
    members = list(cls)
    if isinstance(v, bool):
        raise ProtocolError(f"{what}: expected a {cls.__name__} name or ordinal, got a boolean")
    if isinstance(v, str) and not _INT_TEXT.fullmatch(v):
        try:
            return cls[v.strip().upper()]
        except KeyError:
            raise ProtocolError(f"{what}: {v[:40]!r} is not a {cls.__name__}") from None
    n = as_int(v, what)
    if not 0 <= n < len(members):
        raise ProtocolError(f"{what}: ordinal {n} is not a {cls.__name__}")
    return members[n]


def get_enum(d: Mapping[str, Any], key: str, what: str, cls: type[E], default: E) -> E:
    v = d.get(key)
    return default if v is None else as_enum(cls, v, f"{what}.{key}")


def int_key_map(v: Any, what: str, value: Callable[[Any, str], T],
                lo: int = INT64_MIN, hi: int = INT64_MAX) -> dict[int, T]:
    """A map whose keys are integers (quoted or not on the wire)."""
    out: dict[int, T] = {}
    for k, x in as_map(v, what).items():
        out[as_int(k, f"{what} key", lo, hi)] = value(x, f"{what}[{k}]")
    return out


def _int_keys_out(m: Mapping[int, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in m.items()}


# --- base ---------------------------------------------------------------------------


class JsonBody:
    """Mixin: from_json/to_json in terms of from_obj/to_obj."""

    __slots__ = ()
    WHAT: ClassVar[str] = "body"

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        raise NotImplementedError

    def to_obj(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str) -> Self:
        return cls.from_obj(parse_json_lenient(data), cls.WHAT)

    def to_json(self) -> bytes:
        return dumps(self.to_obj())


def _parser(cls: type[Any]) -> Callable[[Any, str], Any]:
    return lambda v, what: cls.from_obj(v, what)


# --- enums --------------------------------------------------------------------------


class ConsumeType(enum.IntEnum):
    """Value = Java ordinal (what C++ sends), name = wire name (what Java sends)."""

    CONSUME_ACTIVELY = 0       # pull
    CONSUME_PASSIVELY = 1      # push


class MessageModel(enum.IntEnum):
    BROADCASTING = 0
    CLUSTERING = 1


class ConsumeFromWhere(enum.IntEnum):
    CONSUME_FROM_LAST_OFFSET = 0
    CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST = 1
    CONSUME_FROM_MIN_OFFSET = 2
    CONSUME_FROM_MAX_OFFSET = 3
    CONSUME_FROM_FIRST_OFFSET = 4
    CONSUME_FROM_TIMESTAMP = 5


class TopicFilterType(enum.IntEnum):
    SINGLE_TAG = 0
    MULTI_TAG = 1


EXPRESSION_TYPE_TAG = "TAG"
EXPRESSION_TYPE_SQL92 = "SQL92"
SUB_ALL = "*"

# --- topics, versions, registration ---------------------------------------------------

TOPIC_QUEUE_NUMS_DEFAULT = 16


@dataclasses.dataclass(frozen=True, slots=True)
class DataVersion(JsonBody):
    """Version of a broker's topic table; the NameServer compares it to spot changes."""

    WHAT: ClassVar[str] = "DataVersion"
    timestamp: int = 0
    counter: int = 0

    def next(self, now_ms: int) -> DataVersion:
        return DataVersion(now_ms, self.counter + 1)

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        return cls(get_int(d, "timestamp", w), get_int(d, "counter", w))

    def to_obj(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "counter": self.counter}


@dataclasses.dataclass(frozen=True, slots=True)
class TopicConfig(JsonBody):
    WHAT: ClassVar[str] = "TopicConfig"
    topic_name: str
    read_queue_nums: int = TOPIC_QUEUE_NUMS_DEFAULT
    write_queue_nums: int = TOPIC_QUEUE_NUMS_DEFAULT
    perm: int = PERM_READ_WRITE
    topic_filter_type: TopicFilterType = TopicFilterType.SINGLE_TAG
    topic_sys_flag: int = 0
    order: bool = False

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None, *, default_name: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        name = get_opt_str(d, "topicName", w)
        if name is None:
            if default_name is None:
                raise ProtocolError(f"{w}: required field 'topicName' is missing")
            name = default_name
        return cls(
            topic_name=name,
            read_queue_nums=get_int32(d, "readQueueNums", w, TOPIC_QUEUE_NUMS_DEFAULT),
            write_queue_nums=get_int32(d, "writeQueueNums", w, TOPIC_QUEUE_NUMS_DEFAULT),
            perm=get_int32(d, "perm", w, PERM_READ_WRITE),
            topic_filter_type=get_enum(d, "topicFilterType", w, TopicFilterType,
                                       TopicFilterType.SINGLE_TAG),
            topic_sys_flag=get_int32(d, "topicSysFlag", w, 0),
            order=get_bool(d, "order", w, False),
        )

    def to_obj(self) -> dict[str, Any]:
        return {
            "topicName": self.topic_name, "readQueueNums": self.read_queue_nums,
            "writeQueueNums": self.write_queue_nums, "perm": self.perm,
            "topicFilterType": self.topic_filter_type.name, "topicSysFlag": self.topic_sys_flag,
            "order": self.order,
        }

    def encode_compact(self) -> str:
        """TopicConfig.encode: `name read write perm filterType` (compressed registration)."""
        return (f"{self.topic_name} {self.read_queue_nums} {self.write_queue_nums} {self.perm} "
                f"{self.topic_filter_type.name}")

    @classmethod
    def decode_compact(cls, text: str) -> Self:
        parts = text.split(" ")
        if len(parts) != 5:
            raise ProtocolError(f"compact topic config {text[:80]!r} does not have 5 fields")
        w = "compact TopicConfig"
        return cls(parts[0], as_int(parts[1], w, INT32_MIN, INT32_MAX),
                   as_int(parts[2], w, INT32_MIN, INT32_MAX), as_int(parts[3], w, INT32_MIN, INT32_MAX),
                   as_enum(TopicFilterType, parts[4], w))


def _topic_table(v: Any, what: str) -> dict[str, TopicConfig]:
    return {name: TopicConfig.from_obj(x, f"{what}[{name}]", default_name=name)
            for name, x in as_map(v, what).items()}


@dataclasses.dataclass(frozen=True, slots=True)
class TopicConfigSerializeWrapper(JsonBody):
    """A broker's topic table; also the format of `topics.json`."""

    WHAT: ClassVar[str] = "TopicConfigSerializeWrapper"
    topic_config_table: dict[str, TopicConfig] = dataclasses.field(default_factory=dict)
    data_version: DataVersion = DataVersion()

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        dv = d.get("dataVersion")
        return cls(_topic_table(d.get("topicConfigTable"), f"{w}.topicConfigTable"),
                   DataVersion() if dv is None else DataVersion.from_obj(dv, f"{w}.dataVersion"))

    def to_obj(self) -> dict[str, Any]:
        return {"topicConfigTable": {k: v.to_obj() for k, v in self.topic_config_table.items()},
                "dataVersion": self.data_version.to_obj()}


_I32 = struct.Struct(">i")


@dataclasses.dataclass(frozen=True, slots=True)
class RegisterBrokerBody(JsonBody):
    """Body of REGISTER_BROKER (§8.2), plain JSON or the compressed form."""

    WHAT: ClassVar[str] = "RegisterBrokerBody"
    topic_config_serialize_wrapper: TopicConfigSerializeWrapper = dataclasses.field(
        default_factory=TopicConfigSerializeWrapper)
    filter_server_list: tuple[str, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        wrapper = d.get("topicConfigSerializeWrapper")
        if wrapper is None and ("topicConfigTable" in d or "dataVersion" in d):
            # request version < 37: the body is the bare wrapper
            return cls(TopicConfigSerializeWrapper.from_obj(d, w), ())
        return cls(
            TopicConfigSerializeWrapper() if wrapper is None else
            TopicConfigSerializeWrapper.from_obj(wrapper, f"{w}.topicConfigSerializeWrapper"),
            get_str_list(d, "filterServerList", w))

    def to_obj(self) -> dict[str, Any]:
        return {"topicConfigSerializeWrapper": self.topic_config_serialize_wrapper.to_obj(),
                "filterServerList": list(self.filter_server_list)}

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, *, compressed: bool = False) -> Self:
        """The body as the header's `compressed` flag says; an empty body is an empty table."""
        if len(data) == 0:
            return cls()
        return cls.decode_compressed(data) if compressed else cls.from_json(data)

    def encode_compressed(self) -> bytes:
        """RegisterBrokerBody.encode(true): zlib of length-prefixed parts (§8.2)."""
        wrapper = self.topic_config_serialize_wrapper
        parts: list[bytes] = []
        dv = wrapper.data_version.to_json()
        parts += [_I32.pack(len(dv)), dv, _I32.pack(len(wrapper.topic_config_table))]
        for tc in wrapper.topic_config_table.values():
            b = tc.encode_compact().encode()
            parts += [_I32.pack(len(b)), b]
        fs = dumps(list(self.filter_server_list))
        parts += [_I32.pack(len(fs)), fs]
        return zlib.compress(b"".join(parts), 9)

    @classmethod
    def decode_compressed(cls, data: bytes | bytearray | memoryview) -> Self:
        """Inverse of encode_compressed; a 5.x broker's trailing queue-mapping part is ignored."""
        w = "compressed RegisterBrokerBody"
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(data, limits.REGISTER_BROKER_BODY_INFLATED_SIZE_MAX)
        except zlib.error as exc:
            raise ProtocolError(f"{w} does not inflate: {exc}") from None
        if inflater.unconsumed_tail:
            raise ProtocolError(
                f"{w} inflates past {limits.REGISTER_BROKER_BODY_INFLATED_SIZE_MAX} bytes")
        pos = 0

        def chunk() -> bytes:
            nonlocal pos
            if len(raw) - pos < 4:
                raise ProtocolError(f"{w} is truncated at byte {pos}")
            n = _I32.unpack_from(raw, pos)[0]
            pos += 4
            if n < 0 or n > len(raw) - pos:
                raise ProtocolError(f"{w}: length {n} at byte {pos - 4} runs past the data")
            out = raw[pos:pos + n]
            pos += n
            return out

        dv = DataVersion.from_json(chunk())
        if len(raw) - pos < 4:
            raise ProtocolError(f"{w} is truncated at byte {pos}")
        count = _I32.unpack_from(raw, pos)[0]
        pos += 4
        if count < 0:
            raise ProtocolError(f"{w}: negative topic count {count}")
        table: dict[str, TopicConfig] = {}
        for _ in range(count):
            try:
                text = chunk().decode()
            except UnicodeDecodeError:
                raise ProtocolError(f"{w}: a topic config is not UTF-8") from None
            tc = TopicConfig.decode_compact(text)
            table[tc.topic_name] = tc
        fs_obj = parse_json_lenient(chunk())
        filters = tuple(as_str(x, f"{w}.filterServerList") for x in as_list(fs_obj, f"{w}.filterServerList"))
        return cls(TopicConfigSerializeWrapper(table, dv), filters)


# --- routes -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class QueueData(JsonBody):
    WHAT: ClassVar[str] = "QueueData"
    broker_name: str
    read_queue_nums: int
    write_queue_nums: int
    perm: int
    topic_sys_flag: int = 0

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        sys_flag = d.get("topicSysFlag")
        if sys_flag is None:
            sys_flag = d.get("topicSynFlag")          # spelling up to 4.8.x
        return cls(req_str(d, "brokerName", w), get_int32(d, "readQueueNums", w),
                   get_int32(d, "writeQueueNums", w), get_int32(d, "perm", w),
                   0 if sys_flag is None else as_int(sys_flag, f"{w}.topicSysFlag", INT32_MIN, INT32_MAX))

    def to_obj(self) -> dict[str, Any]:
        return {"brokerName": self.broker_name, "readQueueNums": self.read_queue_nums,
                "writeQueueNums": self.write_queue_nums, "perm": self.perm,
                "topicSysFlag": self.topic_sys_flag}


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerData(JsonBody):
    """One broker name: its cluster and brokerId -> "ip:port" (0 = master)."""

    WHAT: ClassVar[str] = "BrokerData"
    cluster: str
    broker_name: str
    broker_addrs: dict[int, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        return cls(get_str(d, "cluster", w), req_str(d, "brokerName", w),
                   int_key_map(d.get("brokerAddrs"), f"{w}.brokerAddrs", as_str))

    def to_obj(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "brokerName": self.broker_name,
                "brokerAddrs": _int_keys_out(self.broker_addrs)}

    @property
    def master_addr(self) -> str | None:
        return self.broker_addrs.get(0)


def _str_list_map(v: Any, what: str) -> dict[str, tuple[str, ...]]:
    return {k: tuple(as_str(x, f"{what}[{k}]") for x in as_list(x_list, f"{what}[{k}]"))
            for k, x_list in as_map(v, what).items()}


@dataclasses.dataclass(frozen=True, slots=True)
class TopicRouteData(JsonBody):
    """GET_ROUTEINFO_BY_TOPIC response body (§8.1)."""

    WHAT: ClassVar[str] = "TopicRouteData"
    queue_datas: tuple[QueueData, ...] = ()
    broker_datas: tuple[BrokerData, ...] = ()
    filter_server_table: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    order_topic_conf: str | None = None

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        return cls(get_list_of(d, "queueDatas", w, _parser(QueueData)),
                   get_list_of(d, "brokerDatas", w, _parser(BrokerData)),
                   _str_list_map(d.get("filterServerTable"), f"{w}.filterServerTable"),
                   get_opt_str(d, "orderTopicConf", w))

    def to_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.order_topic_conf is not None:
            out["orderTopicConf"] = self.order_topic_conf
        out["queueDatas"] = [q.to_obj() for q in self.queue_datas]
        out["brokerDatas"] = [b.to_obj() for b in self.broker_datas]
        out["filterServerTable"] = {k: list(v) for k, v in self.filter_server_table.items()}
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterInfo(JsonBody):
    """GET_BROKER_CLUSTER_INFO response body (§8.3)."""

    WHAT: ClassVar[str] = "ClusterInfo"
    broker_addr_table: dict[str, BrokerData] = dataclasses.field(default_factory=dict)
    cluster_addr_table: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        brokers = {k: BrokerData.from_obj(v, f"{w}.brokerAddrTable[{k}]")
                   for k, v in as_map(d.get("brokerAddrTable"), f"{w}.brokerAddrTable").items()}
        return cls(brokers, _str_list_map(d.get("clusterAddrTable"), f"{w}.clusterAddrTable"))

    def to_obj(self) -> dict[str, Any]:
        return {"brokerAddrTable": {k: v.to_obj() for k, v in self.broker_addr_table.items()},
                "clusterAddrTable": {k: list(v) for k, v in self.cluster_addr_table.items()}}


@dataclasses.dataclass(frozen=True, slots=True)
class TopicList(JsonBody):
    WHAT: ClassVar[str] = "TopicList"
    topic_list: tuple[str, ...] = ()
    broker_addr: str | None = None

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        return cls(get_str_list(d, "topicList", w), get_opt_str(d, "brokerAddr", w))

    def to_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {"topicList": list(self.topic_list)}
        if self.broker_addr is not None:
            out["brokerAddr"] = self.broker_addr
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class KVTable(JsonBody):
    WHAT: ClassVar[str] = "KVTable"
    table: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        return cls({k: as_str(v, f"{w}.table[{k}]")
                    for k, v in as_map(d.get("table"), f"{w}.table").items()})

    def to_obj(self) -> dict[str, Any]:
        return {"table": dict(self.table)}


# --- heartbeat ------------------------------------------------------------------------------


def _java_trim(text: str) -> str:
    """String.trim: strip every character <= U+0020 from both ends."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def split_sub_string(sub_string: str) -> tuple[str, ...]:
    """The tags of a TAG expression (FilterAPI.buildSubscriptionData): split on `||`,
    trimmed, empties dropped, duplicates dropped (Java keeps a set)."""
    seen: dict[str, None] = {}
    for part in sub_string.split("||"):
        tag = _java_trim(part)
        if tag:
            seen[tag] = None
    return tuple(seen)


def _is_sub_all(sub_string: str) -> bool:
    return sub_string == SUB_ALL or not _java_trim(sub_string)


def _to_int32(code: int) -> int:
    return ((code + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@dataclasses.dataclass(frozen=True, slots=True)
class SubscriptionData(JsonBody):
    """A consumer's subscription to one topic. For TAG expressions, `code_set` is always
    computed here from the tags (C++ clients send garbage codes)."""

    WHAT: ClassVar[str] = "SubscriptionData"
    topic: str
    sub_string: str = SUB_ALL
    tags_set: tuple[str, ...] = ()
    code_set: tuple[int, ...] = ()
    sub_version: int = 0
    class_filter_mode: bool = False
    expression_type: str = EXPRESSION_TYPE_TAG

    @property
    def is_all(self) -> bool:
        """Every message matches (`*` or an empty TAG expression)."""
        return self.expression_type == EXPRESSION_TYPE_TAG and _is_sub_all(self.sub_string)

    @property
    def is_tag_type(self) -> bool:
        return self.expression_type == EXPRESSION_TYPE_TAG

    def matches_tags_code(self, code: int) -> bool:
        """The broker's ConsumeQueue-level filter (ExpressionMessageFilter.isMatchedByConsumeQueue).

        For TAG subscriptions: `*`, or the entry's tagsCode (read as a Java int) in code_set.
        Other expression types are not filtered by tag (always True here).
        """
        if self.expression_type != EXPRESSION_TYPE_TAG or _is_sub_all(self.sub_string):
            return True
        return _to_int32(code) in self.code_set

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        expression_type = get_str(d, "expressionType", w, EXPRESSION_TYPE_TAG) or EXPRESSION_TYPE_TAG
        sub_string = get_str(d, "subString", w, SUB_ALL)
        tags = get_str_list(d, "tagsSet", w)
        as_list(d.get("codeSet"), f"{w}.codeSet")        # shape check only; recomputed below
        return _with_tags(
            cls, req_str(d, "topic", w), sub_string, tags, expression_type,
            get_int(d, "subVersion", w), get_bool(d, "classFilterMode", w))

    def to_obj(self) -> dict[str, Any]:
        return {"topic": self.topic, "subString": self.sub_string, "tagsSet": list(self.tags_set),
                "codeSet": list(self.code_set), "subVersion": self.sub_version,
                "classFilterMode": self.class_filter_mode, "expressionType": self.expression_type}


S = TypeVar("S", bound=SubscriptionData)


def _with_tags(cls: type[S], topic: str, sub_string: str, tags: Iterable[str], expression_type: str,
               sub_version: int, class_filter_mode: bool) -> S:
    if expression_type != EXPRESSION_TYPE_TAG:
        tags_t = tuple(tags)
    elif _is_sub_all(sub_string):
        sub_string, tags_t = SUB_ALL, ()
    else:
        tags_t = tuple(dict.fromkeys(t for t in tags if t)) or split_sub_string(sub_string)
    return cls(topic, sub_string, tags_t, tuple(java_string_hash(t) for t in tags_t), sub_version,
               class_filter_mode, expression_type)


def build_subscription(topic: str, sub_string: str | None, *,
                       expression_type: str = EXPRESSION_TYPE_TAG,
                       sub_version: int = 0) -> SubscriptionData:
    """FilterAPI.build: a subscription with tags_set and code_set computed from sub_string."""
    if expression_type == EXPRESSION_TYPE_TAG:
        return _with_tags(SubscriptionData, topic, sub_string or SUB_ALL, (), expression_type,
                          sub_version, False)
    if not sub_string:
        raise ProtocolError(f"a {expression_type} subscription needs an expression")
    return SubscriptionData(topic, sub_string, (), (), sub_version, False, expression_type)


@dataclasses.dataclass(frozen=True, slots=True)
class ProducerData(JsonBody):
    WHAT: ClassVar[str] = "ProducerData"
    group_name: str

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        return cls(req_str(as_obj(obj, w), "groupName", w))

    def to_obj(self) -> dict[str, Any]:
        return {"groupName": self.group_name}


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerData(JsonBody):
    """One consumer group of a client. Missing enums default to a clustering push consumer
    from the last offset (what every client's default is)."""

    WHAT: ClassVar[str] = "ConsumerData"
    group_name: str
    consume_type: ConsumeType = ConsumeType.CONSUME_PASSIVELY
    message_model: MessageModel = MessageModel.CLUSTERING
    consume_from_where: ConsumeFromWhere = ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
    unit_mode: bool = False
    subscription_data_set: tuple[SubscriptionData, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        return cls(
            group_name=req_str(d, "groupName", w),
            consume_type=get_enum(d, "consumeType", w, ConsumeType, ConsumeType.CONSUME_PASSIVELY),
            message_model=get_enum(d, "messageModel", w, MessageModel, MessageModel.CLUSTERING),
            consume_from_where=get_enum(d, "consumeFromWhere", w, ConsumeFromWhere,
                                        ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET),
            unit_mode=get_bool(d, "unitMode", w),
            subscription_data_set=get_list_of(d, "subscriptionDataSet", w, _parser(SubscriptionData)),
        )

    def to_obj(self) -> dict[str, Any]:
        return {"groupName": self.group_name, "consumeType": self.consume_type.name,
                "messageModel": self.message_model.name,
                "consumeFromWhere": self.consume_from_where.name, "unitMode": self.unit_mode,
                "subscriptionDataSet": [s.to_obj() for s in self.subscription_data_set]}


@dataclasses.dataclass(frozen=True, slots=True)
class HeartbeatData(JsonBody):
    """HEART_BEAT body (§9.1). Enum names or ordinals, missing arrays, string subVersion."""

    WHAT: ClassVar[str] = "HeartbeatData"
    client_id: str
    producer_data_set: tuple[ProducerData, ...] = ()
    consumer_data_set: tuple[ConsumerData, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        return cls(req_str(d, "clientID", w),
                   get_list_of(d, "producerDataSet", w, _parser(ProducerData)),
                   get_list_of(d, "consumerDataSet", w, _parser(ConsumerData)))

    def to_obj(self) -> dict[str, Any]:
        return {"clientID": self.client_id,
                "producerDataSet": [p.to_obj() for p in self.producer_data_set],
                "consumerDataSet": [c.to_obj() for c in self.consumer_data_set]}


# --- consumer groups, locks, offsets ----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerIdList(JsonBody):
    """GET_CONSUMER_LIST_BY_GROUP response body (GetConsumerListByGroupResponseBody)."""

    WHAT: ClassVar[str] = "ConsumerIdList"
    consumer_id_list: tuple[str, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        return cls(get_str_list(as_obj(obj, w), "consumerIdList", w))

    def to_obj(self) -> dict[str, Any]:
        return {"consumerIdList": list(self.consumer_id_list)}


@dataclasses.dataclass(frozen=True, slots=True)
class MessageQueue(JsonBody):
    WHAT: ClassVar[str] = "MessageQueue"
    topic: str
    broker_name: str
    queue_id: int

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        return cls(req_str(d, "topic", w), req_str(d, "brokerName", w),
                   as_int(_req(d, "queueId", w), f"{w}.queueId", INT32_MIN, INT32_MAX))

    def to_obj(self) -> dict[str, Any]:
        return {"topic": self.topic, "brokerName": self.broker_name, "queueId": self.queue_id}


def _mq_set(d: Mapping[str, Any], key: str, what: str) -> tuple[MessageQueue, ...]:
    return tuple(dict.fromkeys(get_list_of(d, key, what, _parser(MessageQueue))))


@dataclasses.dataclass(frozen=True, slots=True)
class LockBatchRequestBody(JsonBody):
    """LOCK_BATCH_MQ request body (§9.9)."""

    WHAT: ClassVar[str] = "LockBatchRequestBody"
    consumer_group: str
    client_id: str
    mq_set: tuple[MessageQueue, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        return cls(req_str(d, "consumerGroup", w), req_str(d, "clientId", w), _mq_set(d, "mqSet", w))

    def to_obj(self) -> dict[str, Any]:
        return {"consumerGroup": self.consumer_group, "clientId": self.client_id,
                "mqSet": [m.to_obj() for m in self.mq_set]}


@dataclasses.dataclass(frozen=True, slots=True)
class UnlockBatchRequestBody(LockBatchRequestBody):
    """UNLOCK_BATCH_MQ request body: the same fields as the lock request."""

    WHAT: ClassVar[str] = "UnlockBatchRequestBody"


@dataclasses.dataclass(frozen=True, slots=True)
class LockBatchResponseBody(JsonBody):
    WHAT: ClassVar[str] = "LockBatchResponseBody"
    lock_ok_mq_set: tuple[MessageQueue, ...] = ()

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        return cls(_mq_set(as_obj(obj, w), "lockOKMQSet", w))

    def to_obj(self) -> dict[str, Any]:
        return {"lockOKMQSet": [m.to_obj() for m in self.lock_ok_mq_set]}


def _offset(v: Any, what: str) -> int:
    return as_int(v, what)


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerOffsetTable(JsonBody):
    """`consumerOffset.json` (ConsumerOffsetSerializeWrapper): "topic@group" -> queueId -> offset."""

    WHAT: ClassVar[str] = "ConsumerOffsetTable"
    offset_table: dict[str, dict[int, int]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        table = {k: int_key_map(v, f"{w}.offsetTable[{k}]", _offset, INT32_MIN, INT32_MAX)
                 for k, v in as_map(d.get("offsetTable"), f"{w}.offsetTable").items()}
        return cls(table)

    def to_obj(self) -> dict[str, Any]:
        return {"offsetTable": {k: _int_keys_out(v) for k, v in self.offset_table.items()}}


@dataclasses.dataclass(frozen=True, slots=True)
class DelayOffsetTable(JsonBody):
    """`delayOffset.json`: delay level -> next offset in SCHEDULE_TOPIC_XXXX queue level-1."""

    WHAT: ClassVar[str] = "DelayOffsetTable"
    offset_table: dict[int, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        return cls(int_key_map(d.get("offsetTable"), f"{w}.offsetTable", _offset, INT32_MIN, INT32_MAX))

    def to_obj(self) -> dict[str, Any]:
        return {"offsetTable": _int_keys_out(self.offset_table)}
