"""Typed custom headers: the ``extFields`` of each request and response.

One frozen slotted dataclass per RocketMQ CommandCustomHeader, with RocketMQ's
class names (see ../shared/reference/remoting-protocol.md sections 5, 8, 9).
Attributes are snake_case; the wire name is their camelCase form unless a
``Wire`` annotation says otherwise. A field without a default is required
(RocketMQ's ``@CFNotNull``); optional fields default to None, or to the value a
Java peer always writes for its primitive fields (``unitMode=false``).

    header = PullMessageRequestHeader.from_ext(cmd.ext_fields)
    cmd.response(ResponseCode.SUCCESS, ext_fields=PullMessageResponseHeader(...).to_ext())

Reading (``from_ext``) follows what a Java receiver accepts: values may be
JSON strings, numbers or booleans (C++ and ali-ons send numbers); integers
parse like ``Long.parseLong`` (ASCII digits, optional sign, range-checked to
int32 or int64); booleans like ``Boolean.parseBoolean`` (only a
case-insensitive ``true`` is true), except the send header's ``batch``/``m``
and ``unitMode``/``k``, where ``"1"`` also counts as true: the C++ client
sends ``"1"`` and a Java broker's reading of it as false stores a C++ batch as
one garbage message (reference 13.2 point 5; a deliberate deviation). A
missing required field or a bad number raises HeaderError, which names the
header and the field; a handler answers it with SYSTEM_ERROR, as Java does.

Writing (``to_ext``) gives strings only; None fields are left out.

The per-class field table is computed once, when the class is defined.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Annotated, Any, ClassVar, NamedTuple, Self

from rocketpy.errors import ProtocolError
from rocketpy.protocol.codes import RequestCode
from rocketpy.protocol.remoting import RemotingCommand


class HeaderError(ProtocolError):
    """A request or response header with a missing or unparsable field.

    The frame itself was fine: answer SYSTEM_ERROR with this message as the
    remark and keep the connection.
    """


class _Kind(enum.IntEnum):
    STR = 0
    INT32 = 1
    INT64 = 2
    BOOL = 3
    BOOL_LENIENT = 4  # Boolean.parseBoolean, but "1" is true too


Int32 = Annotated[int, _Kind.INT32]
"""A Java ``int``/``Integer`` field."""
Int64 = Annotated[int, _Kind.INT64]
"""A Java ``long``/``Long`` field."""


@dataclass(frozen=True, slots=True)
class Wire:
    """Annotation metadata: the wire name when it is not the camelCase of the
    attribute, the SEND_MESSAGE_V2 short name, and lenient boolean parsing."""

    name: str | None = None
    v2: str | None = None
    lenient: bool = False


class _Field(NamedTuple):
    attr: str
    wire: str
    kind: _Kind
    required: bool
    default: Any


_RANGES = {
    _Kind.INT32: (-(1 << 31), (1 << 31) - 1, "a 32-bit integer"),
    _Kind.INT64: (-(1 << 63), (1 << 63) - 1, "a 64-bit integer"),
}


def _camel(attr: str) -> str:
    head, *rest = attr.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _analyse(hint: Any) -> tuple[_Kind | None, type | None, Wire | None]:
    """(integer kind, base type, Wire) of one annotation, through Optional and Annotated."""
    kind: _Kind | None = None
    wire: Wire | None = None
    for _ in range(3):
        origin = typing.get_origin(hint)
        if origin is Annotated:
            hint, *extras = typing.get_args(hint)
            for extra in extras:
                if isinstance(extra, _Kind):
                    kind = extra
                elif isinstance(extra, Wire):
                    wire = extra
        elif origin is typing.Union or origin is types.UnionType:
            arms = [arm for arm in typing.get_args(hint) if arm is not type(None)]
            assert len(arms) == 1, f"unsupported union {hint!r}"
            hint = arms[0]
        else:
            break
    return kind, hint if isinstance(hint, type) else None, wire


class Header:
    """Base of every header class: ``from_ext`` and ``to_ext``."""

    __slots__ = ()
    _FIELDS: ClassVar[tuple[_Field, ...]] = ()
    _parse: ClassVar[Any]
    _render: ClassVar[Any]

    @classmethod
    def from_ext(cls, ext: Mapping[str, object]) -> Self:
        """Parse ext fields (unknown keys such as ACL's are ignored)."""
        parsed: Self = cls._parse(ext)
        return parsed

    @classmethod
    def from_command(cls, cmd: RemotingCommand) -> Self:
        return cls.from_ext(cmd.ext_fields)

    def to_ext(self) -> dict[str, str]:
        """Ext fields as strings; None fields are left out."""
        rendered: dict[str, str] = self._render(self)
        return rendered


def _compile(cls: type[Header], v2: bool = False) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    table = []
    for f in fields(cls):  # type: ignore[arg-type]
        kind, base, wire = _analyse(hints[f.name])
        if kind is None:
            if base is str:
                kind = _Kind.STR
            elif base is bool:
                kind = _Kind.BOOL_LENIENT if wire is not None and wire.lenient else _Kind.BOOL
            else:
                raise TypeError(f"{cls.__name__}.{f.name}: use str, bool, Int32 or Int64")
        name = (wire.v2 if v2 and wire is not None else None) or (wire.name if wire else None) or _camel(f.name)
        if v2 and (wire is None or wire.v2 is None):
            raise TypeError(f"{cls.__name__}.{f.name} has no V2 name")
        required = f.default is MISSING and f.default_factory is MISSING
        table.append(_Field(f.name, name, kind, required, None if required else f.default))
    return tuple(table)


_H = typing.TypeVar("_H", bound=type[Header])


def _header(cls: _H) -> _H:
    """Class decorator, below @dataclass: precompute the field table."""
    cls._FIELDS = _compile(cls)
    cls._parse = staticmethod(_make_parser(cls, cls._FIELDS, cls.__name__))
    cls._render = staticmethod(_make_renderer(cls._FIELDS))
    return cls


def _fail(header: str, wire: str, what: str, value: object) -> HeaderError:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return HeaderError(f"{header}: field {wire!r} must be {what}, got {text}")


def _java_str(value: object, header: str, wire: str) -> str:
    if type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    raise _fail(header, wire, "a string, number or boolean", value)


def _slow(value: object, f: _Field, header: str) -> Any:
    """Everything the generated fast path does not take: absent fields,
    signs, non-string types, bad values."""
    if value is None:
        if f.required:
            raise HeaderError(f"{header}: required field {f.wire!r} is missing")
        return f.default
    kind = f.kind
    if kind is _Kind.STR:
        return _java_str(value, header, f.wire)
    if kind is _Kind.INT32 or kind is _Kind.INT64:
        low, high, what = _RANGES[kind]
        if type(value) is int:
            number = value
        elif type(value) is str and 0 < len(value) <= 20:
            digits = value[1:] if value[0] in "+-" else value
            if not (digits.isascii() and digits.isdigit()):
                raise _fail(header, f.wire, what, value)
            number = int(value)
        else:
            raise _fail(header, f.wire, what, value)
        if not low <= number <= high:
            raise _fail(header, f.wire, what, value)
        return number
    if type(value) is bool:
        return value
    text = _java_str(value, header, f.wire).lower()
    return text == "true" or (kind is _Kind.BOOL_LENIENT and text == "1")


# Digits that always fit: fewer than 10 for int32, 19 for int64.
_FAST_DIGITS = {_Kind.INT32: 9, _Kind.INT64: 18}


def _make_parser(cls: type, table: tuple[_Field, ...], header: str) -> Any:
    """Generate ``parse(ext) -> instance`` for one field table: the common
    cases inline, the rest through _slow. Like dataclasses, via exec."""
    lines = ["def parse(ext):", "    get = ext.get"]
    for i, f in enumerate(table):
        v = f"v{i}"
        lines.append(f"    {v} = get({f.wire!r})")
        if f.kind is _Kind.STR:
            lines.append(f"    if type({v}) is not str: {v} = slow({v}, F[{i}], H)")
        elif f.kind is _Kind.INT32 or f.kind is _Kind.INT64:
            low, high, _ = _RANGES[f.kind]
            lines += [
                f"    if type({v}) is str and {v}.isdigit() and {v}.isascii()"
                f" and len({v}) <= {_FAST_DIGITS[f.kind]}: {v} = int({v})",
                f"    elif type({v}) is not int or not {low} <= {v} <= {high}: {v} = slow({v}, F[{i}], H)",
            ]
        else:
            lines += [
                f"    if {v} == 'false': {v} = False",
                f"    elif {v} == 'true': {v} = True",
                f"    elif type({v}) is not bool: {v} = slow({v}, F[{i}], H)",
            ]
    # A frozen dataclass __init__ sets each field through object.__setattr__
    # (~0.2 us a field); setting the slots through their descriptors halves it.
    lines.append("    obj = new(cls)")
    lines += [f"    set{i}(obj, v{i})" for i in range(len(table))]
    lines.append("    return obj")
    namespace: dict[str, Any] = {"cls": cls, "new": object.__new__, "slow": _slow, "F": table, "H": header}
    for i, f in enumerate(table):
        namespace[f"set{i}"] = cls.__dict__[f.attr].__set__
    exec("\n".join(lines), namespace)  # noqa: S102 - code built from our own field tables
    return namespace["parse"]


def _make_renderer(table: tuple[_Field, ...]) -> Any:
    """Generate ``render(header) -> dict[str, str]``."""
    lines = ["def render(self):", "    out = {}"]
    for f in table:
        lines.append(f"    v = self.{f.attr}")
        if f.kind is _Kind.STR:
            value = "v"
        elif f.kind is _Kind.INT32 or f.kind is _Kind.INT64:
            value = "str(v)"
        else:
            value = "'true' if v else 'false'"
        lines.append(f"    if v is not None: out[{f.wire!r}] = {value}")
    lines.append("    return out")
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), namespace)  # noqa: S102 - code built from our own field tables
    return namespace["render"]


