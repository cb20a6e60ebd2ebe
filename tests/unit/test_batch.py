"""The batch send body (§9.2.2) and the stored properties of its items."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from rocketpy import limits
from rocketpy.errors import ProtocolError
from rocketpy.protocol.batch import (
    ITEM_FIXED_SIZE,
    BatchItem,
    decode_batch_body,
    encode_batch_body,
    merge_batch_properties,
)


def _item_bytes(flag: int, body: bytes, props: bytes, *, total: int | None = None,
                magic: int = 0, crc: int = 0) -> bytes:
    """One item as a Java or C++ client writes it."""
    size = 20 + len(body) + 2 + len(props) if total is None else total
    return struct.pack(">iiiii", size, magic, crc, flag, len(body)) + body + struct.pack(
        ">h", len(props)) + props


def test_encode_matches_the_client_layout() -> None:
    items = [BatchItem(0, b"hello", "UNIQ_KEY\x01A\x02WAIT\x01true"), BatchItem(5, b"", "")]
    expected = _item_bytes(0, b"hello", b"UNIQ_KEY\x01A\x02WAIT\x01true") + _item_bytes(5, b"", b"")
    assert encode_batch_body(items) == expected
    assert decode_batch_body(expected) == items


def test_cpp_style_items_with_trailing_separator_and_nonzero_magic_crc() -> None:
    body = _item_bytes(1, b"m1", b"KEYS\x01k\x02", magic=0x12345678, crc=-1) + _item_bytes(
        2, b"m2" * 100, b"TAGS\x01\xe4\xb8\xad\x02")
    items = decode_batch_body(body)
    assert items == [BatchItem(1, b"m1", "KEYS\x01k\x02"), BatchItem(2, b"m2" * 100, "TAGS\x01中\x02")]


def test_decode_accepts_memoryview_and_bytearray() -> None:
    raw = encode_batch_body([BatchItem(0, b"x", "A\x011")])
    assert decode_batch_body(memoryview(raw)) == decode_batch_body(bytearray(raw))


def test_empty_body_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="no messages"):
        decode_batch_body(b"")


def test_every_truncation_raises() -> None:
    first = encode_batch_body([BatchItem(0, b"hello", "A\x011")])
    raw = first + encode_batch_body([BatchItem(0, b"world", "B\x012")])
    assert len(decode_batch_body(raw[:len(first)])) == 1      # an item boundary is a valid end
    for n in range(1, len(raw)):
        if n == len(first):
            continue
        with pytest.raises(ProtocolError):
            decode_batch_body(raw[:n])


@pytest.mark.parametrize("item", [
    _item_bytes(0, b"abc", b"", total=0),                       # total too small
    _item_bytes(0, b"abc", b"", total=26),                      # total off by one
    _item_bytes(0, b"abc", b"", total=1 << 30),                 # total too large
    struct.pack(">iiiii", 22, 0, 0, 0, -1) + b"\0\0",           # negative body length
    struct.pack(">iiiii", 22, 0, 0, 0, 1 << 30) + b"\0\0",      # body past the end
    struct.pack(">iiiii", 22, 0, 0, 0, 0) + struct.pack(">h", -1),   # negative props length
    struct.pack(">iiiii", 24, 0, 0, 0, 0) + struct.pack(">h", 2) + b"\xff\xfe",  # props not UTF-8
    b"\0" * 21,
])
def test_malformed_items(item: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_batch_body(item)


def test_trailing_garbage_after_a_good_item() -> None:
    raw = encode_batch_body([BatchItem(0, b"x", "")]) + b"\0\0\0"
    with pytest.raises(ProtocolError):
        decode_batch_body(raw)


def test_item_count_is_bounded() -> None:
    raw = encode_batch_body([BatchItem(0, b"", "")] * 5)
    assert len(decode_batch_body(raw, max_items=5)) == 5
    with pytest.raises(ProtocolError, match="more than 4"):
        decode_batch_body(raw, max_items=4)
    assert limits.BATCH_MESSAGES_MAX >= 1


def test_single_byte_corruption_raises_only_protocol_error() -> None:
    raw = encode_batch_body([BatchItem(3, b"hello", "A\x011"), BatchItem(4, b"w", "")])
    for i in range(len(raw)):
        for v in (0x00, 0x01, 0x7F, 0x80, 0xFF):
            bad = bytearray(raw)
            bad[i] = v
            try:
                decode_batch_body(bytes(bad))
            except ProtocolError:
                pass


def test_encode_rejects_oversized_properties() -> None:
    with pytest.raises(ProtocolError):
        encode_batch_body([BatchItem(0, b"", "x" * (limits.PROPERTIES_SIZE_MAX + 1))])
    with pytest.raises(ProtocolError):
        encode_batch_body([BatchItem(1 << 31, b"", "")])


def test_fixed_size() -> None:
    assert ITEM_FIXED_SIZE == 22


@pytest.mark.parametrize("item, header, stored", [
    ("UNIQ_KEY\x01A\x02WAIT\x01true", "CLUSTER\x01C", "UNIQ_KEY\x01A\x02WAIT\x01true\x02CLUSTER\x01C"),
    ("WAIT\x01true\x02", "CLUSTER\x01C", "WAIT\x01true\x02CLUSTER\x01C"),   # C++: trailing \x02 kept
    ("", "CLUSTER\x01C", "CLUSTER\x01C"),
    ("A\x011", "", "A\x011"),
    ("A\x011\x02", "", "A\x011\x02"),
    ("", "", ""),
])
def test_merge_batch_properties(item: str, header: str, stored: str) -> None:
    assert merge_batch_properties(item, header) == stored


def test_captured_cpp_batch_body() -> None:
    """SEND_MESSAGE (code 10, batch "1") from the C++ wheel: two items, trailing \\x02, UNIQ_KEY each."""
    raw = (Path(__file__).resolve().parents[1] / "vectors" / "cpp" / "send_batch.bin").read_bytes()
    (word,) = struct.unpack_from(">I", raw, 4)
    items = decode_batch_body(raw[8 + (word & 0xFFFFFF):])
    assert [i.body for i in items] == [b"batch body 0", b"batch body 1"]
    assert all(i.flag == 0 and i.properties.endswith("\x02") for i in items)
    assert items[0].properties.startswith("KEYS\x01key-batch-0\x02TAGS\x01TagE\x02UNIQ_KEY\x01")
    stored = merge_batch_properties(items[0].properties, "CLUSTER\x01DefaultCluster")
    assert stored == items[0].properties + "CLUSTER\x01DefaultCluster"
    assert encode_batch_body(items) == raw[8 + (word & 0xFFFFFF):]       # byte for byte
