"""Message ids: the broker's offset msgId and the producer's UNIQ_KEY.

Offset msgId (MessageDecoder.createMessageId; remoting-protocol.md §10.5), hex
upper-case of::

    +0   STOREHOST    4 bytes (IPv4) | 16 bytes (IPv6)
    +4   STOREPORT    int32
    +8   PHYSOFFSET   int64           (+12 on each field after the host for IPv6)

-> 32 hex characters for IPv4, 56 for IPv6.

UNIQ_KEY (MessageClientIDSetter; §10.4), hex upper-case of::

    +0   CLIENT IP    4 bytes (IPv4) | 16 bytes (IPv6)
    +4   PID          int16 (low 16 bits)
    +6   RANDOM       4 bytes, fixed per process (Java: the class loader's hash)
    +10  TIME         int32, ms since the start of the current month (local time)
    +14  COUNTER      int16, wraps

-> 32 / 56 hex characters. The broker treats UNIQ_KEY as opaque (the C++ client
writes its IP little-endian); only our own client generates it.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import os
import socket
import struct
import threading
import time

from rocketpy.errors import ProtocolError

OFFSET_MSG_ID_LENGTH_V4 = 32
OFFSET_MSG_ID_LENGTH_V6 = 56
UNIQ_KEY_LENGTH_V4 = 32
UNIQ_KEY_LENGTH_V6 = 56

_PORT_OFFSET = struct.Struct(">iq")
_INT64_MAX = (1 << 63) - 1
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _pack_ip(host: str) -> bytes:
    try:
        return ipaddress.ip_address(host).packed
    except ValueError:
        raise ProtocolError(f"{host!r} is not an IPv4 or IPv6 address") from None


@functools.lru_cache(maxsize=256)
def _msg_id_prefix(store_host: str, store_port: int) -> str:
    if not 0 <= store_port <= 0xFFFF:
        raise ProtocolError(f"store port {store_port} is outside 0..65535")
    return (_pack_ip(store_host) + struct.pack(">i", store_port)).hex().upper()


def offset_msg_id(store_host: str, store_port: int, phys_offset: int) -> str:
    """The broker's msgId of the record at phys_offset in the CommitLog of store_host:store_port."""
    if not 0 <= phys_offset <= _INT64_MAX:
        raise ProtocolError(f"commit log offset {phys_offset} is outside 0..2^63-1")
    return f"{_msg_id_prefix(store_host, store_port)}{phys_offset:016X}"


def decode_offset_msg_id(msg_id: str) -> tuple[str, int, int]:
    """(store host, store port, commit log offset) of an offset msgId; ProtocolError if malformed."""
    if not isinstance(msg_id, str) or len(msg_id) not in (OFFSET_MSG_ID_LENGTH_V4, OFFSET_MSG_ID_LENGTH_V6):
        raise ProtocolError(f"message id {msg_id!r} is not 32 or 56 hex characters")
    if not _HEX_DIGITS.issuperset(msg_id):
        raise ProtocolError(f"message id {msg_id!r} is not hexadecimal")
    raw = bytes.fromhex(msg_id)
    ip_len = len(raw) - _PORT_OFFSET.size
    port, phys_offset = _PORT_OFFSET.unpack_from(raw, ip_len)
    if not 0 <= port <= 0xFFFF:
        raise ProtocolError(f"message id {msg_id!r} names port {port}, outside 0..65535")
    if phys_offset < 0:
        raise ProtocolError(f"message id {msg_id!r} names a negative commit log offset")
    host = str(ipaddress.ip_address(raw[:ip_len]))
    return host, port, phys_offset


# --- UNIQ_KEY -------------------------------------------------------------------


def _month_bounds_ms(now_ms: int) -> tuple[int, int]:
    """Start of the local month containing now_ms and start of the next one, in epoch ms."""
    t = time.localtime(now_ms / 1000)
    start = time.mktime((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, -1))
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    nxt = time.mktime((year, month, 1, 0, 0, 0, 0, 0, -1))
    return int(start * 1000), int(nxt * 1000)


def _previous_month_start_ms(month_start_ms: int) -> int:
    return _month_bounds_ms(month_start_ms - 1)[0]


def local_ip() -> str:
    """A local IPv4 address to stamp into UNIQ_KEYs (no packets are sent); 127.0.0.1 if none."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            addr = s.getsockname()[0]
            if isinstance(addr, str) and addr != "0.0.0.0":
                return addr
    except OSError:
        pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


class UniqKeyGenerator:
    """Makes UNIQ_KEYs in Java's layout. next() is a counter, a clock read and one format.

    Thread-safe: the counter is an itertools.count (atomic under the GIL) and the
    month window is replaced as one tuple. Ids are unique within the process as
    long as fewer than 65,536 are made in one millisecond.
    """

    __slots__ = ("_prefix", "_counter", "_window")

    def __init__(self, ip: str | None = None, pid: int | None = None,
                 random_bytes: bytes | None = None) -> None:
        ip_b = _pack_ip(ip if ip is not None else local_ip())
        pid_v = (os.getpid() if pid is None else pid) & 0xFFFF
        rnd = os.urandom(4) if random_bytes is None else random_bytes
        if len(rnd) != 4:
            raise ValueError("random_bytes must be 4 bytes")
        self._prefix = (ip_b + struct.pack(">H", pid_v) + rnd).hex().upper()
        self._counter = itertools.count()
        self._window = _month_bounds_ms(time.time_ns() // 1_000_000)

    @property
    def prefix(self) -> str:
        return self._prefix

    def next(self, now_ms: int | None = None) -> str:
        """A new UNIQ_KEY."""
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        start, nxt = self._window
        if now >= nxt or now < start - 1_000_000:
            self._window = _month_bounds_ms(now)
            start = self._window[0]
        diff = now - start
        if diff < 0:                 # clock stepped back a little (NTP): Java uses 0
            diff = 0
        return f"{self._prefix}{diff & 0xFFFFFFFF:08X}{next(self._counter) & 0xFFFF:04X}"

    __call__ = next


def uniq_key_time_ms(key: str, now_ms: int | None = None) -> int:
    """Approximate epoch ms at which a Java-layout UNIQ_KEY was made
    (MessageClientIDSetter.getNearlyTimeFromID); ProtocolError if the key is malformed."""
    if not isinstance(key, str) or len(key) not in (UNIQ_KEY_LENGTH_V4, UNIQ_KEY_LENGTH_V6):
        raise ProtocolError(f"UNIQ_KEY {key!r} is not 32 or 56 hex characters")
    if not _HEX_DIGITS.issuperset(key):
        raise ProtocolError(f"UNIQ_KEY {key!r} is not hexadecimal")
    span_ms = int(key[-12:-4], 16)
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    start = _month_bounds_ms(now)[0]
    if start + span_ms > now:        # made last month (Java uses >=, which misreads "made just now")
        start = _previous_month_start_ms(start)
    return start + span_ms


_default_lock = threading.Lock()
_default: UniqKeyGenerator | None = None


def new_uniq_key() -> str:
    """A UNIQ_KEY from the process-wide generator (re-made in a forked child)."""
    global _default
    gen = _default
    if gen is None:
        with _default_lock:
            if _default is None:
                _default = UniqKeyGenerator()
            gen = _default
    return gen.next()


def _reset_after_fork() -> None:
    global _default, _default_lock
    _default = None
    _default_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