# --- send ---------------------------------------------------------------------------

SEND_V2_CODES = frozenset({
    RequestCode.SEND_MESSAGE_V2, RequestCode.SEND_BATCH_MESSAGE, RequestCode.SEND_REPLY_MESSAGE_V2,
})
"""Request codes whose send header uses the V2 short names a..n."""


@_header
@dataclass(frozen=True, slots=True)
class SendMessageRequestHeader(Header):
    """SEND_MESSAGE (long names) and SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE
    (short names a..n; RocketMQ's SendMessageRequestHeaderV2)."""

    _FIELDS_V2: ClassVar[tuple[_Field, ...]] = ()
    _parse_v2: ClassVar[Any]
    _render_v2: ClassVar[Any]

    producer_group: Annotated[str, Wire(v2="a")]
    topic: Annotated[str, Wire(v2="b")]
    default_topic: Annotated[str, Wire(v2="c")]
    default_topic_queue_nums: Annotated[Int32, Wire(v2="d")]
    queue_id: Annotated[Int32, Wire(v2="e")]
    sys_flag: Annotated[Int32, Wire(v2="f")]
    born_timestamp: Annotated[Int64, Wire(v2="g")]
    flag: Annotated[Int32, Wire(v2="h")]
    properties: Annotated[str | None, Wire(v2="i")] = None
    reconsume_times: Annotated[Int32 | None, Wire(v2="j")] = None
    unit_mode: Annotated[bool, Wire(v2="k", lenient=True)] = False
    max_reconsume_times: Annotated[Int32 | None, Wire(v2="l")] = None
    batch: Annotated[bool, Wire(v2="m", lenient=True)] = False
    broker_name: Annotated[str | None, Wire(name="bname", v2="n")] = None  # 4.9.5+, ignored

    @classmethod
    def from_ext_v2(cls, ext: Mapping[str, object]) -> Self:
        """Parse the V2 short names (a..n)."""
        parsed: Self = cls._parse_v2(ext)
        return parsed

    def to_ext_v2(self) -> dict[str, str]:
        rendered: dict[str, str] = self._render_v2(self)
        return rendered

    @classmethod
    def from_command(cls, cmd: RemotingCommand) -> Self:
        """By request code, as the Java broker decides: V2 names for 310/320/325."""
        if cmd.code in SEND_V2_CODES:
            return cls.from_ext_v2(cmd.ext_fields)
        return cls.from_ext(cmd.ext_fields)


