"""Remoting frame codec: hand-built frames in both serializations, fidelity,
validation, the incremental FrameDecoder and the request/response helpers."""

from __future__ import annotations

import struct

import pytest

from rocketpy import limits
from rocketpy.errors import FrameTooLargeError, ProtocolError
from rocketpy.protocol.codes import LanguageCode, RequestCode, ResponseCode, SerializeType
from rocketpy.protocol.remoting import (
    FLAG_ONEWAY,
    FLAG_RESPONSE,
    FrameDecoder,
    RemotingCommand,
    decode_frame,
    encode_frame,
    encode_frame_parts,
    ext_value_str,
)

# --- helpers -------------------------------------------------------------------------


def json_frame(header: bytes, body: bytes = b"", serialize_type: int = 0) -> bytes:
    """A whole frame around a raw header, built by hand."""
    return struct.pack(">iI", 4 + len(header) + len(body), serialize_type << 24 | len(header)) + header + body


def binary_header(
    code: int = 10,
    language: int = 0,
    version: int = 409,
    opaque: int = 7,
    flag: int = 0,
    remark: bytes = b"",
    entries: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    ext = b"".join(
        struct.pack(">h", len(k)) + k + struct.pack(">i", len(v)) + v for k, v in (entries or [])
    )
    return (
        struct.pack(">hBhiii", code, language, version, opaque, flag, len(remark))
        + remark
        + struct.pack(">i", len(ext))
        + ext
    )


def payload(frame: bytes) -> bytes:
    return frame[4:]


CPP_HEADER = (
    b'{"code":105,"extFields":{"AccessKey":"","OnsChannel":"ALIYUN","Signature":"x=","topic":"T"},'
    b'"flag":0,"language":"CPP","opaque":0,"remark":"","version":63}\n'
)
JAVA_HEADER = (
    b'{"code":0,"extFields":{"MSG_REGION":"DefaultRegion","TRACE_ON":"true",'
    b'"msgId":"7F00000100002A9F0000000000000000","queueId":"0","queueOffset":"0"},'
    b'"flag":1,"language":"JAVA","opaque":42,"serializeTypeCurrentRPC":"JSON","version":409}'
)


# --- codes ---------------------------------------------------------------------------


def test_codes_match_rocketmq() -> None:
    assert RequestCode.SEND_MESSAGE == 10
    assert RequestCode.PULL_MESSAGE == 11
    assert RequestCode.GET_ROUTEINFO_BY_TOPIC == 105
    assert RequestCode.SEND_MESSAGE_V2 == 310
    assert RequestCode.SEND_BATCH_MESSAGE == 320
    assert RequestCode.DELETE_EXPIRED_COMMITLOG == 329
    assert len(RequestCode) == 95
    assert ResponseCode.SUCCESS == 0
    assert ResponseCode.PULL_NOT_FOUND == 19
    assert ResponseCode.PULL_RETRY_IMMEDIATELY == 20
    assert ResponseCode.PULL_OFFSET_MOVED == 21
    assert ResponseCode.QUERY_NOT_FOUND == 22
    assert ResponseCode.FLOW_CONTROL == 215
    assert LanguageCode.CPP == 1 and LanguageCode.RUST == 12
    assert SerializeType.JSON == 0 and SerializeType.ROCKETMQ == 1


# --- JSON ----------------------------------------------------------------------------


def test_encode_json_request_exact_bytes() -> None:
    cmd = RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "T"}, opaque=5)
    header = b'{"code":105,"extFields":{"topic":"T"},"flag":0,"language":"JAVA","opaque":5,"version":409}'
    assert encode_frame(cmd) == json_frame(header)


def test_cpp_frame_round_trips_byte_for_byte() -> None:
    frame = json_frame(CPP_HEADER)
    cmd = decode_frame(payload(frame))
    assert cmd.code == 105 and cmd.language == "CPP" and cmd.version == 63
    assert cmd.remark == ""
    assert cmd.ext_fields == {"AccessKey": "", "OnsChannel": "ALIYUN", "Signature": "x=", "topic": "T"}
    assert cmd.json_newline  # jsoncpp FastWriter ends with "\n"
    assert encode_frame(cmd) == frame


def test_java_frame_with_body_round_trips_byte_for_byte() -> None:
    frame = json_frame(JAVA_HEADER, b"body bytes")
    cmd = decode_frame(payload(frame))
    assert cmd.is_response and not cmd.is_oneway
    assert cmd.opaque == 42 and cmd.remark is None
    assert cmd.serialize_type_current_rpc == "JSON"
    assert cmd.body == b"body bytes"
    assert encode_frame(cmd) == frame


