"""Seeded crash loop over the file store with fault-injecting I/O.

Each run appends hundreds of random groups with random flushes, dispatches,
ENOSPC and EIO faults, and crashes at random points (power cut that loses
every unsynced write, or kill -9 that keeps the page cache, either with the
last CommitLog write torn). After every recovery:

- every record acknowledged after an fdatasync is readable at its phys offset
  with its queue offset, topic and body;
- after a kill -9 without a tear, every appended record survives;
- the whole log scans clean with CRC checks (no torn record is visible), each
  ConsumeQueue entry points at a record with its queue offset, and queue
  offsets continue where they stopped;
- the read-only verifier finds nothing wrong.

Replay a failure with ROCKETPY_SEED=<seed> (the seed is printed).
"""

from __future__ import annotations

import dataclasses
import os
import random

import pytest

from rocketpy.clock import FakeClock
from rocketpy.config import StoreConfig
from rocketpy.errors import DiskFullError, StoreError
from rocketpy.protocol.message import (
    TRANSACTION_PREPARED,
    MessageRecord,
    decode_record,
    encode_record,
    format_properties,
    gets_queue_entry,
)
from rocketpy.store.api import GetStatus, PutRequest
from rocketpy.store.commitlog import Blank, End, Record
from rocketpy.store.file_store import FileStore
from rocketpy.store.io import FaultyFileIO
from rocketpy.store.verify import verify_store

CL_SIZE = 4096
CQ_SIZE = 8 * 20
TOPICS = ("A", "B", "%RETRY%g")
FIXED_SEEDS = (1, 2, 3, 20261123)


@dataclasses.dataclass(frozen=True)
class Sent:
    phys_offset: int
    queue_offset: int
    topic: str
    queue_id: int
    body: bytes


def _request(rng: random.Random, seq: int) -> tuple[PutRequest, str, int, bytes]:
    topic = rng.choice(TOPICS)
    qid = rng.randrange(3)
    body = f"{seq}:".encode() + rng.randbytes(rng.randrange(0, 500))
    sys_flag = TRANSACTION_PREPARED if rng.random() < 0.05 else 0
    rec = MessageRecord(topic=topic, body=body, queue_id=qid, sys_flag=sys_flag,
                        properties=format_properties({"TAGS": f"t{seq % 3}", "KEYS": f"k{seq}"}))
    return PutRequest(topic, qid, sys_flag, encode_record(rec)), topic, qid, body


def _check_store(store: FileStore, acked: dict[int, Sent], must_survive: dict[int, Sent],
                 cfg: StoreConfig) -> None:
    for sent in list(acked.values()) + list(must_survive.values()):
        raw = store.read_record(sent.phys_offset)
        assert raw is not None, f"acknowledged record at {sent.phys_offset} lost"
        rec = decode_record(raw, check_crc=True)
        assert (rec.phys_offset, rec.queue_offset, rec.topic, rec.queue_id, rec.body) == (
            sent.phys_offset, sent.queue_offset, sent.topic, sent.queue_id, sent.body)
    # the whole log scans clean, with CRCs: no torn record is visible
    per_queue: dict[tuple[str, int], int] = {}
    items = list(store.commitlog.scan(store.min_phys_offset, store.committed_offset, check_crc=True))
    assert isinstance(items[-1], End) and items[-1].phys_offset == store.committed_offset
    for item in items[:-1]:
        assert isinstance(item, (Record, Blank)), item
        if isinstance(item, Record):
            rec = decode_record(item.data, check_crc=True)
            if gets_queue_entry(rec.sys_flag):
                key = (rec.topic, rec.queue_id)
                assert rec.queue_offset == per_queue.get(key, 0), "queue offsets are consecutive"
                per_queue[key] = rec.queue_offset + 1
    # every queue is complete and points at the right records
    for key, count in per_queue.items():
        assert store.max_queue_offset(*key) == count, key
        cq = store.cqs.get(*key)
        assert cq is not None
        for qoff in range(cq.min_offset, count):
            entry = cq.entry(qoff)
            assert entry is not None
            rec = decode_record(store.read_record(entry[0]))
            assert (rec.topic, rec.queue_id, rec.queue_offset, rec.size) == (*key, qoff, entry[1])
    assert {k: v for k, v in store.commitlog.queue_offsets.items() if v} == per_queue
    result = verify_store(cfg.store_path_root_dir)
    assert result.ok, [str(p) for p in result.problems[:5]]