SendMessageRequestHeader._FIELDS_V2 = _compile(SendMessageRequestHeader, v2=True)
SendMessageRequestHeader._parse_v2 = staticmethod(_make_parser(
    SendMessageRequestHeader, SendMessageRequestHeader._FIELDS_V2, "SendMessageRequestHeaderV2"))
SendMessageRequestHeader._render_v2 = staticmethod(_make_renderer(SendMessageRequestHeader._FIELDS_V2))


@_header
@dataclass(frozen=True, slots=True)
class SendMessageResponseHeader(Header):
    msg_id: str
    queue_id: Int32
    queue_offset: Int64
    transaction_id: str | None = None
    msg_region: Annotated[str | None, Wire(name="MSG_REGION")] = None
    trace_on: Annotated[bool | None, Wire(name="TRACE_ON")] = None


# --- pull and offsets ---------------------------------------------------------------


# PullMessageRequestHeader.sysFlag bits (RocketMQ's PullSysFlag).
PULL_FLAG_COMMIT_OFFSET = 0x1
PULL_FLAG_SUSPEND = 0x2
PULL_FLAG_SUBSCRIPTION = 0x4
PULL_FLAG_CLASS_FILTER = 0x8
PULL_FLAG_LITE_PULL = 0x10


@_header
@dataclass(frozen=True, slots=True)
class PullMessageRequestHeader(Header):
    consumer_group: str
    topic: str
    queue_id: Int32
    queue_offset: Int64
    max_msg_nums: Int32
    sys_flag: Int32
    commit_offset: Int64
    suspend_timeout_millis: Int64
    sub_version: Int64
    subscription: str | None = None
    expression_type: str | None = None
    broker_name: Annotated[str | None, Wire(name="bname")] = None  # 4.9.5+, ignored


