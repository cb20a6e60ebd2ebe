"""CommitLog: append with offsets and timestamps, groups, rolls with the BLANK marker, reads, scans."""

from __future__ import annotations

import struct

import pytest

from rocketpy.errors import DiskFullError, MessageIllegalError, StoreError
from rocketpy.protocol.message import (
    BLANK_MAGIC,
    TRANSACTION_COMMIT,
    TRANSACTION_PREPARED,
    TRANSACTION_ROLLBACK,
    MessageRecord,
    decode_record,
    encode_record,
    format_properties,
)
from rocketpy.store.api import PutRequest
from rocketpy.store.commitlog import Blank, CommitLog, Corrupt, End, Record, TornTail
from rocketpy.store.io import FaultyFileIO, RealFileIO

FILE_SIZE = 4096


def make_request(topic: str = "T", queue_id: int = 0, body: bytes = b"x" * 100, *,
                 sys_flag: int = 0, tags: str | None = None) -> PutRequest:
    props = format_properties({"TAGS": tags}) if tags else ""
    rec = MessageRecord(topic=topic, body=body, queue_id=queue_id, sys_flag=sys_flag, properties=props)
    return PutRequest(topic, queue_id, sys_flag, encode_record(rec))


def open_log(tmp_path, io=None, **kw) -> CommitLog:
    log = CommitLog(str(tmp_path / "commitlog"), FILE_SIZE, io or RealFileIO(), **kw)
    log.load()
    return log


def test_append_assigns_offsets_and_patches_records(tmp_path):
    log = open_log(tmp_path)
    r1 = log.append([make_request("A", 0)], 1000)
    r2 = log.append([make_request("A", 0), make_request("B", 1), make_request("A", 0)], 999)
    assert r1[0].phys_offset == 0 and r1[0].queue_offset == 0 and r1[0].store_timestamp == 1000
    assert [r.queue_offset for r in r2] == [1, 0, 2]
    assert [r.store_timestamp for r in r2] == [1000] * 3, "store time never goes backwards"
    assert [r.phys_offset for r in r2] == [r1[0].size, r1[0].size * 2, r1[0].size * 3]
    assert log.committed_offset == 4 * r1[0].size
    for res in r1 + r2:
        rec = decode_record(log.read_record(res.phys_offset), check_crc=True)
        assert (rec.phys_offset, rec.queue_offset, rec.store_timestamp) == (
            res.phys_offset, res.queue_offset, res.store_timestamp)
    assert log.queue_offsets == {("A", 0): 3, ("B", 1): 1}
    log.close()


def test_prepared_and_rollback_take_no_queue_offset(tmp_path):
    log = open_log(tmp_path)
    res = log.append([make_request(sys_flag=TRANSACTION_PREPARED), make_request(),
                      make_request(sys_flag=TRANSACTION_ROLLBACK), make_request(sys_flag=TRANSACTION_COMMIT)],
                     1)
    assert [r.queue_offset for r in res] == [0, 0, 0, 1]
    assert log.queue_offsets[("T", 0)] == 2
    log.close()


def test_roll_writes_blank_marker_and_never_splits_a_group(tmp_path):
    log = open_log(tmp_path)
    size = len(make_request().data)
    per_file = (FILE_SIZE - 8) // size
    for _ in range(per_file - 1):
        log.append([make_request()], 1)
    pos = log.committed_offset
    res = log.append([make_request(), make_request()], 2)     # two do not fit with the 8-byte marker
    assert res[0].phys_offset == FILE_SIZE and res[1].phys_offset == FILE_SIZE + size
    head = log.mfq.files[0].read(pos - 0, 8)
    assert struct.unpack(">iI", head) == (FILE_SIZE - pos, BLANK_MAGIC)
    items = list(log.scan(0, check_crc=True))
    assert isinstance(items[-1], End) and items[-1].phys_offset == log.committed_offset
    blanks = [i for i in items if isinstance(i, Blank)]
    assert blanks == [Blank(pos, FILE_SIZE - pos)]
    assert len([i for i in items if isinstance(i, Record)]) == per_file + 1
    assert [r.phys_offset for r in log.iter_records(0)] == [i.phys_offset for i in items
                                                             if isinstance(i, Record)]
    log.close()