def test_decode_accepts_memoryview_and_bytearray() -> None:
    frame = json_frame(JAVA_HEADER, b"xyz")
    expected = decode_frame(payload(frame))
    assert decode_frame(memoryview(frame)[4:]) == expected
    assert decode_frame(bytearray(payload(frame))) == expected


def test_ext_order_is_kept_not_sorted() -> None:
    # fastjson writes a HashMap in hash order; keep whatever order arrived.
    header = b'{"code":0,"extFields":{"queueId":"0","msgId":"M","TRACE_ON":"true"},"flag":1,"language":"JAVA","opaque":1,"version":409}'
    frame = json_frame(header)
    cmd = decode_frame(payload(frame))
    assert list(cmd.ext_fields) == ["queueId", "msgId", "TRACE_ON"]
    assert encode_frame(cmd) == frame


def test_empty_ext_object_and_absent_ext_are_both_kept() -> None:
    with_empty = json_frame(b'{"code":0,"extFields":{},"flag":1,"language":"JAVA","opaque":1,"version":409}')
    without = json_frame(b'{"code":0,"flag":1,"language":"JAVA","opaque":1,"version":409}')
    a, b = decode_frame(payload(with_empty)), decode_frame(payload(without))
    assert a.ext_fields == {} and b.ext_fields == {}
    assert a == b  # cosmetics take no part in ==
    assert encode_frame(a) == with_empty
    assert encode_frame(b) == without


def test_remark_empty_and_absent_are_distinct() -> None:
    empty = decode_frame(payload(json_frame(b'{"code":1,"remark":""}')))
    absent = decode_frame(payload(json_frame(b'{"code":1}')))
    null = decode_frame(payload(json_frame(b'{"code":1,"remark":null}')))
    assert empty.remark == ""
    assert absent.remark is None and null.remark is None
    assert empty != absent


def test_missing_members_take_java_defaults() -> None:
    cmd = decode_frame(payload(json_frame(b"{}")))
    assert (cmd.code, cmd.language, cmd.version, cmd.opaque, cmd.flag) == (0, "JAVA", 0, 0, 0)
    assert cmd.ext_fields == {}


def test_unknown_members_are_ignored_and_unknown_codes_decode() -> None:
    cmd = decode_frame(payload(json_frame(b'{"code":31999,"whatever":[1,{"a":2}],"flag":0}')))
    assert cmd.code == 31999


def test_ext_numbers_and_booleans_keep_their_type_and_normalize_the_java_way() -> None:
    header = b'{"code":11,"extFields":{"queueId":3,"big":-9223372036854775808,"unitMode":true,"batch":false,"gone":null,"s":"x"},"flag":0,"language":"CPP","opaque":9,"remark":"","version":63}\n'
    frame = json_frame(header)
    cmd = decode_frame(payload(frame))
    assert cmd.ext_fields == {"queueId": 3, "big": -(1 << 63), "unitMode": True, "batch": False, "s": "x"}
    assert cmd.ext_str("queueId") == "3"
    assert cmd.ext_str("big") == "-9223372036854775808"
    assert cmd.ext_str("unitMode") == "true"
    assert cmd.ext_str("batch") == "false"
    assert cmd.ext_str("gone") is None
    assert cmd.ext_str("missing") is None
    assert cmd.ext_str("s") == "x"


def test_ext_value_str() -> None:
    assert ext_value_str(True) == "true"
    assert ext_value_str(False) == "false"
    assert ext_value_str(0) == "0"
    assert ext_value_str("A") == "A"
    with pytest.raises(ProtocolError):
        ext_value_str(1.5)  # type: ignore[arg-type]


def test_non_ascii_is_written_as_raw_utf8() -> None:
    cmd = RemotingCommand.request(10, {"topic": "主题"})
    frame = encode_frame(cmd)
    assert "主题".encode() in frame
    assert decode_frame(payload(frame)) == cmd


# --- ROCKETMQ binary -------------------------------------------------------------------


def test_encode_binary_exact_bytes() -> None:
    cmd = RemotingCommand(
        code=11, language="CPP", version=409, opaque=7, flag=FLAG_ONEWAY, remark="hé",
        ext_fields={"k": "v", "n": 5, "b": True}, body=b"BODY", serialize_type=SerializeType.ROCKETMQ,
    )
    header = binary_header(
        code=11, language=1, opaque=7, flag=2, remark="hé".encode(),
        entries=[(b"k", b"v"), (b"n", b"5"), (b"b", b"true")],
    )
    assert encode_frame(cmd) == json_frame(header, b"BODY", serialize_type=1)