@_header
@dataclass(frozen=True, slots=True)
class PullMessageResponseHeader(Header):
    suggest_which_broker_id: Int64
    next_begin_offset: Int64
    min_offset: Int64
    max_offset: Int64


@_header
@dataclass(frozen=True, slots=True)
class QueryConsumerOffsetRequestHeader(Header):
    consumer_group: str
    topic: str
    queue_id: Int32


@_header
@dataclass(frozen=True, slots=True)
class QueryConsumerOffsetResponseHeader(Header):
    offset: Int64


@_header
@dataclass(frozen=True, slots=True)
class UpdateConsumerOffsetRequestHeader(Header):
    consumer_group: str
    topic: str
    queue_id: Int32
    commit_offset: Int64


@_header
@dataclass(frozen=True, slots=True)
class GetMaxOffsetRequestHeader(Header):
    topic: str
    queue_id: Int32


@_header
@dataclass(frozen=True, slots=True)
class GetMaxOffsetResponseHeader(Header):
    offset: Int64


@_header
@dataclass(frozen=True, slots=True)
class GetMinOffsetRequestHeader(Header):
    topic: str
    queue_id: Int32


@_header
@dataclass(frozen=True, slots=True)
class GetMinOffsetResponseHeader(Header):
    offset: Int64


@_header
@dataclass(frozen=True, slots=True)
class GetEarliestMsgStoretimeRequestHeader(Header):
    topic: str
    queue_id: Int32


@_header
@dataclass(frozen=True, slots=True)
class GetEarliestMsgStoretimeResponseHeader(Header):
    timestamp: Int64


@_header
@dataclass(frozen=True, slots=True)
class SearchOffsetRequestHeader(Header):
    topic: str
    queue_id: Int32
    timestamp: Int64


@_header
@dataclass(frozen=True, slots=True)
class SearchOffsetResponseHeader(Header):
    offset: Int64


# --- clients, retry, transactions ---------------------------------------------------


@_header
@dataclass(frozen=True, slots=True)
class GetConsumerListByGroupRequestHeader(Header):
    consumer_group: str


@_header
@dataclass(frozen=True, slots=True)
class UnregisterClientRequestHeader(Header):
    client_id: Annotated[str, Wire(name="clientID")]
    producer_group: str | None = None
    consumer_group: str | None = None


@_header
@dataclass(frozen=True, slots=True)
class NotifyConsumerIdsChangedRequestHeader(Header):
    consumer_group: str


@_header
@dataclass(frozen=True, slots=True)
class ConsumerSendMsgBackRequestHeader(Header):
    offset: Int64  # CommitLog physical offset of the failed message
    group: str
    delay_level: Int32
    origin_msg_id: str | None = None
    origin_topic: str | None = None
    unit_mode: bool = False
    max_reconsume_times: Int32 | None = None


