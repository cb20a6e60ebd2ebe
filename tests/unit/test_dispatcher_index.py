"""The dispatcher builds the IndexFile; the workers' StoreReader queries it read-only."""

from __future__ import annotations

import os

from rocketpy.broker.dispatcher import Dispatcher
from rocketpy.config import FlushDiskType
from rocketpy.protocol.message import MessageRecord, encode_record, format_properties
from rocketpy.store.file_store import StoreReader
from rocketpy.store.verify import verify_store
from tests.unit.test_writer_dispatcher import Rig

FAR = 1 << 62
SLOTS, ENTRIES = 16, 8          # 7 entries per index file


def keyed(topic: str, body: bytes, keys: str, uniq: str) -> bytes:
    props = format_properties({"KEYS": keys, "UNIQ_KEY": uniq})
    return bytes(encode_record(MessageRecord(topic=topic, body=body, queue_id=0, properties=props,
                                             born_host="127.0.0.1", born_port=5000, store_port=10911)))


def make_rig(tmp_path) -> Rig:
    return Rig(tmp_path, FlushDiskType.ASYNC_FLUSH, max_hash_slot_num=SLOTS, max_index_num=ENTRIES)


def close(rig: Rig) -> None:
    # The rig's FileStore shares the writer's CommitLog object in this one process; its own index
    # view is stale, so it must not dispatch on close (in the broker it lives in the supervisor).
    assert rig.dispatcher.index is not None
    rig.dispatcher.index.close()
    rig.dispatcher.cqs.close()
    rig.dispatcher.commitlog.close()
    rig.store.abandon()


def put_keyed(rig: Rig, n: int, start: int = 0) -> dict[bytes, int]:
    """Records m<i> with KEYS k<i % 2> and UNIQ_KEY UNIQ<i>, written and dispatched: body -> phys."""
    phys: dict[bytes, int] = {}
    for i in range(start, start + n):
        rid = rig.put("T", 0, [keyed("T", b"m%d" % i, f"k{i % 2}", f"UNIQ{i:04d}")])
        assert rig.writer.turn()
        phys[b"m%d" % i] = rig.answers()[rid].first_phys_offset
    assert rig.dispatcher.turn()
    return phys


def test_dispatcher_indexes_and_reader_queries(tmp_path) -> None:
    rig = make_rig(tmp_path)
    try:
        assert rig.dispatcher.index is not None
        phys = put_keyed(rig, 10)                        # 20 entries: 3 index files
        committed = rig.sup.committed_offset
        reader = StoreReader(rig.config)
        evens = sorted(phys[b"m%d" % i] for i in range(0, 10, 2))
        assert reader.query_by_key("T", "k0", 64, 0, FAR, committed_offset=committed) == evens
        assert reader.query_by_key("T", "UNIQ0007", 32, 0, FAR) == [phys[b"m7"]]
        assert reader.query_by_key("T", "k0", 2, 0, FAR) == evens[-2:]            # newest first, capped
        assert reader.query_by_key("T", "k0", 64, 0, FAR, committed_offset=evens[2]) == evens[:2]
        assert reader.query_by_key("T", "nope", 64, 0, FAR) == []
        assert reader.query_by_key("Other", "k0", 64, 0, FAR) == []
        assert reader.index_last_update()[1] == phys[b"m9"]
        index_dir = os.path.join(rig.config.store_path_root_dir, "index")
        assert len(os.listdir(index_dir)) == 3
        # more records: a fourth file; the reader lists the directory again on every query
        phys.update(put_keyed(rig, 4, start=10))
        assert reader.query_by_key("T", "UNIQ0013", 32, 0, FAR) == [phys[b"m13"]]
        assert len(os.listdir(index_dir)) == 4
        reader.close()
        rig.dispatcher.index.flush()
        result = verify_store(rig.config.store_path_root_dir, index_slot_count=SLOTS,
                              index_entry_count=ENTRIES)
        assert result.ok, result.summary()
    finally:
        close(rig)


def test_respawned_dispatcher_does_not_index_twice_and_retention_deletes_files(tmp_path) -> None:
    rig = make_rig(tmp_path)
    try:
        phys = put_keyed(rig, 5)
        first = rig.dispatcher
        assert first.index is not None
        count = sum(f.index_count - 1 for f in first.index.files)
        assert count == 10
        first.index.close()
        first.cqs.close()
        # a new dispatcher (respawn) resumes at the queues' end: nothing indexed again
        again = Dispatcher(1, rig.config, rig.control_buf, rig.qt_buf, rig.dispatcher_bell, [rig.pull_bell])
        again.setup()
        rig.dispatcher = again
        phys.update(put_keyed(rig, 2, start=5))
        assert again.index is not None
        assert sum(f.index_count - 1 for f in again.index.files) == 14
        reader = StoreReader(rig.config)
        committed = rig.sup.committed_offset
        assert reader.query_by_key("T", "k1", 64, 0, FAR) == sorted(phys[b"m%d" % i] for i in (1, 3, 5))
        # retention moved the CommitLog's start: index files wholly below it go (never the newest)
        files = list(again.index.files)
        assert len(files) == 2
        min_phys = files[0].end_phys_offset + 1
        rig.sup.publish_writer(committed_offset=committed, flushed_offset=rig.sup.flushed_offset,
                               flushed_store_ts=0, writer_generation=1, min_phys_offset=min_phys)
        again.turn()
        assert [f.name for f in again.index.files] == [files[1].name]
        assert sorted(os.listdir(os.path.join(rig.config.store_path_root_dir, "index"))) == [files[1].name]
        # m3's UNIQ_KEY closed the first file, its KEYS word opened the second
        assert reader.query_by_key("T", "k1", 64, 0, FAR) == [phys[b"m3"], phys[b"m5"]]
        reader.close()
    finally:
        close(rig)
