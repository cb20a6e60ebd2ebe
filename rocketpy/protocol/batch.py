"""The body of a batch send (SEND_BATCH_MESSAGE, or any send with `batch`=true).

The body is items back to back (MessageDecoder.encodeMessage; remoting-protocol.md
§9.2.2); each item, integers big-endian::

    +0   TOTALSIZE    int32   = 20 + B + 2 + P
    +4   MAGICCODE    int32   clients write 0; ignored
    +8   BODYCRC      int32   clients write 0; ignored (the broker computes it)
    +12  FLAG         int32
    +16  BODYLEN B    int32
    +20  BODY         B bytes
         PROPSLEN P   int16 (signed)
         PROPERTIES   P bytes UTF-8 (message.parse_properties)

Every length is checked against the others and against the buffer; decoding
raises only ProtocolError.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable

from rocketpy import limits
from rocketpy.errors import ProtocolError
from rocketpy.protocol.message import PROPERTY_SEPARATOR

_ITEM_HEAD = struct.Struct(">iiiii")        # TOTALSIZE, MAGIC, BODYCRC, FLAG, BODYLEN
_PROPS_LEN = struct.Struct(">h")
ITEM_FIXED_SIZE = _ITEM_HEAD.size + _PROPS_LEN.size
assert ITEM_FIXED_SIZE == 22


@dataclasses.dataclass(frozen=True, slots=True)
class BatchItem:
    """One message of a batch: what the client sends per item."""

    flag: int
    body: bytes
    properties: str


def encode_batch_body(items: Iterable[BatchItem]) -> bytes:
    """Encode items as a Java client does (magic and CRC written as 0)."""
    parts: list[bytes] = []
    for item in items:
        props_b = item.properties.encode()
        if len(props_b) > limits.PROPERTIES_SIZE_MAX:
            raise ProtocolError(
                f"batch item properties are {len(props_b)} bytes; the maximum is {limits.PROPERTIES_SIZE_MAX}")
        total = ITEM_FIXED_SIZE + len(item.body) + len(props_b)
        try:
            parts.append(_ITEM_HEAD.pack(total, 0, 0, item.flag, len(item.body)))
        except struct.error as exc:
            raise ProtocolError(f"batch item does not fit the format: {exc}") from None
        parts.append(item.body)
        parts.append(_PROPS_LEN.pack(len(props_b)))
        parts.append(props_b)
    return b"".join(parts)


def decode_batch_body(body: bytes | bytearray | memoryview, *,
                      max_items: int = limits.BATCH_MESSAGES_MAX) -> list[BatchItem]:
    """Split a batch body into its items; ProtocolError for anything malformed or empty."""
    view = memoryview(body)
    end = len(view)
    if end == 0:
        raise ProtocolError("batch body holds no messages")
    items: list[BatchItem] = []
    pos = 0
    while pos < end:
        if len(items) >= max_items:
            raise ProtocolError(f"batch holds more than {max_items} messages")
        if end - pos < ITEM_FIXED_SIZE:
            raise ProtocolError(f"batch item {len(items)} at byte {pos} is truncated")
        total, _magic, _crc, flag, body_len = _ITEM_HEAD.unpack_from(view, pos)
        if body_len < 0 or body_len > end - pos - ITEM_FIXED_SIZE:
            raise ProtocolError(
                f"batch item {len(items)} at byte {pos}: body length {body_len} runs past the body")
        p = pos + _ITEM_HEAD.size + body_len
        props_len = _PROPS_LEN.unpack_from(view, p)[0]
        if props_len < 0 or p + 2 + props_len > end:
            raise ProtocolError(
                f"batch item {len(items)} at byte {pos}: properties length {props_len} runs past the body")
        if total != ITEM_FIXED_SIZE + body_len + props_len:
            raise ProtocolError(
                f"batch item {len(items)} at byte {pos}: total size {total} disagrees with "
                f"body length {body_len} and properties length {props_len}")
        try:
            props = bytes(view[p + 2:p + 2 + props_len]).decode()
        except UnicodeDecodeError:
            raise ProtocolError(f"batch item {len(items)} at byte {pos}: properties are not UTF-8") from None
        items.append(BatchItem(flag, bytes(view[pos + _ITEM_HEAD.size:p]), props))
        pos += total
    return items


def merge_batch_properties(item_props: str, header_props: str) -> str:
    """The stored properties of one batch item (CommitLog.MessageExtBatchEncoder).

    Item properties, then `\\x02` unless the item's are empty or already end with
    it, then the request header's properties (which carry `CLUSTER` and the
    batch-level keys).
    """
    if not header_props:
        return item_props
    if not item_props:
        return header_props
    if item_props.endswith(PROPERTY_SEPARATOR):
        return item_props + header_props
    return item_props + PROPERTY_SEPARATOR + header_props