@_header
@dataclass(frozen=True, slots=True)
class EndTransactionRequestHeader(Header):
    producer_group: str
    tran_state_table_offset: Int64
    commit_log_offset: Int64
    commit_or_rollback: Int32
    msg_id: str
    from_transaction_check: bool = False
    transaction_id: str | None = None


@_header
@dataclass(frozen=True, slots=True)
class CheckTransactionStateRequestHeader(Header):
    tran_state_table_offset: Int64
    commit_log_offset: Int64
    msg_id: str | None = None
    transaction_id: str | None = None
    offset_msg_id: str | None = None


@_header
@dataclass(frozen=True, slots=True)
class ResetOffsetRequestHeader(Header):
    """RESET_CONSUMER_CLIENT_OFFSET (220) and INVOKE_BROKER_TO_RESET_OFFSET (222)."""

    topic: str
    group: str
    timestamp: Int64
    is_force: bool


@_header
@dataclass(frozen=True, slots=True)
class GetConsumerStatusRequestHeader(Header):
    """GET_CONSUMER_STATUS_FROM_CLIENT (221) and INVOKE_BROKER_TO_GET_CONSUMER_STATUS (223)."""

    topic: str
    group: str
    client_addr: str | None = None


@_header
@dataclass(frozen=True, slots=True)
class GetConsumerRunningInfoRequestHeader(Header):
    consumer_group: str
    client_id: str
    jstack_enable: bool = False


@_header
@dataclass(frozen=True, slots=True)
class ConsumeMessageDirectlyResultRequestHeader(Header):
    consumer_group: str
    client_id: str | None = None
    msg_id: str | None = None
    broker_name: str | None = None


# --- query --------------------------------------------------------------------------


@_header
@dataclass(frozen=True, slots=True)
class QueryMessageRequestHeader(Header):
    topic: str
    key: str
    max_num: Int32
    begin_timestamp: Int64
    end_timestamp: Int64
    # Not in RocketMQ's class but sent beside it: key is a UNIQ_KEY.
    unique_key_query: Annotated[bool | None, Wire(name="_UNIQUE_KEY_QUERY")] = None


@_header
@dataclass(frozen=True, slots=True)
class QueryMessageResponseHeader(Header):
    index_last_update_timestamp: Int64
    index_last_update_phyoffset: Int64


@_header
@dataclass(frozen=True, slots=True)
class ViewMessageByIdRequestHeader(Header):
    """RocketMQ's ViewMessageRequestHeader."""

    offset: Int64  # CommitLog physical offset


# --- admin -> broker ----------------------------------------------------------------


@_header
@dataclass(frozen=True, slots=True)
class CreateTopicRequestHeader(Header):
    topic: str
    default_topic: str
    read_queue_nums: Int32
    write_queue_nums: Int32
    perm: Int32
    topic_filter_type: str
    topic_sys_flag: Int32 | None = None
    order: bool = False


@_header
@dataclass(frozen=True, slots=True)
class DeleteTopicRequestHeader(Header):
    topic: str


@_header
@dataclass(frozen=True, slots=True)
class GetTopicStatsInfoRequestHeader(Header):
    topic: str


@_header
@dataclass(frozen=True, slots=True)
class GetConsumerConnectionListRequestHeader(Header):
    consumer_group: str


@_header
@dataclass(frozen=True, slots=True)
class GetProducerConnectionListRequestHeader(Header):
    producer_group: str


@_header
@dataclass(frozen=True, slots=True)
class GetConsumeStatsRequestHeader(Header):
    consumer_group: str
    topic: str | None = None


@_header
@dataclass(frozen=True, slots=True)
class DeleteSubscriptionGroupRequestHeader(Header):
    group_name: str
    remove_offset: bool = False


@_header
@dataclass(frozen=True, slots=True)
class QueryTopicConsumeByWhoRequestHeader(Header):
    topic: str


@_header
@dataclass(frozen=True, slots=True)
class QueryConsumeTimeSpanRequestHeader(Header):
    topic: str
    group: str


@_header
@dataclass(frozen=True, slots=True)
class CloneGroupOffsetRequestHeader(Header):
    src_group: str
    dest_group: str
    topic: str | None = None
    offline: bool = False


