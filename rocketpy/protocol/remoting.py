"""The remoting frame codec: bytes in, RemotingCommand out, and back.

No sockets, no asyncio: a connection feeds received bytes to a FrameDecoder
and writes what encode_frame / encode_frame_parts return. Layout and rules are
in ../shared/reference/remoting-protocol.md sections 2-4; RocketMQ's names are
RemotingCommand, NettyDecoder, RocketMQSerializable.

One frame::

    +-------------+--------------------+--------------+-------------+
    | totalLength | headerLengthWord   | header       | body        |
    | int32       | uint32             | H bytes      | B bytes     |
    +-------------+--------------------+--------------+-------------+
      totalLength = 4 + H + B  (does not count itself)
      headerLengthWord = serializeType << 24 | H   (JSON 0, ROCKETMQ 1)
      whole frame (4 + totalLength) <= limits.FRAME_SIZE_MAX

Fidelity. A decoded command re-encodes byte for byte, for frames written by
the Java 4.9.x remoting layer (fastjson) and by the C++ client (jsoncpp
FastWriter) alike:

- top-level JSON keys are written in alphabetical order, compact, which is
  what both writers produce;
- ``ext_fields`` keep the order they arrived in (jsoncpp sorts them; fastjson
  writes a HashMap in its hash order) and their JSON type (C++ and ali-ons send
  numbers and booleans); commands built by ``request``/``response`` hold only
  strings, as every value we send must be a JSON string (reference 13.2);
- ``remark`` ``""`` and absent (None) are distinct;
- ``serialize_type_current_rpc`` (fastjson's ``serializeTypeCurrentRPC``),
  ``json_empty_ext_fields`` (an ``"extFields":{}`` member) and
  ``json_newline`` (jsoncpp's FastWriter ends the header with ``\\n``) record
  JSON cosmetics; they are written back but take no part in ``==``;
- non-ASCII text is written as raw UTF-8 (orjson, fastjson and jsoncpp 0.10
  agree); control characters are escaped ``\\u001f`` by orjson but
  ``\\u001F`` by jsoncpp, the one known difference.

The ROCKETMQ binary header keeps ext field order too. As in Java, an empty
remark and empty ext strings are written with length 0 and read back as
absent, so those do not survive a binary round trip.

Every decoder raises only ProtocolError (FrameTooLargeError for size). An
unknown request code is not a decode error. Encoders raise ProtocolError for a
command the chosen encoding cannot carry.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from rocketpy import limits
from rocketpy.errors import FrameTooLargeError, ProtocolError
from rocketpy.protocol.codes import LanguageCode, SerializeType

FLAG_RESPONSE = 0x1
FLAG_ONEWAY = 0x2

# A value in extFields as it arrived in JSON; null arrives as "absent".
ExtValue = str | int | bool

_INT16_MIN, _INT16_MAX = -(1 << 15), (1 << 15) - 1
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
# orjson reads and writes integers in [-2**63, 2**64 - 1].
_JSON_INT_MIN, _JSON_INT_MAX = -(1 << 63), (1 << 64) - 1

_FRAME_PREFIX = struct.Struct(">iI")
"""Frame prefix, 8 bytes::

    +-------------+------------------+
    | totalLength | headerLengthWord |
    | int32       | uint32           |
    +-------------+------------------+
"""

_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_INT16 = struct.Struct(">h")

_BINARY_FIXED = struct.Struct(">hBhiii")
"""Fixed part of a ROCKETMQ binary header, 17 bytes, then remark and ext::

    0      2     3        5        9       13        17      17+R      21+R
    +------+-----+--------+--------+-------+---------+--------+-------+--------+
    | code | lang| version| opaque | flag  | remark  | remark | ext   | ext    |
    | i16  | u8  | i16    | i32    | i32   | len R   | UTF-8  | len E | entries|
    +------+-----+--------+--------+-------+---------+--------+-------+--------+

    each ext entry: keyLen i16 | key UTF-8 | valueLen i32 | value UTF-8
    (length 0 = null in Java: such entries are dropped on decode)
