"""The stored record (MessageDecoder v1 layout), properties and the tag hash."""

from __future__ import annotations

import socket
import struct
import zlib

import pytest

from rocketpy.errors import ProtocolError
from rocketpy.protocol import message as m
from rocketpy.protocol.message import MessageRecord


def _expected_v4(topic: bytes, body: bytes, props: bytes) -> bytes:
    """The record laid out field by field, independently of message.encode_record."""
    size = 91 + len(body) + len(topic) + len(props)
    return b"".join([
        struct.pack(">i", size),
        struct.pack(">I", 0xDAA320A7),
        struct.pack(">i", zlib.crc32(body) & 0x7FFFFFFF),
        struct.pack(">i", 3),                     # queue id
        struct.pack(">i", 7),                     # flag
        struct.pack(">q", 42),                    # queue offset
        struct.pack(">q", 4096),                  # phys offset
        struct.pack(">i", 0),                     # sysflag
        struct.pack(">q", 1700000000000),         # born ts
        socket.inet_aton("192.168.0.5"), struct.pack(">i", 50123),
        struct.pack(">q", 1700000000123),         # store ts
        socket.inet_aton("10.0.0.1"), struct.pack(">i", 10911),
        struct.pack(">i", 2),                     # reconsume times
        struct.pack(">q", 0),                     # prepared tx offset
        struct.pack(">i", len(body)), body,
        struct.pack(">b", len(topic)), topic,
        struct.pack(">h", len(props)), props,
    ])


SAMPLE = MessageRecord(
    topic="TopicA", body=b"hello world", queue_id=3, flag=7, queue_offset=42, phys_offset=4096,
    sys_flag=0, born_timestamp=1700000000000, born_host="192.168.0.5", born_port=50123,
    store_timestamp=1700000000123, store_host="10.0.0.1", store_port=10911, reconsume_times=2,
    properties="TAGS\x01TagA\x02KEYS\x01k1 k2\x02UNIQ_KEY\x01ABC")


def test_encode_matches_the_layout_byte_for_byte() -> None:
    expected = _expected_v4(b"TopicA", b"hello world", SAMPLE.properties.encode())
    assert bytes(m.encode_record(SAMPLE)) == expected
    assert SAMPLE.size == len(expected)


def test_decode_round_trip_and_accessors() -> None:
    raw = m.encode_record(SAMPLE)
    rec = m.decode_record(raw, check_crc=True)
    assert rec == dataclass_with_crc(SAMPLE, zlib.crc32(SAMPLE.body) & 0x7FFFFFFF)
    assert rec.tags == "TagA"
    assert rec.keys == ["k1", "k2"]
    assert rec.uniq_key == "ABC"
    assert bytes(m.encode_record(rec)) == bytes(raw)


def dataclass_with_crc(rec: MessageRecord, crc: int) -> MessageRecord:
    import dataclasses
    return dataclasses.replace(rec, body_crc=crc)


def test_decode_at_position_inside_a_larger_buffer() -> None:
    first = m.encode_record(SAMPLE)
    second = m.encode_record(MessageRecord(topic="T2", body=b"", queue_id=1))
    buf = bytes(first) + bytes(second)
    recs = m.iter_records(buf)
    assert [r.topic for r in recs] == ["TopicA", "T2"]
    assert m.decode_record(buf, len(first)).body == b""


def test_v6_hosts_shift_the_later_fields() -> None:
    flags = m.SysFlag.BORNHOST_V6 | m.SysFlag.STOREHOST_V6
    rec = MessageRecord(topic="T", body=b"x", sys_flag=int(flags), born_host="fe80::1", born_port=1,
                        store_host="2001:db8::2", store_port=10911, store_timestamp=99)
    raw = m.encode_record(rec)
    assert len(raw) == 91 + 24 + 1 + 1
    assert raw[48:64] == socket.inet_pton(socket.AF_INET6, "fe80::1")
    assert struct.unpack_from(">q", raw, 68)[0] == 99          # store timestamp after a v6 born host
    assert raw[76:92] == socket.inet_pton(socket.AF_INET6, "2001:db8::2")
    back = m.decode_record(raw)
    assert (back.born_host, back.store_host, back.store_port) == ("fe80::1", "2001:db8::2", 10911)
    assert m.read_header(raw).store_timestamp == 99


