"""Typed custom headers: round trips of every class, required fields, Java
number and boolean parsing, the V2 send names."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from rocketpy.errors import ProtocolError
from rocketpy.protocol import headers as h
from rocketpy.protocol.codes import RequestCode
from rocketpy.protocol.headers import (
    REQUEST_HEADER_TYPES,
    Header,
    HeaderError,
    PullMessageRequestHeader,
    PullMessageResponseHeader,
    SendMessageRequestHeader,
    SendMessageResponseHeader,
)
from rocketpy.protocol.remoting import RemotingCommand, decode_frame, encode_frame

HEADER_CLASSES = sorted(
    (cls for _, cls in inspect.getmembers(h, inspect.isclass)
     if issubclass(cls, Header) and cls is not Header),
    key=lambda cls: cls.__name__,
)

BRIEF_CLASSES = [
    "SendMessageRequestHeader", "SendMessageResponseHeader", "PullMessageRequestHeader",
    "PullMessageResponseHeader", "QueryConsumerOffsetRequestHeader", "QueryConsumerOffsetResponseHeader",
    "UpdateConsumerOffsetRequestHeader", "GetConsumerListByGroupRequestHeader",
    "UnregisterClientRequestHeader", "ConsumerSendMsgBackRequestHeader", "EndTransactionRequestHeader",
    "CheckTransactionStateRequestHeader", "GetMaxOffsetRequestHeader", "GetMaxOffsetResponseHeader",
    "GetMinOffsetRequestHeader", "GetMinOffsetResponseHeader", "GetEarliestMsgStoretimeRequestHeader",
    "GetEarliestMsgStoretimeResponseHeader", "SearchOffsetRequestHeader", "SearchOffsetResponseHeader",
    "QueryMessageRequestHeader", "QueryMessageResponseHeader", "ViewMessageByIdRequestHeader",
    "CreateTopicRequestHeader", "DeleteTopicRequestHeader", "GetRouteInfoRequestHeader",
    "RegisterBrokerRequestHeader", "RegisterBrokerResponseHeader", "UnregisterBrokerRequestHeader",
    "QueryDataVersionRequestHeader", "QueryDataVersionResponseHeader", "PutKVConfigRequestHeader",
    "GetKVConfigRequestHeader", "GetKVConfigResponseHeader", "DeleteKVConfigRequestHeader",
    "GetKVListByNamespaceRequestHeader", "GetTopicsByClusterRequestHeader",
    "DeleteTopicInNamesrvRequestHeader", "WipeWritePermOfBrokerRequestHeader",
    "WipeWritePermOfBrokerResponseHeader", "AddWritePermOfBrokerRequestHeader",
    "AddWritePermOfBrokerResponseHeader", "NotifyConsumerIdsChangedRequestHeader",
    "ResetOffsetRequestHeader", "GetConsumerRunningInfoRequestHeader",
]


def sample_value(f: Any, index: int) -> Any:
    kind = f.kind.name
    if kind == "STR":
        return f"v{index}-é"
    if kind == "INT32":
        return -(1 << 31) + index if index % 2 else (1 << 31) - 1 - index
    if kind == "INT64":
        return -(1 << 63) + index if index % 2 else (1 << 63) - 1 - index
    return index % 2 == 0


def sample(cls: type[Header]) -> Header:
    return cls(*[sample_value(f, i) for i, f in enumerate(cls._FIELDS)])


def test_every_class_of_the_brief_exists() -> None:
    names = {cls.__name__ for cls in HEADER_CLASSES}
    assert set(BRIEF_CLASSES) <= names


@pytest.mark.parametrize("cls", HEADER_CLASSES, ids=lambda c: c.__name__)
def test_round_trip_through_strings(cls: type[Header]) -> None:
    header = sample(cls)
    ext = header.to_ext()
    assert all(type(k) is str and type(v) is str for k, v in ext.items())
    assert cls.from_ext(ext) == header


@pytest.mark.parametrize("cls", HEADER_CLASSES, ids=lambda c: c.__name__)
def test_round_trip_through_a_json_frame(cls: type[Header]) -> None:
    header = sample(cls)
    request = RemotingCommand.request(1, header.to_ext())
    decoded = decode_frame(encode_frame(request)[4:])
    assert cls.from_command(decoded) == header


@pytest.mark.parametrize("cls", HEADER_CLASSES, ids=lambda c: c.__name__)
def test_optional_fields_are_left_out_when_none(cls: type[Header]) -> None:
    required = [f for f in cls._FIELDS if f.required]
    header = cls(*[sample_value(f, i) for i, f in enumerate(required)])
    ext = header.to_ext()
    for f in cls._FIELDS:
        if f.required:
            assert f.wire in ext
        elif f.default is None:
            assert f.wire not in ext
        else:
            assert f.wire in ext  # Java primitives are always written
    assert cls.from_ext(ext) == header


@pytest.mark.parametrize(
    ("cls", "wire"),
    [(cls, f.wire) for cls in HEADER_CLASSES for f in cls._FIELDS if f.required],
    ids=lambda x: x if isinstance(x, str) else x.__name__,
)
def test_missing_required_field_names_header_and_field(cls: type[Header], wire: str) -> None:
    ext = sample(cls).to_ext()
    del ext[wire]
    with pytest.raises(HeaderError) as info:
        cls.from_ext(ext)
    assert cls.__name__ in str(info.value) and repr(wire) in str(info.value)


@pytest.mark.parametrize("cls", HEADER_CLASSES, ids=lambda c: c.__name__)
def test_headers_are_frozen_and_slotted(cls: type[Header]) -> None:
    header = sample(cls)
    assert not hasattr(header, "__dict__")
    first = dataclasses.fields(header)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(header, first, None)


def test_header_error_is_a_protocol_error() -> None:
    assert issubclass(HeaderError, ProtocolError)


PULL_EXT: dict[str, Any] = {
    "consumerGroup": "CG", "topic": "T", "queueId": "1", "queueOffset": "100", "maxMsgNums": "32",
    "sysFlag": "2", "commitOffset": "0", "suspendTimeoutMillis": "15000", "subVersion": "1700000000000",
    "subscription": "*", "AccessKey": "", "Signature": "x=", "OnsChannel": "ALIYUN",
}


def test_pull_request_from_java_strings() -> None:
    header = PullMessageRequestHeader.from_ext(PULL_EXT)
    assert header == PullMessageRequestHeader(
        consumer_group="CG", topic="T", queue_id=1, queue_offset=100, max_msg_nums=32, sys_flag=2,
        commit_offset=0, suspend_timeout_millis=15000, sub_version=1700000000000, subscription="*",
    )


def test_cpp_numbers_in_ext_are_accepted() -> None:
    header = b'{"code":11,"extFields":{"AccessKey":"","OnsChannel":"ALIYUN","Signature":"s","commitOffset":"0","consumerGroup":"CG","maxMsgNums":32,"queueId":0,"queueOffset":"5","subVersion":"0","subscription":"*","suspendTimeoutMillis":"15000","sysFlag":7,"topic":"T"},"flag":0,"language":"CPP","opaque":3,"remark":"","version":63}\n'
    import struct
    frame = struct.pack(">iI", 4 + len(header), len(header)) + header
    cmd = decode_frame(frame[4:])
    pull = PullMessageRequestHeader.from_command(cmd)
    assert (pull.max_msg_nums, pull.queue_id, pull.sys_flag, pull.queue_offset) == (32, 0, 7, 5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("-1", -1), ("+7", 7), ("2147483647", 2147483647), ("-2147483648", -2147483648),
     (5, 5), ("000012", 12)],
)
def test_int32_parsing(value: object, expected: int) -> None:
    assert PullMessageRequestHeader.from_ext(dict(PULL_EXT, queueId=value)).queue_id == expected


@pytest.mark.parametrize(
    "value",
    ["", "+", "-", "1.0", "1e3", " 1", "1 ", "1_000", "0x10", "١", "²", "2147483648", "-2147483649",
     True, False, 1 << 31, 1.5, "99999999999999999999999", "abc", ["1"]],
)
def test_int32_parsing_rejects(value: object) -> None:
    with pytest.raises(HeaderError, match="queueId"):
        PullMessageRequestHeader.from_ext(dict(PULL_EXT, queueId=value))


@pytest.mark.parametrize(
    ("value", "ok"),
    [("9223372036854775807", True), ("-9223372036854775808", True), ("9223372036854775808", False),
     (1 << 63, False), (-(1 << 63), True)],
)
def test_int64_range(value: object, ok: bool) -> None:
    ext = dict(PULL_EXT, queueOffset=value)
    if ok:
        assert PullMessageRequestHeader.from_ext(ext).queue_offset == int(value)  # type: ignore[call-overload]
    else:
        with pytest.raises(HeaderError, match="queueOffset"):
            PullMessageRequestHeader.from_ext(ext)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("True", True), (True, True), ("false", False), (False, False),
     ("1", False), ("0", False), ("yes", False), ("", False), (1, False)],
)
def test_booleans_follow_java_parse_boolean(value: object, expected: bool) -> None:
    ext = {"topic": "t", "group": "g", "timestamp": "1", "isForce": value}
    assert h.ResetOffsetRequestHeader.from_ext(ext).is_force is expected


SEND_V1: dict[str, Any] = {
    "producerGroup": "PG", "topic": "T", "defaultTopic": "TBW102", "defaultTopicQueueNums": 4,
    "queueId": 1, "sysFlag": 0, "bornTimestamp": "1700000000000", "flag": 0,
    "properties": "UNIQ_KEY\u0001ABC\u0002", "reconsumeTimes": "0", "unitMode": "0", "batch": "1",
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), (1, True), ("true", True), ("True", True), (True, True),
     ("0", False), (0, False), ("false", False), ("", False), ("2", False)],
)
def test_send_batch_and_unit_mode_take_one_as_true(value: object, expected: bool) -> None:
    ext = dict(SEND_V1, batch=value, unitMode=value)
    header = SendMessageRequestHeader.from_ext(ext)
    assert header.batch is expected and header.unit_mode is expected
    v2 = SendMessageRequestHeader.from_ext_v2({"a": "PG", "b": "T", "c": "C", "d": "4", "e": "0", "f": "0",
                                               "g": "1", "h": "0", "m": value, "k": value})
    assert v2.batch is expected and v2.unit_mode is expected


def test_send_v1_from_cpp_client() -> None:
    cmd = RemotingCommand(code=RequestCode.SEND_MESSAGE, language="CPP", ext_fields=dict(SEND_V1))
    header = SendMessageRequestHeader.from_command(cmd)
    assert header.producer_group == "PG" and header.default_topic_queue_nums == 4
    assert header.born_timestamp == 1700000000000
    assert header.batch is True and header.unit_mode is False
    assert header.reconsume_times == 0 and header.max_reconsume_times is None


@pytest.mark.parametrize("code", [RequestCode.SEND_MESSAGE_V2, RequestCode.SEND_BATCH_MESSAGE])
def test_send_v2_short_names(code: int) -> None:
    header = SendMessageRequestHeader.from_ext(SEND_V1)
    v2 = header.to_ext_v2()
    assert set(v2) == set("abcdefghijkm")  # i, j present; l, n absent (None)
    assert v2["a"] == "PG" and v2["g"] == "1700000000000" and v2["m"] == "true" and v2["k"] == "false"
    cmd = RemotingCommand.request(code, v2)
    assert SendMessageRequestHeader.from_command(cmd) == header
    # V1 names are not read for V2 codes
    with pytest.raises(HeaderError, match="'a'"):
        SendMessageRequestHeader.from_command(RemotingCommand.request(code, header.to_ext()))


def test_send_v2_with_bname_and_max_reconsume() -> None:
    ext = {"a": "PG", "b": "%RETRY%CG", "c": "TBW102", "d": "4", "e": "0", "f": "0", "g": "1", "h": "0",
           "l": "16", "n": "broker-a"}
    header = SendMessageRequestHeader.from_ext_v2(ext)
    assert header.max_reconsume_times == 16 and header.broker_name == "broker-a"
    assert header.to_ext()["bname"] == "broker-a"


def test_send_missing_v2_field_names_the_v2_header() -> None:
    with pytest.raises(HeaderError, match="SendMessageRequestHeaderV2: required field 'b'"):
        SendMessageRequestHeader.from_ext_v2({"a": "PG"})


def test_send_response_header_wire_names() -> None:
    header = SendMessageResponseHeader(msg_id="ID", queue_id=2, queue_offset=9, msg_region="DefaultRegion",
                                       trace_on=True)
    assert header.to_ext() == {"msgId": "ID", "queueId": "2", "queueOffset": "9",
                               "MSG_REGION": "DefaultRegion", "TRACE_ON": "true"}


def test_pull_response_header_always_complete() -> None:
    ext = PullMessageResponseHeader(suggest_which_broker_id=0, next_begin_offset=5, min_offset=0,
                                    max_offset=5).to_ext()
    assert ext == {"suggestWhichBrokerId": "0", "nextBeginOffset": "5", "minOffset": "0", "maxOffset": "5"}


def test_special_wire_names() -> None:
    assert h.UnregisterClientRequestHeader(client_id="c").to_ext() == {"clientID": "c"}
    q = h.QueryMessageRequestHeader.from_ext({"topic": "t", "key": "k", "maxNum": "32", "beginTimestamp": "0",
                                              "endTimestamp": "9", "_UNIQUE_KEY_QUERY": "true"})
    assert q.unique_key_query is True
    r = h.ResetOffsetRequestHeader(topic="t", group="g", timestamp=5, is_force=True)
    assert r.to_ext() == {"topic": "t", "group": "g", "timestamp": "5", "isForce": "true"}
    reg = h.RegisterBrokerRequestHeader(broker_name="b", broker_addr="a:1", cluster_name="c",
                                        ha_server_addr="a:2", broker_id=0)
    assert reg.to_ext()["bodyCrc32"] == "0" and reg.to_ext()["compressed"] == "false"


def test_unknown_keys_are_ignored() -> None:
    header = h.GetRouteInfoRequestHeader.from_ext({"topic": "T", "AccessKey": "", "x": [1]})
    assert header == h.GetRouteInfoRequestHeader(topic="T")


def test_string_fields_take_numbers_the_java_way() -> None:
    assert h.GetKVConfigResponseHeader.from_ext({"value": 12}).value == "12"
    assert h.GetKVConfigResponseHeader.from_ext({"value": True}).value == "true"
    with pytest.raises(HeaderError, match="'value'"):
        h.GetKVConfigResponseHeader.from_ext({"value": 1.5})


def test_request_header_table() -> None:
    for code, cls in REQUEST_HEADER_TYPES.items():
        assert RequestCode(code).name
        assert issubclass(cls, Header)
    assert REQUEST_HEADER_TYPES[RequestCode.SEND_MESSAGE_V2] is SendMessageRequestHeader
    assert REQUEST_HEADER_TYPES[RequestCode.INVOKE_BROKER_TO_RESET_OFFSET] is h.ResetOffsetRequestHeader