"""

_BINARY_MIN_SIZE = _BINARY_FIXED.size + 4  # + ext length word

_LANGUAGE_BYTE: dict[str, int] = {lang.name: lang.value for lang in LanguageCode}
_LANGUAGE_NAME: dict[int, str] = {lang.value: lang.name for lang in LanguageCode}

_JSON_NEWLINE_OPTS = orjson.OPT_APPEND_NEWLINE


def ext_value_str(value: ExtValue) -> str:
    """The string a Java peer sees for an ext value: ints in decimal, booleans
    ``"true"``/``"false"`` (not Python's ``str(True)``)."""
    if type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    raise ProtocolError(f"ext value must be a string, integer or boolean, got {type(value).__name__}")


def _string_ext(ext_fields: Mapping[str, ExtValue | None] | None) -> dict[str, ExtValue]:
    """Ext fields as we send them: strings only, None entries dropped."""
    if not ext_fields:
        return {}
    out: dict[str, ExtValue] = {}
    for key, value in ext_fields.items():
        if value is None:
            continue
        out[key] = value if type(value) is str else ext_value_str(value)
    return out


@dataclass(slots=True)
class RemotingCommand:
    """One request or response (RocketMQ's RemotingCommand).

    ``code`` is a RequestCode for requests and a ResponseCode for responses,
    kept as a plain int so unknown codes decode. ``ext_fields`` is the custom
    header; read it with ``ext_str`` or a class from ``protocol.headers``.
    """

    code: int
    language: str = "JAVA"
    version: int = limits.REMOTING_VERSION
    opaque: int = 0
    flag: int = 0
    remark: str | None = None
    ext_fields: dict[str, ExtValue] = field(default_factory=dict)
    body: bytes = field(default=b"", repr=False)
    serialize_type: SerializeType = SerializeType.JSON
    # JSON cosmetics, kept for byte-exact re-encoding; not part of ==.
    serialize_type_current_rpc: str | None = field(default=None, compare=False)
    json_empty_ext_fields: bool = field(default=False, compare=False)
    json_newline: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        # An IntEnum member (RequestCode.X) is an int for every purpose but the
        # encoder's exact type checks: keep plain ints.
        if type(self.code) is not int and isinstance(self.code, int) and not isinstance(self.code, bool):
            self.code = int(self.code)

    @property
    def is_response(self) -> bool:
        return bool(self.flag & FLAG_RESPONSE)

    @property
    def is_oneway(self) -> bool:
        return bool(self.flag & FLAG_ONEWAY)

    @classmethod
    def request(
        cls,
        code: int,
        ext_fields: Mapping[str, ExtValue | None] | None = None,
        body: bytes = b"",
        *,
        opaque: int = 0,
        oneway: bool = False,
    ) -> RemotingCommand:
        """A JSON request stamped JAVA / REMOTING_VERSION; ext values become
        strings, None values are left out."""
        return cls(
            code=int(code),
            opaque=opaque,
            flag=FLAG_ONEWAY if oneway else 0,
            ext_fields=_string_ext(ext_fields),
            body=body,
        )

    def response(
        self,
        code: int,
        remark: str | None = None,
        ext_fields: Mapping[str, ExtValue | None] | None = None,
        body: bytes = b"",
    ) -> RemotingCommand:
        """The response to this request: same opaque and serialization,
        response flag, language JAVA (what a Java server sends)."""
        return RemotingCommand(
            code=int(code),
            language="JAVA",
            version=limits.REMOTING_VERSION,
            opaque=self.opaque,
            flag=FLAG_RESPONSE,
            remark=remark,
            ext_fields=_string_ext(ext_fields),
            body=body,
            serialize_type=self.serialize_type,
        )

    def ext_str(self, key: str) -> str | None:
        """Ext value as a Java peer reads it (see ext_value_str); None if absent."""
        value = self.ext_fields.get(key)
        if value is None or type(value) is str:
            return value
        return ext_value_str(value)


# --- encoding --------------------------------------------------------------------


def _check_int(name: str, value: object, low: int, high: int, encoding: str) -> None:
    if type(value) is not int or not low <= value <= high:
        raise ProtocolError(f"{name} {value!r} does not fit the {encoding} header")


def _encode_json_header(cmd: RemotingCommand) -> bytes:
    _check_int("code", cmd.code, _INT32_MIN, _INT32_MAX, "JSON")
    _check_int("version", cmd.version, _INT32_MIN, _INT32_MAX, "JSON")
    _check_int("opaque", cmd.opaque, _INT32_MIN, _INT32_MAX, "JSON")
    _check_int("flag", cmd.flag, _INT32_MIN, _INT32_MAX, "JSON")
    ext = cmd.ext_fields
    for value in ext.values():
        if type(value) is not str and type(value) is not bool:
            if type(value) is not int or not _JSON_INT_MIN <= value <= _JSON_INT_MAX:
                raise ProtocolError(f"ext value {value!r} cannot be written to a JSON header")
    # Built in alphabetical key order: what fastjson and jsoncpp write.
    doc: dict[str, Any] = {"code": cmd.code}
    if ext or cmd.json_empty_ext_fields:
        doc["extFields"] = ext
    doc["flag"] = cmd.flag
    doc["language"] = cmd.language
    doc["opaque"] = cmd.opaque
    if cmd.remark is not None:
        doc["remark"] = cmd.remark
    if cmd.serialize_type_current_rpc is not None:
        doc["serializeTypeCurrentRPC"] = cmd.serialize_type_current_rpc
    doc["version"] = cmd.version
    try:
        if cmd.json_newline:
            return orjson.dumps(doc, option=_JSON_NEWLINE_OPTS)
        return orjson.dumps(doc)
    except TypeError as exc:  # non-str key, surrogate in a string, bad type
        raise ProtocolError(f"command cannot be written as a JSON header: {exc}") from None


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except (UnicodeEncodeError, AttributeError):
        raise ProtocolError(f"{what} is not encodable as UTF-8") from None


def _encode_binary_header(cmd: RemotingCommand) -> bytes:
    _check_int("code", cmd.code, _INT16_MIN, _INT16_MAX, "ROCKETMQ")
    _check_int("version", cmd.version, _INT16_MIN, _INT16_MAX, "ROCKETMQ")
    _check_int("opaque", cmd.opaque, _INT32_MIN, _INT32_MAX, "ROCKETMQ")
    _check_int("flag", cmd.flag, _INT32_MIN, _INT32_MAX, "ROCKETMQ")
    language = _LANGUAGE_BYTE.get(cmd.language)
    if language is None:
        # An unknown language byte decodes as its decimal string.
        lang = cmd.language
        if not (isinstance(lang, str) and lang.isascii() and lang.isdigit() and len(lang) <= 3
                and int(lang) <= 255 and str(int(lang)) == lang):
            raise ProtocolError(f"language {lang!r} has no ROCKETMQ byte code")
        language = int(lang)
    remark = _utf8(cmd.remark, "remark") if cmd.remark else b""
    parts: list[bytes] = []
    for key, value in cmd.ext_fields.items():
        key_bytes = _utf8(key, "ext key")
        value_bytes = _utf8(ext_value_str(value), "ext value")
        if len(key_bytes) > _INT16_MAX:
            raise ProtocolError(f"ext key of {len(key_bytes)} bytes exceeds {_INT16_MAX}")
        parts.append(_INT16.pack(len(key_bytes)))
        parts.append(key_bytes)
        parts.append(_INT32.pack(len(value_bytes)))
        parts.append(value_bytes)
    ext = b"".join(parts)
    return b"".join((
        _BINARY_FIXED.pack(cmd.code, language, cmd.version, cmd.opaque, cmd.flag, len(remark)),
        remark,
        _INT32.pack(len(ext)),
        ext,
    ))


def encode_frame_parts(cmd: RemotingCommand) -> tuple[bytes, bytes]:
    """(length prefix + header-length word + header, body): write both, in
    order, to send the frame without copying a large body."""
    if cmd.serialize_type == SerializeType.JSON:
        header = _encode_json_header(cmd)
        type_bits = 0
    elif cmd.serialize_type == SerializeType.ROCKETMQ:
        header = _encode_binary_header(cmd)
        type_bits = SerializeType.ROCKETMQ << 24
    else:
        raise ProtocolError(f"unknown serialize type {cmd.serialize_type!r}")
    header_size = len(header)
    body = cmd.body
    total_length = 4 + header_size + len(body)
    if header_size > limits.HEADER_SIZE_MAX or total_length + 4 > limits.FRAME_SIZE_MAX:
        raise FrameTooLargeError(
            f"frame of {total_length + 4} bytes (header {header_size}) exceeds the "
            f"{limits.FRAME_SIZE_MAX}-byte limit; send a smaller body"
        )
    prefix = _FRAME_PREFIX.pack(total_length, type_bits | header_size) + header
    return prefix, body


def encode_frame(cmd: RemotingCommand) -> bytes:
    """The whole frame, including its 4-byte length prefix."""
    prefix, body = encode_frame_parts(cmd)
    return prefix + body if body else prefix


# --- decoding --------------------------------------------------------------------


def _json_ints(doc: dict[str, Any]) -> tuple[int, int, int, int]:
    """code, version, opaque, flag; slow path with the error message."""
    values = []
    for key in ("code", "version", "opaque", "flag"):
        value = doc.get(key)
        if value is None:
            value = 0
        elif type(value) is not int or not _INT32_MIN <= value <= _INT32_MAX:
            raise ProtocolError(f"JSON header member {key!r} must be a 32-bit integer, got {_brief(value)}")
        values.append(value)
    return values[0], values[1], values[2], values[3]


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_EXT_JSON_TYPES = frozenset((str, int, bool))


def _decode_json_ext(raw: object) -> dict[str, ExtValue]:
    if type(raw) is not dict:
        raise ProtocolError(f"JSON header member 'extFields' must be an object, got {type(raw).__name__}")
    if len(raw) > limits.EXT_FIELDS_COUNT_MAX:
        raise ProtocolError(f"{len(raw)} extFields exceed the limit of {limits.EXT_FIELDS_COUNT_MAX}")
    types = _EXT_JSON_TYPES
    for value in raw.values():
        if type(value) not in types:
            break
    else:
        return raw
    # Slow path: drop nulls (= absent), reject lists, objects and floats.
    ext: dict[str, ExtValue] = {}
    for key, value in raw.items():
        if type(value) in types:
            ext[key] = value
        elif value is not None:
            raise ProtocolError(
                f"extFields[{_brief(key)}] must be a string, number or boolean, got {type(value).__name__}"
            )
    return ext


_JSON_STRING = re.compile(rb'"[^"]*"')
# Unescaped quotes a header may hold on the slow path: every ext key and value
# plus the top-level members. More cannot decode anyway (EXT_FIELDS_COUNT_MAX).
_JSON_QUOTES_MAX = 4 * limits.EXT_FIELDS_COUNT_MAX + 64


def _check_json_nesting(header: bytes) -> None:
    """Bound the containers orjson will recurse into (see
    limits.JSON_HEADER_CONTAINERS_MAX); brackets inside strings do not count.

    Backslash pairs are removed first (left to right, as a JSON lexer pairs
    them), so every remaining quote opens or closes a string: up to the first
    byte orjson rejects, this splits strings exactly as it does, and the count
    outside them bounds the depth it can reach. All passes are linear C loops.
    """
    limit = limits.JSON_HEADER_CONTAINERS_MAX
    if header.count(b"{") + header.count(b"[") <= limit:
        return
    bare = header.replace(b"\\\\", b"").replace(b'\\"', b"")
    if bare.count(b'"') > _JSON_QUOTES_MAX:
        raise ProtocolError(f"JSON header has more than {_JSON_QUOTES_MAX // 2} strings")
    bare = _JSON_STRING.sub(b"", bare)
    if bare.count(b"{") + bare.count(b"[") > limit:
        raise ProtocolError(f"JSON header has more than {limit} objects and arrays outside strings")


def _decode_json(header: memoryview, body: bytes) -> RemotingCommand:
    raw = header.tobytes()
    _check_json_nesting(raw)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"header is not valid JSON: {exc}") from None
    if type(doc) is not dict:
        raise ProtocolError(f"JSON header must be an object, got {type(doc).__name__}")
    get = doc.get
    code = get("code", 0)
    version = get("version", 0)
    opaque = get("opaque", 0)
    flag = get("flag", 0)
    if not (
        type(code) is int and type(version) is int and type(opaque) is int and type(flag) is int
        and _INT32_MIN <= code <= _INT32_MAX and _INT32_MIN <= version <= _INT32_MAX
        and _INT32_MIN <= opaque <= _INT32_MAX and _INT32_MIN <= flag <= _INT32_MAX
    ):
        code, version, opaque, flag = _json_ints(doc)
    language = get("language", "JAVA")
    if type(language) is not str:
        if language is not None:
            raise ProtocolError(f"JSON header member 'language' must be a string, got {_brief(language)}")
        language = "JAVA"
    remark = get("remark")
    if remark is not None and type(remark) is not str:
        raise ProtocolError(f"JSON header member 'remark' must be a string, got {_brief(remark)}")
    rpc_type = get("serializeTypeCurrentRPC")
    if rpc_type is not None and type(rpc_type) is not str:
        raise ProtocolError(
            f"JSON header member 'serializeTypeCurrentRPC' must be a string, got {_brief(rpc_type)}"
        )
    raw_ext = get("extFields")
    ext: dict[str, ExtValue] = {} if raw_ext is None else _decode_json_ext(raw_ext)
    return RemotingCommand(
        code, language, version, opaque, flag, remark, ext, body, SerializeType.JSON,
        rpc_type, raw_ext is not None and not ext, raw[-1] == 0x0A,
    )