def test_binary_round_trips_byte_for_byte_in_arrival_order() -> None:
    header = binary_header(code=-5, language=9, version=-1, opaque=-2, flag=3, remark=b"r",
                           entries=[(b"z", b"1"), (b"a", b"2"), (b"m", "é".encode())])
    frame = json_frame(header, b"\x00\x01", serialize_type=1)
    cmd = decode_frame(payload(frame))
    assert cmd.serialize_type == SerializeType.ROCKETMQ
    assert (cmd.code, cmd.language, cmd.version, cmd.opaque, cmd.flag) == (-5, "GO", -1, -2, 3)
    assert list(cmd.ext_fields.items()) == [("z", "1"), ("a", "2"), ("m", "é")]
    assert encode_frame(cmd) == frame


def test_binary_empty_strings_are_null_as_in_java() -> None:
    header = binary_header(entries=[(b"", b"x"), (b"k", b""), (b"ok", b"1")])
    cmd = decode_frame(payload(json_frame(header, serialize_type=1)))
    assert cmd.remark is None
    assert cmd.ext_fields == {"ok": "1"}


def test_binary_unknown_language_byte_round_trips_as_its_number() -> None:
    frame = json_frame(binary_header(language=200), serialize_type=1)
    cmd = decode_frame(payload(frame))
    assert cmd.language == "200"
    assert encode_frame(cmd) == frame


@pytest.mark.parametrize(
    "cmd",
    [
        RemotingCommand(code=1 << 15, serialize_type=SerializeType.ROCKETMQ),
        RemotingCommand(code=10, version=40000, serialize_type=SerializeType.ROCKETMQ),
        RemotingCommand(code=10, language="NODE", serialize_type=SerializeType.ROCKETMQ),
        RemotingCommand(code=10, language="256", serialize_type=SerializeType.ROCKETMQ),
        RemotingCommand(code=10, language="007", serialize_type=SerializeType.ROCKETMQ),
        RemotingCommand(code=10, ext_fields={"k" * 40000: "v"}, serialize_type=SerializeType.ROCKETMQ),
        RemotingCommand(code=10, remark="\ud800", serialize_type=SerializeType.ROCKETMQ),
        RemotingCommand(code=1 << 31),
        RemotingCommand(code=10, opaque=-(1 << 31) - 1),
        RemotingCommand(code=True),
        RemotingCommand(code=10, remark="\ud800"),
        RemotingCommand(code=10, ext_fields={"k": 1.5}),  # type: ignore[dict-item]
        RemotingCommand(code=10, ext_fields={"k": 1 << 64}),
        RemotingCommand(code=10, ext_fields={1: "v"}),  # type: ignore[dict-item]
    ],
    ids=lambda c: repr(c)[:60],
)
def test_encode_rejects_what_the_encoding_cannot_carry(cmd: RemotingCommand) -> None:
    with pytest.raises(ProtocolError):
        encode_frame(cmd)


def test_encode_rejects_oversized_frame() -> None:
    cmd = RemotingCommand(code=10, body=bytes(limits.FRAME_SIZE_MAX))
    with pytest.raises(FrameTooLargeError):
        encode_frame(cmd)


def test_largest_frame_encodes_and_decodes() -> None:
    header_size = len(encode_frame(RemotingCommand(code=10))) - 8
    body = bytes(limits.FRAME_SIZE_MAX - 8 - header_size)
    frame = encode_frame(RemotingCommand(code=10, body=body))
    assert len(frame) == limits.FRAME_SIZE_MAX
    assert FrameDecoder().feed(frame)[0].body == body


def test_encode_frame_parts_does_not_copy_the_body() -> None:
    body = b"x" * 100_000
    cmd = RemotingCommand.request(10, {"a": "b"}, body)
    prefix, out_body = encode_frame_parts(cmd)
    assert out_body is body
    assert prefix + out_body == encode_frame(cmd)
    (total_length,) = struct.unpack_from(">i", prefix)
    assert total_length == len(prefix) - 4 + len(body)


# --- malformed frames ---------------------------------------------------------------------

