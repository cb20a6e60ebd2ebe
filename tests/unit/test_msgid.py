"""Offset msgId (§10.5) and UNIQ_KEY (§10.4)."""

from __future__ import annotations

import threading
import time

import pytest

from rocketpy.errors import ProtocolError
from rocketpy.protocol import msgid
from rocketpy.protocol.msgid import (
    UniqKeyGenerator,
    decode_offset_msg_id,
    offset_msg_id,
    uniq_key_time_ms,
)


def test_offset_msg_id_v4_golden() -> None:
    # 192.168.0.10 = C0A8000A, port 10911 = 00002A9F, offset 0x1234 -> 16 hex digits
    assert offset_msg_id("192.168.0.10", 10911, 0x1234) == "C0A8000A00002A9F0000000000001234"
    assert decode_offset_msg_id("C0A8000A00002A9F0000000000001234") == ("192.168.0.10", 10911, 0x1234)


def test_offset_msg_id_lower_case_is_accepted() -> None:
    assert decode_offset_msg_id("c0a8000a00002a9f0000000000001234") == ("192.168.0.10", 10911, 0x1234)


def test_offset_msg_id_v6() -> None:
    mid = offset_msg_id("2001:db8::1", 10911, (1 << 62) + 5)
    assert len(mid) == 56
    assert mid.startswith("20010DB8000000000000000000000001" + "00002A9F")
    assert decode_offset_msg_id(mid) == ("2001:db8::1", 10911, (1 << 62) + 5)


@pytest.mark.parametrize("bad", [
    "", "ABC", "C0A8000A00002A9F000000000000123",             # 31 chars
    "C0A8000A00002A9F00000000000012345",                       # 33 chars
    "G0A8000A00002A9F0000000000001234",                        # not hex
    "C0A8000A00002A9F00000000 0001234",                        # space (bytes.fromhex would skip it)
    "C0A8000AFFFF2A9F0000000000001234",                        # negative port
    "C0A8000A00012A9F0000000000001234",                        # port 76447
    "C0A8000A00002A9F8000000000000000",                        # negative offset
])
def test_decode_offset_msg_id_rejects(bad: str) -> None:
    with pytest.raises(ProtocolError):
        decode_offset_msg_id(bad)


def test_decode_offset_msg_id_rejects_non_strings() -> None:
    with pytest.raises(ProtocolError):
        decode_offset_msg_id(12345)  # type: ignore[arg-type]


@pytest.mark.parametrize("host, port, off", [("nohost", 1, 0), ("1.2.3.4", -1, 0), ("1.2.3.4", 70000, 0),
                                             ("1.2.3.4", 1, -1), ("1.2.3.4", 1, 1 << 63)])
def test_offset_msg_id_rejects(host: str, port: int, off: int) -> None:
    with pytest.raises(ProtocolError):
        offset_msg_id(host, port, off)


# --- UNIQ_KEY ------------------------------------------------------------------------


def test_uniq_key_layout() -> None:
    gen = UniqKeyGenerator(ip="127.0.0.1", pid=0x12345, random_bytes=b"\xde\xad\xbe\xef")
    assert gen.prefix == "7F000001" + "2345" + "DEADBEEF"
    start, _ = msgid._month_bounds_ms(1_700_000_000_000)
    key = gen.next(now_ms=start + 0x1234)
    assert key == "7F0000012345DEADBEEF" + "00001234" + "0000"
    assert gen.next(now_ms=start + 0x1234).endswith("0001")
    assert len(key) == 32 and key == key.upper()


def test_uniq_key_v6() -> None:
    key = UniqKeyGenerator(ip="::1", pid=1).next()
    assert len(key) == 56


def test_uniq_key_counter_wraps_to_16_bits() -> None:
    gen = UniqKeyGenerator(ip="10.0.0.1", pid=1, random_bytes=b"\0\0\0\0")
    now = int(time.time() * 1000)
    keys = [gen.next(now_ms=now) for _ in range(65537)]
    assert keys[0][-4:] == "0000" and keys[65535][-4:] == "FFFF" and keys[65536][-4:] == "0000"


def test_uniq_keys_are_unique_across_threads() -> None:
    gen = UniqKeyGenerator(ip="10.0.0.1", pid=1)
    out: list[list[str]] = [[] for _ in range(4)]

    def work(i: int) -> None:
        out[i].extend(gen.next() for _ in range(5000))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [k for part in out for k in part]
    assert len(set(flat)) == len(flat) == 20000


def test_uniq_key_time_round_trip() -> None:
    now = int(time.time() * 1000)
    gen = UniqKeyGenerator(ip="10.0.0.1", pid=1)
    key = gen.next(now_ms=now)
    assert uniq_key_time_ms(key, now_ms=now) == now
    assert uniq_key_time_ms(key, now_ms=now + 5000) == now
    assert uniq_key_time_ms(gen.next()) <= int(time.time() * 1000)


def test_uniq_key_time_from_last_month() -> None:
    start, nxt = msgid._month_bounds_ms(1_700_000_000_000)
    gen = UniqKeyGenerator(ip="10.0.0.1", pid=1)
    made = nxt - 60_000                      # a minute before the month ended
    key = gen.next(now_ms=made)
    assert uniq_key_time_ms(key, now_ms=nxt + 3_600_000) == made
    assert start < made


def test_month_rollover_resets_the_time_field() -> None:
    _, nxt = msgid._month_bounds_ms(1_700_000_000_000)
    gen = UniqKeyGenerator(ip="10.0.0.1", pid=1)
    gen.next(now_ms=nxt - 1)
    assert gen.next(now_ms=nxt + 7)[20:28] == "00000007"


def test_clock_stepping_back_a_little_gives_zero() -> None:
    start, _ = msgid._month_bounds_ms(1_700_000_000_000)
    gen = UniqKeyGenerator(ip="10.0.0.1", pid=1)
    gen.next(now_ms=start + 10)
    assert gen.next(now_ms=start - 10)[20:28] == "00000000"


@pytest.mark.parametrize("bad", ["", "XYZ", "7F0000012345DEADBEEF00001234000G", 5])
def test_uniq_key_time_rejects(bad: str) -> None:
    with pytest.raises(ProtocolError):
        uniq_key_time_ms(bad)


def test_generator_argument_checks() -> None:
    with pytest.raises(ValueError):
        UniqKeyGenerator(ip="1.2.3.4", random_bytes=b"\0")
    with pytest.raises(ProtocolError):
        UniqKeyGenerator(ip="not-an-ip")


def test_default_generator() -> None:
    a, b = msgid.new_uniq_key(), msgid.new_uniq_key()
    assert a != b and len(a) in (32, 56)


def test_many_keys_are_distinct() -> None:
    gen = UniqKeyGenerator(ip="10.0.0.1", pid=1)
    keys = [gen.next() for _ in range(20000)]   # the counter wraps at 65536 only, within one ms
    assert len(set(keys)) == len(keys)