def _text(data: memoryview, what: str) -> str:
    try:
        return str(data, "utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not valid UTF-8") from None


def _decode_binary_ext(header: memoryview, pos: int, end: int) -> dict[str, ExtValue]:
    ext: dict[str, ExtValue] = {}
    count = 0
    while pos < end:
        count += 1
        if count > limits.EXT_FIELDS_COUNT_MAX:
            raise ProtocolError(f"ext fields exceed the limit of {limits.EXT_FIELDS_COUNT_MAX}")
        if end - pos < 6:
            raise ProtocolError("truncated ext field entry in ROCKETMQ header")
        (key_size,) = _INT16.unpack_from(header, pos)
        pos += 2
        if key_size < 0 or key_size > end - pos - 4:
            raise ProtocolError(f"ext key length {key_size} runs past the ext block")
        key_at = pos
        pos += key_size
        (value_size,) = _INT32.unpack_from(header, pos)
        pos += 4
        if value_size < 0 or value_size > end - pos:
            raise ProtocolError(f"ext value length {value_size} runs past the ext block")
        if key_size and value_size:  # a zero-length string is null in Java
            key = _text(header[key_at:key_at + key_size], "ext key")
            ext[key] = _text(header[pos:pos + value_size], "ext value")
        pos += value_size
    return ext