BAD_PAYLOADS = {
    "empty": b"",
    "short header word": b"\x00\x00\x00",
    "header longer than frame": struct.pack(">I", 10) + b"{}",
    "unknown serialize type": struct.pack(">I", 2 << 24 | 2) + b"{}",
    "empty json header": struct.pack(">I", 0),
    "not json": payload(json_frame(b"{not json")),
    "json array": payload(json_frame(b"[1,2]")),
    "json string": payload(json_frame(b'"x"')),
    "invalid utf-8": payload(json_frame(b'{"remark":"\xff"}')),
    "lone surrogate": payload(json_frame(b'{"remark":"\\ud800"}')),
    "code string": payload(json_frame(b'{"code":"105"}')),
    "code float": payload(json_frame(b'{"code":105.0}')),
    "code bool": payload(json_frame(b'{"code":true}')),
    "code too big": payload(json_frame(b'{"code":2147483648}')),
    "opaque too small": payload(json_frame(b'{"opaque":-2147483649}')),
    "flag huge": payload(json_frame(b'{"flag":123456789012345678901234567890}')),
    "version list": payload(json_frame(b'{"version":[1]}')),
    "language number": payload(json_frame(b'{"language":1}')),
    "remark number": payload(json_frame(b'{"remark":1}')),
    "rpc type number": payload(json_frame(b'{"serializeTypeCurrentRPC":0}')),
    "ext is list": payload(json_frame(b'{"extFields":["a"]}')),
    "ext is string": payload(json_frame(b'{"extFields":"a"}')),
    "ext value list": payload(json_frame(b'{"extFields":{"a":[1]}}')),
    "ext value object": payload(json_frame(b'{"extFields":{"a":{"b":"c"}}}')),
    "ext value float": payload(json_frame(b'{"extFields":{"a":1.5}}')),
    "ext value huge int": payload(json_frame(b'{"extFields":{"a":123456789012345678901234567890}}')),
    "too many ext fields": payload(json_frame(
        b'{"extFields":{' + b",".join(b'"k%d":"v"' % i for i in range(limits.EXT_FIELDS_COUNT_MAX + 1)) + b"}}"
    )),
    "deep nesting": payload(json_frame(b'{"x":' + b"[" * 2000 + b"]" * 2000 + b"}")),
    "many containers": payload(json_frame(b'{"x":[' + b"{}," * 100 + b"{}]}")),
    "brackets after an escaped backslash": payload(json_frame(b'{"a":"x\\\\",' + b"[" * 70)),
    "escaped quotes then brackets": payload(json_frame(b'"' + b'\\"\\' * 20000 + b"[" * 100)),
    "too many strings": payload(json_frame(b'{"x":' + b"[" * 65 + b'"",' * 5000)),
    "binary too short": payload(json_frame(binary_header()[:20], serialize_type=1)),
    "binary remark negative": payload(json_frame(
        struct.pack(">hBhiii", 1, 0, 1, 1, 0, -1) + struct.pack(">i", 0), serialize_type=1)),
    "binary remark past end": payload(json_frame(
        struct.pack(">hBhiii", 1, 0, 1, 1, 0, 100) + struct.pack(">i", 0), serialize_type=1)),
    "binary remark not utf-8": payload(json_frame(binary_header(remark=b"\xff\xfe"), serialize_type=1)),
    "binary ext length too long": payload(json_frame(
        struct.pack(">hBhiii", 1, 0, 1, 1, 0, 0) + struct.pack(">i", 50), serialize_type=1)),
    "binary ext length negative": payload(json_frame(
        struct.pack(">hBhiii", 1, 0, 1, 1, 0, 0) + struct.pack(">i", -1), serialize_type=1)),
    "binary trailing bytes": payload(json_frame(binary_header() + b"\x00", serialize_type=1)),
    "binary truncated entry": payload(json_frame(
        struct.pack(">hBhiii", 1, 0, 1, 1, 0, 0) + struct.pack(">i", 3) + b"\x00\x01a", serialize_type=1)),
    "binary key length negative": payload(json_frame(
        struct.pack(">hBhiii", 1, 0, 1, 1, 0, 0) + struct.pack(">i", 6) + struct.pack(">hi", -1, 0),
        serialize_type=1)),
    "binary value length past end": payload(json_frame(
        struct.pack(">hBhiii", 1, 0, 1, 1, 0, 0) + struct.pack(">i", 7) + struct.pack(">h", 1) + b"k"
        + struct.pack(">i", 9), serialize_type=1)),
    "binary value length negative": payload(json_frame(
        struct.pack(">hBhiii", 1, 0, 1, 1, 0, 0) + struct.pack(">i", 7) + struct.pack(">h", 1) + b"k"
        + struct.pack(">i", -3), serialize_type=1)),
    "binary key not utf-8": payload(json_frame(binary_header(entries=[(b"\xc3", b"v")]), serialize_type=1)),
    "binary value not utf-8": payload(json_frame(binary_header(entries=[(b"k", b"\xed\xa0\x80")]), serialize_type=1)),
    "binary too many entries": payload(json_frame(
        binary_header(entries=[(b"k", b"v")] * (limits.EXT_FIELDS_COUNT_MAX + 1)), serialize_type=1)),
}