@_header
@dataclass(frozen=True, slots=True)
class ViewBrokerStatsDataRequestHeader(Header):
    stats_name: str
    stats_key: str


@_header
@dataclass(frozen=True, slots=True)
class GetConsumeStatsInBrokerHeader(Header):
    """GET_BROKER_CONSUME_STATS (317)."""

    is_order: bool


# --- NameServer ---------------------------------------------------------------------


@_header
@dataclass(frozen=True, slots=True)
class GetRouteInfoRequestHeader(Header):
    topic: str
    accept_standard_json_only: bool | None = None


@_header
@dataclass(frozen=True, slots=True)
class RegisterBrokerRequestHeader(Header):
    broker_name: str
    broker_addr: str
    cluster_name: str
    ha_server_addr: str
    broker_id: Int64
    compressed: bool = False
    body_crc32: Int32 = 0  # 0 = not checked


@_header
@dataclass(frozen=True, slots=True)
class RegisterBrokerResponseHeader(Header):
    ha_server_addr: str | None = None
    master_addr: str | None = None


@_header
@dataclass(frozen=True, slots=True)
class UnregisterBrokerRequestHeader(Header):
    broker_name: str
    broker_addr: str
    cluster_name: str
    broker_id: Int64


@_header
@dataclass(frozen=True, slots=True)
class QueryDataVersionRequestHeader(Header):
    broker_name: str
    broker_addr: str
    cluster_name: str
    broker_id: Int64


@_header
@dataclass(frozen=True, slots=True)
class QueryDataVersionResponseHeader(Header):
    changed: bool


@_header
@dataclass(frozen=True, slots=True)
class PutKVConfigRequestHeader(Header):
    namespace: str
    key: str
    value: str


@_header
@dataclass(frozen=True, slots=True)
class GetKVConfigRequestHeader(Header):
    namespace: str
    key: str


@_header
@dataclass(frozen=True, slots=True)
class GetKVConfigResponseHeader(Header):
    value: str | None = None


@_header
@dataclass(frozen=True, slots=True)
class DeleteKVConfigRequestHeader(Header):
    namespace: str
    key: str


@_header
@dataclass(frozen=True, slots=True)
class GetKVListByNamespaceRequestHeader(Header):
    namespace: str


@_header
@dataclass(frozen=True, slots=True)
class GetTopicsByClusterRequestHeader(Header):
    cluster: str


@_header
@dataclass(frozen=True, slots=True)
class DeleteTopicInNamesrvRequestHeader(Header):
    """RocketMQ's DeleteTopicFromNamesrvRequestHeader."""

    topic: str
    cluster_name: str | None = None


@_header
@dataclass(frozen=True, slots=True)
class WipeWritePermOfBrokerRequestHeader(Header):
    broker_name: str


@_header
@dataclass(frozen=True, slots=True)
class WipeWritePermOfBrokerResponseHeader(Header):
    wipe_topic_count: Int32


@_header
@dataclass(frozen=True, slots=True)
class AddWritePermOfBrokerRequestHeader(Header):
    broker_name: str


@_header
@dataclass(frozen=True, slots=True)
class AddWritePermOfBrokerResponseHeader(Header):
    add_topic_count: Int32


# --- code -> request header -----------------------------------------------------------