def test_size_limits(tmp_path):
    log = open_log(tmp_path, max_message_size=1000)
    with pytest.raises(MessageIllegalError, match="body"):
        log.append([make_request(body=b"y" * 1001)], 1)
    with pytest.raises(MessageIllegalError, match="group"):
        log.append([make_request(body=b"y" * 1000) for _ in range(4)], 1)
    bad = make_request()
    bad.data[0:4] = struct.pack(">i", 5)
    with pytest.raises(MessageIllegalError):
        log.append([bad], 1)
    assert log.committed_offset == 0 and log.queue_offsets == {}
    big = open_log(tmp_path / "big", max_message_size=100)
    big.record_size_max = 150
    with pytest.raises(MessageIllegalError, match="64 KiB"):
        big.append([make_request(body=b"z" * 60, topic="T" * 100)], 1)
    log.close()
    big.close()


def test_read_record_bounds(tmp_path):
    log = open_log(tmp_path)
    res = log.append([make_request()], 1)[0]
    assert log.read_record(res.phys_offset) is not None
    assert log.read_record(res.phys_offset + 1) is None
    assert log.read_record(log.committed_offset) is None
    assert log.read_record(res.phys_offset, limit=res.size - 1) is None
    assert log.store_timestamp_at(0) == 1
    log.close()


def test_flush_advances_flushed_offset(tmp_path):
    io = FaultyFileIO()
    log = open_log(tmp_path, io)
    log.append([make_request()], 1)
    assert log.flushed_offset == 0
    syncs = io.fdatasync_count
    assert log.flush() == log.committed_offset
    assert io.fdatasync_count == syncs + 1
    assert log.flush() == log.committed_offset and io.fdatasync_count == syncs + 1
    log.close()


def test_enospc_is_disk_full_and_acknowledges_nothing(tmp_path):
    io = FaultyFileIO()
    log = open_log(tmp_path, io)
    log.append([make_request()], 1)
    committed = log.committed_offset
    io.fail_enospc_after(50)
    with pytest.raises(DiskFullError):
        log.append([make_request(), make_request()], 2)
    assert log.committed_offset == committed and log.queue_offsets[("T", 0)] == 1
    assert log.read_record(committed) is None
    io.clear_enospc()
    res = log.append([make_request()], 3)
    assert res[0].phys_offset == committed and res[0].queue_offset == 1
    log.close()


def test_enospc_creating_next_file(tmp_path):
    io = FaultyFileIO()
    log = open_log(tmp_path, io)
    log.append([make_request()], 1)
    io.fail_enospc_after(0)
    with pytest.raises(DiskFullError):
        log.prepare_next_file()
    io.clear_enospc()
    assert log.prepare_next_file() is True
    log.close()


def test_eio_on_fdatasync_poisons_the_log(tmp_path):
    io = FaultyFileIO()
    log = open_log(tmp_path, io)
    log.append([make_request()], 1)
    io.fail_next_fdatasync()
    with pytest.raises(StoreError, match="fdatasync"):
        log.flush()
    assert log.flushed_offset == 0 and log.failed
    with pytest.raises(StoreError):
        log.append([make_request()], 2)
    with pytest.raises(StoreError):
        log.flush()
    log.close()