def test_only_born_host_v6() -> None:
    rec = MessageRecord(topic="T", body=b"", sys_flag=int(m.SysFlag.BORNHOST_V6), born_host="::1",
                        store_host="1.2.3.4")
    raw = m.encode_record(rec)
    assert len(raw) == 91 + 12 + 1
    assert m.decode_record(raw).store_host == "1.2.3.4"


def test_v4_mapped_host_is_stored_as_four_bytes() -> None:
    raw = m.encode_record(MessageRecord(topic="T", body=b"", born_host="::ffff:10.1.2.3"))
    assert raw[48:52] == bytes([10, 1, 2, 3])


@pytest.mark.parametrize("host", ["abc", "1.2.3", "", "::1", "1.2.3.4.5", "1.2.3.\x004"])
def test_bad_v4_host_raises_protocol_error(host: str) -> None:
    with pytest.raises(ProtocolError):
        m.encode_record(MessageRecord(topic="T", body=b"", born_host=host))


def test_encode_rejects_values_the_format_cannot_hold() -> None:
    with pytest.raises(ProtocolError):
        m.encode_record(MessageRecord(topic="", body=b""))
    with pytest.raises(ProtocolError):
        m.encode_record(MessageRecord(topic="T" * 128, body=b""))
    with pytest.raises(ProtocolError):
        m.encode_record(MessageRecord(topic="T", body=b"", properties="x" * 32768))
    with pytest.raises(ProtocolError):
        m.encode_record(MessageRecord(topic="T", body=b"", queue_id=1 << 31))
    with pytest.raises(ProtocolError):
        m.encode_record(MessageRecord(topic="T\ud800", body=b""))


def test_crc_check() -> None:
    raw = m.encode_record(SAMPLE)
    body_at = 84 + 4
    raw[body_at] ^= 0xFF
    m.decode_record(raw)                      # not checked by default
    with pytest.raises(ProtocolError, match="CRC"):
        m.decode_record(raw, check_crc=True)


def test_every_truncation_raises_protocol_error() -> None:
    raw = bytes(m.encode_record(SAMPLE))
    for n in range(len(raw)):
        with pytest.raises(ProtocolError):
            m.decode_record(raw[:n])


def test_bad_magic_and_bad_sizes() -> None:
    raw = bytearray(m.encode_record(SAMPLE))
    bad = bytearray(raw)
    struct.pack_into(">I", bad, 4, m.BLANK_MAGIC)
    with pytest.raises(ProtocolError, match="magic"):
        m.decode_record(bad)
    for total in (0, 90, len(raw) - 1, len(raw) + 1, -5):
        bad = bytearray(raw) + b"\0\0"
        struct.pack_into(">i", bad, 0, total)
        with pytest.raises(ProtocolError):
            m.decode_record(bad)


def test_garbage_raises_only_protocol_error() -> None:
    raw = bytes(m.encode_record(SAMPLE))
    for i in range(0, len(raw)):
        for value in (0x00, 0x7F, 0x80, 0xFF):
            bad = bytearray(raw)
            bad[i] = value
            try:
                m.decode_record(bad)
            except ProtocolError:
                pass


def test_negative_position_is_rejected() -> None:
    with pytest.raises(ProtocolError):
        m.decode_record(m.encode_record(SAMPLE), -1)
    with pytest.raises(ProtocolError):
        m.read_header(b"\0" * 10)


@pytest.mark.parametrize("sys_flag, ts_pos", [(0, 56), (int(m.SysFlag.BORNHOST_V6), 68),
                                              (int(m.SysFlag.BORNHOST_V6 | m.SysFlag.STOREHOST_V6), 68),
                                              (int(m.SysFlag.STOREHOST_V6), 56)])