@pytest.mark.parametrize("data", list(BAD_PAYLOADS.values()), ids=list(BAD_PAYLOADS))
def test_malformed_payload_raises_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_frame(data)


def test_nesting_that_would_crash_orjson_is_rejected_first() -> None:
    # orjson 3.8 recurses without a bound: ~150k nested arrays segfault.
    header = b'{"x":' + b"[" * 1_000_000
    with pytest.raises(ProtocolError, match="objects and arrays"):
        decode_frame(payload(json_frame(header)))


def test_brackets_inside_strings_do_not_count() -> None:
    cmd = RemotingCommand.request(11, {"subscription": "[{" * 5000 + '\\"[' * 100, "k": "]}"})
    assert decode_frame(payload(encode_frame(cmd))) == cmd
    header = b'{"remark":"x\\"' + b"[" * 70 + b'","code":3}'  # \" is an escaped quote
    assert decode_frame(payload(json_frame(header))).remark == 'x"' + "[" * 70


# --- FrameDecoder --------------------------------------------------------------------------


def sample_commands() -> list[RemotingCommand]:
    return [
        RemotingCommand.request(RequestCode.PULL_MESSAGE, {"topic": "T", "queueId": "1"}, opaque=1),
        RemotingCommand.request(RequestCode.SEND_MESSAGE, {"a": "b"}, b"x" * 300, opaque=2, oneway=True),
        RemotingCommand(code=0, opaque=3, flag=FLAG_RESPONSE, ext_fields={"k": "v"}, body=b"\x00" * 17,
                        serialize_type=SerializeType.ROCKETMQ, remark="ok"),
        RemotingCommand(code=34),
    ]


def test_feed_all_at_once() -> None:
    cmds = sample_commands()
    stream = b"".join(encode_frame(c) for c in cmds)
    decoder = FrameDecoder()
    assert decoder.feed(stream) == cmds
    assert decoder.buffered_size == 0


def test_feed_byte_by_byte() -> None:
    cmds = sample_commands()
    stream = b"".join(encode_frame(c) for c in cmds)
    decoder = FrameDecoder()
    out: list[RemotingCommand] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i:i + 1])
        assert decoder.buffered_size <= max(len(encode_frame(c)) for c in cmds)
    assert out == cmds
    assert decoder.buffered_size == 0


@pytest.mark.parametrize("chunk", [2, 3, 5, 7, 64, 333])
def test_feed_split_and_coalesced(chunk: int) -> None:
    cmds = sample_commands() * 3
    stream = b"".join(encode_frame(c) for c in cmds)
    decoder = FrameDecoder()
    out: list[RemotingCommand] = []
    for i in range(0, len(stream), chunk):
        out += decoder.feed(memoryview(stream)[i:i + chunk])
    assert out == cmds


def test_feed_empty_chunk() -> None:
    assert FrameDecoder().feed(b"") == []


def test_oversized_prefix_is_rejected_before_buffering() -> None:
    decoder = FrameDecoder()
    prefix = struct.pack(">i", limits.FRAME_SIZE_MAX - 3)  # 4 + this > max
    with pytest.raises(FrameTooLargeError):
        decoder.feed(prefix)
    assert decoder.buffered_size == 0


def test_oversized_prefix_split_across_feeds() -> None:
    decoder = FrameDecoder()
    prefix = struct.pack(">i", 0x7FFFFFFF)
    assert decoder.feed(prefix[:2]) == []
    with pytest.raises(FrameTooLargeError):
        decoder.feed(prefix[2:])


def test_oversized_prefix_after_a_good_frame() -> None:
    good = encode_frame(RemotingCommand(code=1))
    decoder = FrameDecoder()
    assert [c.code for c in decoder.feed(good + struct.pack(">i", limits.FRAME_SIZE_MAX))] == [1]
    assert isinstance(decoder.failed, FrameTooLargeError)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(b"")


