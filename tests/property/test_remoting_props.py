"""Properties of the remoting codec: decode(encode(x)) == x in both
serializations, re-encoding is byte-exact, stream splitting does not matter,
and no input makes a decoder raise anything but ProtocolError."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rocketpy.errors import ProtocolError
from rocketpy.protocol import headers as h
from rocketpy.protocol.codes import LanguageCode, SerializeType
from rocketpy.protocol.remoting import FrameDecoder, RemotingCommand, decode_frame, encode_frame

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INT16 = st.integers(-(1 << 15), (1 << 15) - 1)
INT32 = st.integers(-(1 << 31), (1 << 31) - 1)
TEXT = st.text(max_size=40)
NONEMPTY_TEXT = st.text(min_size=1, max_size=40)
BODY = st.binary(max_size=300)

JSON_EXT_VALUE = st.one_of(TEXT, st.integers(-(1 << 63), (1 << 64) - 1), st.booleans())


@st.composite
def json_commands(draw: st.DrawFn) -> RemotingCommand:
    ext = draw(st.dictionaries(TEXT, JSON_EXT_VALUE, max_size=8))
    return RemotingCommand(
        code=draw(INT32),
        language=draw(st.one_of(st.sampled_from([lang.name for lang in LanguageCode]), TEXT)),
        version=draw(INT32),
        opaque=draw(INT32),
        flag=draw(INT32),
        remark=draw(st.none() | TEXT),
        ext_fields=ext,
        body=draw(BODY),
        serialize_type=SerializeType.JSON,
        serialize_type_current_rpc=draw(st.none() | st.sampled_from(["JSON", "ROCKETMQ"])),
        json_empty_ext_fields=draw(st.booleans()),
        json_newline=draw(st.booleans()),
    )


@st.composite
def binary_commands(draw: st.DrawFn) -> RemotingCommand:
    # Java reads zero-length strings as null: empty remark/keys/values do not
    # survive, so the canonical binary command has none.
    language_byte = draw(st.integers(0, 255))
    language = LanguageCode(language_byte).name if language_byte <= 12 else str(language_byte)
    return RemotingCommand(
        code=draw(INT16),
        language=language,
        version=draw(INT16),
        opaque=draw(INT32),
        flag=draw(INT32),
        remark=draw(st.none() | NONEMPTY_TEXT),
        ext_fields=draw(st.dictionaries(NONEMPTY_TEXT, NONEMPTY_TEXT, max_size=8)),
        body=draw(BODY),
        serialize_type=SerializeType.ROCKETMQ,
    )


COMMANDS = st.one_of(json_commands(), binary_commands())


@SETTINGS
@given(COMMANDS)
def test_decode_inverts_encode(cmd: RemotingCommand) -> None:
    frame = encode_frame(cmd)
    (total_length,) = struct.unpack_from(">i", frame)
    assert total_length == len(frame) - 4
    decoded = decode_frame(frame[4:])
    assert decoded == cmd
    assert list(decoded.ext_fields) == list(cmd.ext_fields)


@SETTINGS
@given(COMMANDS)
def test_reencoding_is_byte_exact(cmd: RemotingCommand) -> None:
    frame = encode_frame(cmd)
    assert encode_frame(decode_frame(frame[4:])) == frame


@SETTINGS
@given(st.lists(COMMANDS, min_size=1, max_size=5), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_stream_splitting_does_not_matter(cmds: list[RemotingCommand], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(c) for c in cmds)
    decoder = FrameDecoder()
    out: list[RemotingCommand] = []
    pos = 0
    i = 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        out += decoder.feed(stream[pos:pos + step])
        pos += step
        i += 1
    assert out == cmds
    assert decoder.buffered_size == 0


def only_protocol_errors(data: bytes) -> None:
    try:
        decode_frame(data)
    except ProtocolError:
        pass


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    only_protocol_errors(data)


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from([0, 1, 2, 255]))
def test_arbitrary_headers_raise_only_protocol_error(header: bytes, serialize_type: int) -> None:
    # A well-formed length word so the header parsers are actually reached.
    only_protocol_errors(struct.pack(">I", serialize_type << 24 | len(header)) + header)


@SETTINGS
@given(COMMANDS, st.data())
def test_mutated_frames_raise_only_protocol_error(cmd: RemotingCommand, data: st.DataObject) -> None:
    frame = bytearray(encode_frame(cmd)[4:])
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
        if action == "flip" and frame:
            at = data.draw(st.integers(0, len(frame) - 1))
            frame[at] ^= data.draw(st.integers(1, 255))
        elif action == "truncate":
            del frame[data.draw(st.integers(0, len(frame))):]
        else:
            at = data.draw(st.integers(0, len(frame)))
            frame[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    only_protocol_errors(bytes(frame))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=10,
)
HEADER_KEYS = st.sampled_from(
    ["code", "language", "version", "opaque", "flag", "remark", "extFields", "serializeTypeCurrentRPC", "x"]
)


@SETTINGS
@given(st.dictionaries(HEADER_KEYS, JSON_VALUES, max_size=8))
def test_arbitrary_json_documents_raise_only_protocol_error(doc: dict[str, Any]) -> None:
    import json

    header = json.dumps(doc).encode()
    only_protocol_errors(struct.pack(">I", len(header)) + header)


@SETTINGS
@given(st.binary(max_size=300), st.lists(st.integers(1, 50), min_size=1, max_size=10))
def test_frame_decoder_raises_only_protocol_error(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder()
    pos = 0
    i = 0
    try:
        while pos < len(data):
            decoder.feed(data[pos:pos + cuts[i % len(cuts)]])
            pos += cuts[i % len(cuts)]
            i += 1
    except ProtocolError:
        pass


# --- headers -------------------------------------------------------------------------

HEADER_CLASSES = [
    h.SendMessageRequestHeader, h.PullMessageRequestHeader, h.EndTransactionRequestHeader,
    h.ConsumerSendMsgBackRequestHeader, h.RegisterBrokerRequestHeader, h.QueryMessageRequestHeader,
]
EXT_VALUES = st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.none(),
                       st.sampled_from(["0", "-1", "+1", "true", "1", "9223372036854775808", " 5"]))


@SETTINGS
@given(st.sampled_from(HEADER_CLASSES), st.data())
def test_from_ext_raises_only_header_error(cls: type[h.Header], data: st.DataObject) -> None:
    keys = [f.wire for f in cls._FIELDS] + ["AccessKey", "zzz"]
    ext = data.draw(st.dictionaries(st.sampled_from(keys), EXT_VALUES, max_size=len(keys)))
    try:
        header = cls.from_ext(ext)
    except h.HeaderError:
        return
    assert cls.from_ext(header.to_ext()) == header


def field_values(f: Any) -> st.SearchStrategy[Any]:
    kind = f.kind.name
    base: st.SearchStrategy[Any]
    if kind == "STR":
        base = st.text(max_size=20)
    elif kind == "INT32":
        base = INT32
    elif kind == "INT64":
        base = st.integers(-(1 << 63), (1 << 63) - 1)
    else:
        base = st.booleans()
    return base if f.required or f.default is not None else st.none() | base


@SETTINGS
@given(st.sampled_from(HEADER_CLASSES), st.data())
def test_header_round_trip(cls: type[h.Header], data: st.DataObject) -> None:
    header = cls(*[data.draw(field_values(f)) for f in cls._FIELDS])
    assert cls.from_ext(header.to_ext()) == header
    cmd = decode_frame(encode_frame(RemotingCommand.request(1, header.to_ext()))[4:])
    assert cls.from_command(cmd) == header
