"""StoreCheckpoint, AbortMarker, StoreLock, min_timestamp_for_recovery."""

from __future__ import annotations

import os
import zlib

import pytest

from rocketpy.errors import StoreError
from rocketpy.store.checkpoint import (
    AbortMarker,
    StoreCheckpoint,
    StoreLock,
    min_timestamp_for_recovery,
)


def test_roundtrip_and_layout(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "checkpoint")
    cp = StoreCheckpoint(path)
    assert not cp.valid and os.path.getsize(path) == 4096
    cp.physic_msg_timestamp, cp.logics_msg_timestamp, cp.index_msg_timestamp = 1, 2, 3
    cp.flush()
    cp.close()
    with open(path, "rb") as fh:
        raw = fh.read()
    assert len(raw) == 4096
    stamps = bytes.fromhex("0000000000000001" "0000000000000002" "0000000000000003")
    assert raw[:24] == stamps
    assert raw[24:28] == zlib.crc32(stamps).to_bytes(4, "big")
    assert raw[28:] == bytes(4096 - 28)
    again = StoreCheckpoint(path)
    assert again.valid
    assert (again.physic_msg_timestamp, again.logics_msg_timestamp, again.index_msg_timestamp) == (1, 2, 3)
    again.close()


@pytest.mark.parametrize("damage", ["flip", "java", "short"])
def test_torn_or_foreign_checkpoint_is_absent(tmp_path: os.PathLike[str], damage: str) -> None:
    path = os.path.join(tmp_path, "checkpoint")
    cp = StoreCheckpoint(path)
    cp.physic_msg_timestamp = cp.logics_msg_timestamp = cp.index_msg_timestamp = 1_700_000_000_000
    cp.flush()
    cp.close()
    with open(path, "r+b") as fh:
        if damage == "flip":
            fh.seek(3)
            fh.write(b"\x55")
        elif damage == "java":                     # RocketMQ writes no CRC
            fh.seek(24)
            fh.write(bytes(4))
        else:
            fh.truncate(10)
    again = StoreCheckpoint(path)
    assert not again.valid
    assert again.physic_msg_timestamp == again.logics_msg_timestamp == again.index_msg_timestamp == 0
    assert os.path.getsize(path) == 4096
    again.close()


@pytest.mark.parametrize("physic,logics,index,safe,expected", [
    (10_000, 20_000, 5_000, False, 7_000),
    (20_000, 10_000, 5_000, False, 7_000),
    (20_000, 10_000, 5_000, True, 5_000),
    (20_000, 10_000, 9_000, True, 7_000),
    (1_000, 10_000, 0, False, 0),                 # clamped at 0
    (0, 0, 0, False, 0),
])
def test_min_timestamp(physic: int, logics: int, index: int, safe: bool, expected: int) -> None:
    assert min_timestamp_for_recovery(physic, logics, index, message_index_safe=safe) == expected


def test_abort_marker(tmp_path: os.PathLike[str]) -> None:
    m = AbortMarker(str(tmp_path))
    assert not m.present
    m.create()
    assert m.present and os.path.getsize(m.path) == 0
    m.create()
    m.remove()
    assert not m.present
    m.remove()


def test_store_lock_excludes_second_opener(tmp_path: os.PathLike[str]) -> None:
    root = str(tmp_path)
    first = StoreLock(root)
    first.acquire()
    with pytest.raises(StoreError, match="another broker is using"):
        StoreLock(root).acquire()
    assert first.held                             # the failed attempt did not free it
    with pytest.raises(StoreError):
        StoreLock(root).acquire()
    first.release()
    with StoreLock(root) as again:
        assert again.held