def _decode_binary(header: memoryview, body: bytes) -> RemotingCommand:
    size = len(header)
    if size < _BINARY_MIN_SIZE:
        raise ProtocolError(f"ROCKETMQ header of {size} bytes is shorter than {_BINARY_MIN_SIZE}")
    code, language, version, opaque, flag, remark_size = _BINARY_FIXED.unpack_from(header, 0)
    pos = _BINARY_FIXED.size
    if remark_size < 0 or remark_size > size - pos - 4:
        raise ProtocolError(f"remark length {remark_size} runs past the {size}-byte header")
    remark = _text(header[pos:pos + remark_size], "remark") if remark_size else None
    pos += remark_size
    (ext_size,) = _INT32.unpack_from(header, pos)
    pos += 4
    if ext_size != size - pos:
        raise ProtocolError(f"ext length {ext_size} does not match the {size - pos} bytes left in the header")
    return RemotingCommand(
        code=code,
        language=_LANGUAGE_NAME.get(language) or str(language),
        version=version,
        opaque=opaque,
        flag=flag,
        remark=remark,
        ext_fields=_decode_binary_ext(header, pos, size) if ext_size else {},
        body=body,
        serialize_type=SerializeType.ROCKETMQ,
    )


def decode_frame(payload: bytes | bytearray | memoryview) -> RemotingCommand:
    """Decode one frame given WITHOUT its 4-byte length prefix (what
    totalLength counts). Raises ProtocolError for anything malformed."""
    view = memoryview(payload)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    size = len(view)
    if size < 4:
        raise ProtocolError(f"frame of {size} bytes has no header-length word")
    (word,) = _UINT32.unpack_from(view, 0)
    header_size = word & 0xFFFFFF
    serialize_type = word >> 24
    if header_size > size - 4:
        raise ProtocolError(f"header length {header_size} exceeds the {size - 4} bytes of the frame")
    header_end = 4 + header_size
    header = view[4:header_end]
    body = bytes(view[header_end:]) if header_end < size else b""
    if serialize_type == 0:
        return _decode_json(header, body)
    if serialize_type == 1:
        return _decode_binary(header, body)
    raise ProtocolError(f"unknown serialize type {serialize_type} in header-length word")