REQUEST_HEADER_TYPES: Mapping[int, type[Header]] = types.MappingProxyType({
    RequestCode.SEND_MESSAGE: SendMessageRequestHeader,
    RequestCode.SEND_MESSAGE_V2: SendMessageRequestHeader,
    RequestCode.SEND_BATCH_MESSAGE: SendMessageRequestHeader,
    RequestCode.PULL_MESSAGE: PullMessageRequestHeader,
    RequestCode.QUERY_MESSAGE: QueryMessageRequestHeader,
    RequestCode.QUERY_CONSUMER_OFFSET: QueryConsumerOffsetRequestHeader,
    RequestCode.UPDATE_CONSUMER_OFFSET: UpdateConsumerOffsetRequestHeader,
    RequestCode.UPDATE_AND_CREATE_TOPIC: CreateTopicRequestHeader,
    RequestCode.SEARCH_OFFSET_BY_TIMESTAMP: SearchOffsetRequestHeader,
    RequestCode.GET_MAX_OFFSET: GetMaxOffsetRequestHeader,
    RequestCode.GET_MIN_OFFSET: GetMinOffsetRequestHeader,
    RequestCode.GET_EARLIEST_MSG_STORETIME: GetEarliestMsgStoretimeRequestHeader,
    RequestCode.VIEW_MESSAGE_BY_ID: ViewMessageByIdRequestHeader,
    RequestCode.UNREGISTER_CLIENT: UnregisterClientRequestHeader,
    RequestCode.CONSUMER_SEND_MSG_BACK: ConsumerSendMsgBackRequestHeader,
    RequestCode.END_TRANSACTION: EndTransactionRequestHeader,
    RequestCode.GET_CONSUMER_LIST_BY_GROUP: GetConsumerListByGroupRequestHeader,
    RequestCode.CHECK_TRANSACTION_STATE: CheckTransactionStateRequestHeader,
    RequestCode.NOTIFY_CONSUMER_IDS_CHANGED: NotifyConsumerIdsChangedRequestHeader,
    RequestCode.PUT_KV_CONFIG: PutKVConfigRequestHeader,
    RequestCode.GET_KV_CONFIG: GetKVConfigRequestHeader,
    RequestCode.DELETE_KV_CONFIG: DeleteKVConfigRequestHeader,
    RequestCode.REGISTER_BROKER: RegisterBrokerRequestHeader,
    RequestCode.UNREGISTER_BROKER: UnregisterBrokerRequestHeader,
    RequestCode.GET_ROUTEINFO_BY_TOPIC: GetRouteInfoRequestHeader,
    RequestCode.GET_TOPIC_STATS_INFO: GetTopicStatsInfoRequestHeader,
    RequestCode.GET_CONSUMER_CONNECTION_LIST: GetConsumerConnectionListRequestHeader,
    RequestCode.GET_PRODUCER_CONNECTION_LIST: GetProducerConnectionListRequestHeader,
    RequestCode.WIPE_WRITE_PERM_OF_BROKER: WipeWritePermOfBrokerRequestHeader,
    RequestCode.DELETE_SUBSCRIPTIONGROUP: DeleteSubscriptionGroupRequestHeader,
    RequestCode.GET_CONSUME_STATS: GetConsumeStatsRequestHeader,
    RequestCode.DELETE_TOPIC_IN_BROKER: DeleteTopicRequestHeader,
    RequestCode.DELETE_TOPIC_IN_NAMESRV: DeleteTopicInNamesrvRequestHeader,
    RequestCode.GET_KVLIST_BY_NAMESPACE: GetKVListByNamespaceRequestHeader,
    RequestCode.RESET_CONSUMER_CLIENT_OFFSET: ResetOffsetRequestHeader,
    RequestCode.GET_CONSUMER_STATUS_FROM_CLIENT: GetConsumerStatusRequestHeader,
    RequestCode.INVOKE_BROKER_TO_RESET_OFFSET: ResetOffsetRequestHeader,
    RequestCode.INVOKE_BROKER_TO_GET_CONSUMER_STATUS: GetConsumerStatusRequestHeader,
    RequestCode.GET_TOPICS_BY_CLUSTER: GetTopicsByClusterRequestHeader,
    RequestCode.QUERY_TOPIC_CONSUME_BY_WHO: QueryTopicConsumeByWhoRequestHeader,
    RequestCode.QUERY_CONSUME_TIME_SPAN: QueryConsumeTimeSpanRequestHeader,
    RequestCode.GET_CONSUMER_RUNNING_INFO: GetConsumerRunningInfoRequestHeader,
    RequestCode.CONSUME_MESSAGE_DIRECTLY: ConsumeMessageDirectlyResultRequestHeader,
    RequestCode.CLONE_GROUP_OFFSET: CloneGroupOffsetRequestHeader,
    RequestCode.VIEW_BROKER_STATS_DATA: ViewBrokerStatsDataRequestHeader,
    RequestCode.GET_BROKER_CONSUME_STATS: GetConsumeStatsInBrokerHeader,
    RequestCode.QUERY_DATA_VERSION: QueryDataVersionRequestHeader,
    RequestCode.ADD_WRITE_PERM_OF_BROKER: AddWritePermOfBrokerRequestHeader,
})
"""The request header class of each request code that has one."""