def test_patch_record(sys_flag: int, ts_pos: int) -> None:
    host_born = "::1" if sys_flag & m.SysFlag.BORNHOST_V6 else "127.0.0.1"
    host_store = "::2" if sys_flag & m.SysFlag.STOREHOST_V6 else "127.0.0.2"
    rec = MessageRecord(topic="T", body=b"abc", sys_flag=sys_flag, born_host=host_born,
                        store_host=host_store)
    buf = bytearray(16) + m.encode_record(rec)
    m.patch_record(buf, 16, queue_offset=5, phys_offset=1 << 40, store_timestamp=123456789)
    assert struct.unpack_from(">q", buf, 16 + ts_pos)[0] == 123456789
    back = m.decode_record(buf, 16, check_crc=True)
    assert (back.queue_offset, back.phys_offset, back.store_timestamp) == (5, 1 << 40, 123456789)
    assert back.body == b"abc" and back.born_host == host_born and back.store_host == host_store


def test_patch_record_through_memoryview() -> None:
    buf = m.encode_record(SAMPLE)
    m.patch_record(memoryview(buf), 0, queue_offset=1, phys_offset=2, store_timestamp=3)
    h = m.read_header(buf)
    assert (h.queue_offset, h.phys_offset, h.store_timestamp) == (1, 2, 3)


def test_transaction_helpers() -> None:
    assert m.gets_queue_entry(0) and m.gets_queue_entry(m.TRANSACTION_COMMIT)
    assert not m.gets_queue_entry(m.TRANSACTION_PREPARED)
    assert not m.gets_queue_entry(m.TRANSACTION_ROLLBACK | m.SysFlag.COMPRESSED)


# --- properties ---------------------------------------------------------------------


def test_properties_trailing_separator_and_oddities() -> None:
    assert m.parse_properties("A\x011\x02B\x012\x02") == {"A": "1", "B": "2"}
    assert m.parse_properties("A\x011\x02\x02\x02B\x012") == {"A": "1", "B": "2"}
    assert m.parse_properties("noseparator\x02A\x011") == {"A": "1"}
    assert m.parse_properties("A\x01\x02B\x012") == {"B": "2"}          # empty value dropped
    assert m.parse_properties("\x01x\x02B\x012") == {"B": "2"}          # empty name dropped
    assert m.parse_properties("A\x01x\x01y") == {"A": "x\x01y"}         # first \x01 splits
    assert m.parse_properties("") == {}
    assert m.parse_properties("\x02") == {}


def test_format_properties() -> None:
    assert m.format_properties({"A": "1", "B": "2"}) == "A\x011\x02B\x012"
    assert m.format_properties({}) == ""
    with pytest.raises(ProtocolError):
        m.format_properties({"A\x02": "1"})
    with pytest.raises(ProtocolError):
        m.format_properties({"A": "1\x01"})


# --- tag hash -----------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("TagA", 2598919),
    ("TagB", 2598920),
    ("", 0),
    ("a", 97),
    ("polygenelubricants", -(1 << 31)),
    ("Aa", 2112), ("BB", 2112),                # the classic collision
    ("é", 0xE9),                               # one UTF-16 unit
    ("中文", 20013 * 31 + 25991),
    ("😀", 0xD83D * 31 + 0xDE00),               # surrogate pair: two units, as in Java
    ("\ud800", 0xD800),                        # lone surrogate: one unit
    ("zzzzzzzzzzzz", None),
])
def test_java_string_hash(text: str, expected: int | None) -> None:
    h = m.java_string_hash(text)
    if expected is None:                       # long text: compare with a direct formula
        acc = 0
        for unit in struct.unpack(f">{len(text)}H", text.encode("utf-16-be")):
            acc = (acc * 31 + unit) % (1 << 32)
        expected = acc - (1 << 32) if acc >= 1 << 31 else acc
    assert h == expected
    assert -(1 << 31) <= h < (1 << 31)


def test_tags_code() -> None:
    assert m.tags_code(None) == 0
    assert m.tags_code("") == 0
    assert m.tags_code("TagA") == 2598919
    assert m.tags_code("TagA || TagB") == m.java_string_hash("TagA || TagB")


def test_index_key_hash() -> None:
    assert m.index_key_hash("polygenelubricants") == 0        # |Integer.MIN_VALUE| -> 0
    assert m.index_key_hash("TagA") == 2598919
    negative = next(s for s in ("zzzzzzz", "hello world!", "abcdefghij") if m.java_string_hash(s) < 0)
    assert m.index_key_hash(negative) == -m.java_string_hash(negative)