class FrameDecoder:
    """Incremental decoder for a byte stream (RocketMQ's NettyDecoder).

    ``feed`` returns the commands completed by the new bytes. It checks each
    length prefix as soon as its 4 bytes are in, so an oversized frame raises
    FrameTooLargeError before any of it is buffered, and it never holds more
    than one frame's bytes between calls. After an error the stream cannot be
    resynchronised: every later ``feed`` raises too; close the connection.
    """

    __slots__ = ("_buf", "_frame_size_max", "_failed")

    def __init__(self, frame_size_max: int = limits.FRAME_SIZE_MAX) -> None:
        assert limits.FRAME_LENGTH_PREFIX_SIZE + 4 <= frame_size_max <= limits.FRAME_SIZE_MAX
        self._buf = bytearray()
        self._frame_size_max = frame_size_max
        self._failed: ProtocolError | None = None

    @property
    def buffered_size(self) -> int:
        """Bytes of an incomplete frame held between calls."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[RemotingCommand]:
        if self._failed is not None:
            raise self._failed  # the stream cannot resynchronise; close the connection
        out: list[RemotingCommand] = []
        try:
            view = memoryview(data)
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            if self._buf:
                view = self._complete_buffered(view, out)
                if self._buf:
                    return out
            pos = self._decode_frames(view, out)
            if pos < len(view):
                self._buf += view[pos:]
        except ProtocolError as exc:
            self._failed = exc
            self._buf = bytearray()
            if out:
                # Frames decoded before the bad one are answered; the error
                # surfaces on the next feed, which the caller makes (or closes).
                return out
            raise
        return out

    @property
    def failed(self) -> ProtocolError | None:
        """The error that broke the stream, if any (raised again by the next feed)."""
        return self._failed

    def _frame_size(self, prefix: bytes | bytearray | memoryview, at: int) -> int:
        """Bytes after the prefix (totalLength), checked against the limits."""
        (total_length,) = _INT32.unpack_from(prefix, at)
        if total_length + 4 > self._frame_size_max:
            raise FrameTooLargeError(
                f"frame of {total_length + 4} bytes exceeds the {self._frame_size_max}-byte limit"
            )
        if total_length < 4:
            raise ProtocolError(f"frame length {total_length} is too small to hold a header-length word")
        return total_length

    def _complete_buffered(self, view: memoryview, out: list[RemotingCommand]) -> memoryview:
        """Move bytes from view into the partial frame; decode it when whole.
        Returns the unused rest of view."""
        buf = self._buf
        if len(buf) < 4:
            take = 4 - len(buf)
            buf += view[:take]
            view = view[take:]
            if len(buf) < 4:
                return view
        total = 4 + self._frame_size(buf, 0)
        need = total - len(buf)
        if need > 0:
            buf += view[:need]
            view = view[need:]
        if len(buf) < total:
            return view
        self._buf = bytearray()
        out.append(decode_frame(memoryview(buf)[4:]))
        return view

    def _decode_frames(self, view: memoryview, out: list[RemotingCommand]) -> int:
        """Decode whole frames from view; return where the incomplete tail starts."""
        pos = 0
        size = len(view)
        while size - pos >= 4:
            end = pos + 4 + self._frame_size(view, pos)
            if end > size:
                break
            out.append(decode_frame(view[pos + 4:end]))
            pos = end
        return pos