def test_max_size_prefix_is_accepted() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(struct.pack(">i", limits.FRAME_SIZE_MAX - 4)) == []
    assert decoder.buffered_size == 4


def test_custom_frame_limit() -> None:
    decoder = FrameDecoder(frame_size_max=1024)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(encode_frame(RemotingCommand(code=1, body=b"x" * 1024)))


@pytest.mark.parametrize("length", [-1, -(1 << 31), 0, 3])
def test_impossible_lengths_are_rejected(length: int) -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(struct.pack(">i", length))


def test_garbage_frame_fails_the_stream() -> None:
    decoder = FrameDecoder()
    garbage = json_frame(b"{oops")
    with pytest.raises(ProtocolError):
        decoder.feed(garbage)
    with pytest.raises(ProtocolError):
        decoder.feed(encode_frame(RemotingCommand(code=1)))


def test_header_length_beyond_frame_in_stream() -> None:
    frame = struct.pack(">iI", 6, 100) + b"{}"
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(frame)


def test_large_body_arrives_in_chunks() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB
    cmd = RemotingCommand(code=0, flag=FLAG_RESPONSE, body=body)
    frame = encode_frame(cmd)
    decoder = FrameDecoder()
    out: list[RemotingCommand] = []
    for i in range(0, len(frame), 65536):
        out += decoder.feed(frame[i:i + 65536])
        assert decoder.buffered_size <= len(frame)
    assert out == [cmd]


# --- request / response helpers ------------------------------------------------------------


def test_request_helper() -> None:
    cmd = RemotingCommand.request(RequestCode.UPDATE_CONSUMER_OFFSET, {"queueId": 3, "x": None, "b": True},
                                  opaque=77, oneway=True)
    assert cmd.code == 15 and type(cmd.code) is int
    assert cmd.ext_fields == {"queueId": "3", "b": "true"}  # strings only, None dropped
    assert cmd.opaque == 77 and cmd.is_oneway and not cmd.is_response
    assert cmd.language == "JAVA" and cmd.version == limits.REMOTING_VERSION
    assert cmd.serialize_type == SerializeType.JSON


@pytest.mark.parametrize("serialize_type", list(SerializeType))
def test_response_echoes_opaque_and_serialize_type(serialize_type: SerializeType) -> None:
    request = RemotingCommand(code=11, language="CPP", version=63, opaque=123456, flag=0,
                              serialize_type=serialize_type)
    response = request.response(ResponseCode.PULL_NOT_FOUND, "no new message",
                                {"nextBeginOffset": 5, "minOffset": "0"}, b"")
    assert response.opaque == 123456
    assert response.flag == FLAG_RESPONSE and response.is_response and not response.is_oneway
    assert response.serialize_type == serialize_type
    assert response.language == "JAVA" and response.version == limits.REMOTING_VERSION
    assert response.code == 19 and response.remark == "no new message"
    assert response.ext_fields == {"nextBeginOffset": "5", "minOffset": "0"}
    assert decode_frame(payload(encode_frame(response))) == response


def test_json_response_ext_values_are_json_strings() -> None:
    response = RemotingCommand(code=11).response(0, ext_fields={"queueOffset": 0, "flag": False})
    assert b'"queueOffset":"0"' in encode_frame(response)
    assert b'"flag":"false"' in encode_frame(response)


def test_repr_leaves_out_the_body() -> None:
    assert "xxxx" not in repr(RemotingCommand(code=1, body=b"xxxx"))


def test_enum_codes_encode_like_plain_ints():
    from rocketpy.protocol.codes import RequestCode
    from rocketpy.protocol.remoting import RemotingCommand, decode_frame, encode_frame

    cmd = RemotingCommand(code=RequestCode.REGISTER_BROKER)
    assert type(cmd.code) is int
    assert decode_frame(encode_frame(cmd)[4:]).code == 103


def test_good_frames_before_a_bad_one_are_delivered_then_the_stream_fails():
    import pytest

    from rocketpy.errors import ProtocolError
    from rocketpy.protocol.remoting import FrameDecoder, RemotingCommand, encode_frame

    dec = FrameDecoder()
    good = encode_frame(RemotingCommand.request(14, {"topic": "T"}))
    bad = b"\x00\x00\x00\x08\x00\x00\x00\x09garbage!"
    got = dec.feed(good + good + bad)
    assert [c.code for c in got] == [14, 14]
    assert dec.failed is not None
    with pytest.raises(ProtocolError):
        dec.feed(good)