def run_crash_loop(seed: int, tmp_path, rounds: int = 12, steps: int = 80) -> int:
    print(f"crash loop seed={seed} (replay: ROCKETPY_SEED={seed})")
    rng = random.Random(seed)
    cfg = StoreConfig(max_hash_slot_num=64, max_index_num=256, store_path_root_dir=str(tmp_path / f"store-{seed}"),
                      mapped_file_size_commitlog=CL_SIZE, mapped_file_size_consumequeue=CQ_SIZE)
    io = FaultyFileIO()
    clock = FakeClock()
    store = FileStore.open(cfg, io, clock)
    acked: dict[int, Sent] = {}
    pending: dict[int, Sent] = {}
    seq = 0
    appended = 0
    for _round in range(rounds):
        for _ in range(steps):
            clock.advance(rng.randrange(0, 3))
            roll = rng.random()
            if roll < 0.6:
                group = []
                meta = []
                for _ in range(rng.randint(1, 4)):
                    seq += 1
                    req, topic, qid, body = _request(rng, seq)
                    group.append(req)
                    meta.append((topic, qid, body))
                if rng.random() < 0.03:
                    io.fail_enospc_after(rng.randrange(0, 600))
                try:
                    results = store.append(group)
                except DiskFullError:
                    io.clear_enospc()
                    continue
                io.clear_enospc()
                appended += len(results)
                for res, (topic, qid, body) in zip(results, meta, strict=True):
                    pending[res.phys_offset] = Sent(res.phys_offset, res.queue_offset, topic, qid, body)
            elif roll < 0.75:
                if rng.random() < 0.03 and store.committed_offset > store.flushed_offset:
                    io.fail_next_fdatasync()
                    with pytest.raises(StoreError):
                        store.flush()
                    break                      # the log refuses writes: crash and recover
                store.flush()
                acked.update(pending)          # SYNC_FLUSH acknowledges here
                pending.clear()
            elif roll < 0.88:
                store.dispatch()
            elif roll < 0.94:
                store.flush_consumequeues()
            else:
                store.prepare_next_file()
        # crash (or, now and then, a clean stop)
        mode = rng.choice(("power", "kill", "power-torn", "kill-torn", "clean"))
        failed = store.commitlog.failed is not None
        if mode == "clean" and not failed:
            store.close()
        else:
            store.abandon()
        cl_files = sorted(os.listdir(os.path.join(cfg.store_path_root_dir, "commitlog")))
        torn_path = os.path.join(cfg.store_path_root_dir, "commitlog", cl_files[-1]) if cl_files else None
        io.crash(lose_unsynced=mode.startswith("power") or mode == "clean",  # close() syncs all
                 torn_keep_bytes=rng.randrange(1, 200) if mode.endswith("torn") else None,
                 torn_path=torn_path)
        store = FileStore.open(cfg, io, clock)
        assert store.recovery_report.abnormal == (mode != "clean" or failed)
        must_survive = dict(pending) if mode in ("kill", "clean") and not failed else {}
        _check_store(store, acked, must_survive, cfg)
        # whatever survived is now on disk (recovery syncs), so it counts as acknowledged
        for phys, sent in pending.items():
            raw = store.read_record(phys)
            if raw is not None and decode_record(raw).body == sent.body:
                acked[phys] = sent
        pending.clear()
    # a pull reads every queue from its min offset
    store.dispatch()
    for topic, qids in store.queues().items():
        for qid in qids:
            res = store.get_message(topic, qid, store.min_queue_offset(topic, qid), 32)
            assert res.status in (GetStatus.FOUND, GetStatus.OFFSET_OVERFLOW_ONE,
                                  GetStatus.NO_MESSAGE_IN_QUEUE)
    store.close()
    return appended


@pytest.mark.parametrize("seed", FIXED_SEEDS)
def test_crash_loop_fixed_seeds(seed, tmp_path):
    assert run_crash_loop(seed, tmp_path) > 100


def test_crash_loop_random_seed(tmp_path):
    seed = int(os.environ.get("ROCKETPY_SEED", random.SystemRandom().randrange(1 << 32)))
    assert run_crash_loop(seed, tmp_path) > 100