def test_scan_reports_torn_and_corrupt(tmp_path):
    io = FaultyFileIO()
    log = open_log(tmp_path, io)
    res = log.append([make_request() for _ in range(3)], 1)
    path = log.mfq.files[0].path
    # a bit flip in the last body: CRC mismatch followed by zeros = torn tail
    io.flip_bit(path, res[2].phys_offset + 100, 1)
    items = list(log.scan(0, check_crc=True))
    assert isinstance(items[-1], TornTail) and items[-1].phys_offset == res[2].phys_offset
    assert "CRC" in items[-1].reason
    assert isinstance(list(log.scan(0, check_crc=False))[-1], End), "without CRC the flip passes"
    # damage in the middle: corrupt, followed by more data
    io.flip_bit(path, res[1].phys_offset + 5, 3)
    items = list(log.scan(0, check_crc=True))
    assert [type(i) for i in items] == [Record, Corrupt]
    assert "magic" in items[-1].reason
    log.close()


def test_scan_size_mismatch(tmp_path):
    log = open_log(tmp_path)
    res = log.append([make_request() for _ in range(2)], 1)
    fd = log.mfq.files[0].fd
    RealFileIO().pwrite(fd, struct.pack(">i", res[0].size + 1), res[0].phys_offset)
    items = list(log.scan(0))
    assert isinstance(items[0], Corrupt) and "disagrees" in items[0].reason
    log.close()


def test_reader_commitlog_reads_up_to_limit(tmp_path):
    writer = open_log(tmp_path)
    res = [writer.append([make_request()], 1)[0] for _ in range(40)]
    reader = CommitLog(str(tmp_path / "commitlog"), FILE_SIZE, RealFileIO(), writable=False)
    reader.load()
    limit = res[20].phys_offset
    got = [r.phys_offset for r in reader.iter_records(0, limit)]
    assert got == [r.phys_offset for r in res[:20]]
    assert reader.read_record(res[20].phys_offset, limit) is None
    with pytest.raises(AssertionError):
        reader.append([make_request()], 1)
    reader.close()
    writer.close()


def test_delete_files_before(tmp_path):
    log = open_log(tmp_path)
    for _ in range(100):
        log.append([make_request()], 1)
    n = len(log.mfq.files)
    assert n >= 4
    deleted = log.delete_files_before(2 * FILE_SIZE)
    assert len(deleted) == 2 and log.min_phys_offset == 2 * FILE_SIZE
    assert log.read_record(0) is None
    assert len(log.delete_files_before(10**12)) == n - 3, "never the file being written"
    log.close()


def test_ipv6_hosts_records(tmp_path):
    from rocketpy.protocol.message import SysFlag

    log = open_log(tmp_path)
    flag = int(SysFlag.BORNHOST_V6 | SysFlag.STOREHOST_V6)
    rec = MessageRecord(topic="T6", body=b"v6" * 20, sys_flag=flag, born_host="::1", store_host="fe80::1")
    req = PutRequest("T6", 0, flag, encode_record(rec))
    res = log.append([make_request(), req], 77)
    got = decode_record(log.read_record(res[1].phys_offset), check_crc=True)
    assert (got.phys_offset, got.queue_offset, got.store_timestamp) == (res[1].phys_offset, 0, 77)
    assert got.born_host == "::1" and got.store_host == "fe80::1"
    assert log.store_timestamp_at(res[1].phys_offset) == 77
    assert [type(i) for i in log.scan(0, check_crc=True)] == [Record, Record, End]
    log.close()


def test_reader_scan_follows_new_files(tmp_path):
    writer = open_log(tmp_path)
    writer.append([make_request()], 1)
    reader = CommitLog(str(tmp_path / "commitlog"), FILE_SIZE, RealFileIO(), writable=False)
    reader.load()
    for _ in range(30):
        writer.append([make_request()], 1)
    assert len(writer.mfq.files) > 1 and len(reader.mfq.files) == 1
    got = [r.phys_offset for r in reader.iter_records(0, writer.committed_offset)]
    assert got == [r.phys_offset for r in writer.iter_records(0)]
    assert reader.read_record(got[-1], writer.committed_offset) is not None
    reader.close()
    writer.close()
