"""The read-only store verifier and `rocketpy store` CLI, on stores built by hand.

The stores here are written byte by byte with protocol.message (encode_record,
patch_record) and raw file writes, never through the engine, so the verifier
is judged against the format, not against the code it is meant to judge.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rocketpy.cli.store import store_app
from rocketpy.protocol import message as m
from rocketpy.store import verify as v

FILE_SIZE = 4096
CQ_FILE_SIZE = 20 * 8            # 8 entries per ConsumeQueue file, so queues roll too
INDEX_SLOTS = 16
INDEX_ENTRIES = 256
T0 = 1_700_000_000_000


class HandStore:
    """Builds a store directory the way RocketMQ lays it out (§2-§5), in memory, then writes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[bytearray] = [bytearray(FILE_SIZE)]
        self.file_pos = 0
        self.queue_next: dict[tuple[str, int], int] = {}
        self.cq: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
        self.records: list[tuple[int, int]] = []        # (phys, size)
        self.index_entries: list[tuple[int, int, int]] = []   # (keyHash, phys, store_ts)
        self.now = T0

    def put(self, topic: str, queue_id: int, body: bytes, *, tags: str | None = None,
            keys: str | None = None, uniq: str | None = None, sys_flag: int = 0,
            delay_tags_code: int | None = None) -> int:
        props = {}
        if tags:
            props[m.PROPERTY_TAGS] = tags
        if keys:
            props[m.PROPERTY_KEYS] = keys
        if uniq:
            props[m.PROPERTY_UNIQ_KEY] = uniq
        rec = m.MessageRecord(topic=topic, body=body, queue_id=queue_id, sys_flag=sys_flag,
                              born_timestamp=self.now - 5, born_host="10.0.0.7", born_port=40001,
                              store_host="10.0.0.1", store_port=10911,
                              properties=m.format_properties(props))
        data = m.encode_record(rec)
        if len(data) + 8 > FILE_SIZE - self.file_pos:
            struct.pack_into(">iI", self.files[-1], self.file_pos, FILE_SIZE - self.file_pos,
                             m.BLANK_MAGIC)
            self.files.append(bytearray(FILE_SIZE))
            self.file_pos = 0
        phys = (len(self.files) - 1) * FILE_SIZE + self.file_pos
        key = (topic, queue_id)
        queue_offset = self.queue_next.get(key, 0) if m.gets_queue_entry(sys_flag) else 0
        self.now += 1500
        m.patch_record(data, 0, queue_offset=queue_offset, phys_offset=phys, store_timestamp=self.now)
        self.files[-1][self.file_pos:self.file_pos + len(data)] = data
        self.file_pos += len(data)
        self.records.append((phys, len(data)))
        if m.gets_queue_entry(sys_flag):
            self.queue_next[key] = queue_offset + 1
            tags_code = delay_tags_code if delay_tags_code is not None else m.tags_code(tags)
            self.cq.setdefault(key, []).append((phys, len(data), tags_code))
        if m.transaction_type(sys_flag) != m.TRANSACTION_ROLLBACK:
            words = [w for w in (keys or "").split(" ") if w] + ([uniq] if uniq else [])
            for w in words:
                self.index_entries.append((m.index_key_hash(f"{topic}#{w}"), phys, self.now))
        return phys

    def write(self) -> Path:
        cl = self.root / "commitlog"
        cl.mkdir(parents=True)
        for i, data in enumerate(self.files):
            (cl / f"{i * FILE_SIZE:020d}").write_bytes(bytes(data))
        for (topic, qid), entries in self.cq.items():
            qdir = self.root / "consumequeue" / topic / str(qid)
            qdir.mkdir(parents=True)
            raw = b"".join(struct.pack(">qiq", *e) for e in entries)
            for start in range(0, max(len(raw), 1), CQ_FILE_SIZE):
                chunk = raw[start:start + CQ_FILE_SIZE]
                (qdir / f"{start:020d}").write_bytes(chunk + bytes(CQ_FILE_SIZE - len(chunk)))
        if self.index_entries:
            (self.root / "index").mkdir()
            (self.root / "index" / "20231114221320000").write_bytes(self._index_file())
        (self.root / "checkpoint").write_bytes(struct.pack(">qqq", self.now, self.now, 0)
                                               + bytes(4096 - 24))
        return self.root

    def _index_file(self) -> bytes:
        slots = [0] * INDEX_SLOTS
        entries = bytearray(INDEX_ENTRIES * 20)
        begin_ts = end_ts = begin_phys = end_phys = 0
        count, used_slots = 1, 0
        for key_hash, phys, ts in self.index_entries:
            slot = key_hash % INDEX_SLOTS
            prev = slots[slot]
            diff = 0 if begin_ts <= 0 else max(0, (ts - begin_ts) // 1000)
            struct.pack_into(">iqii", entries, count * 20, key_hash, phys, diff, prev)
            if prev == 0:
                used_slots += 1
            slots[slot] = count
            if count == 1:
                begin_ts, begin_phys = ts, phys
            end_ts, end_phys = ts, phys
            count += 1
        header = struct.pack(">qqqqii", begin_ts, end_ts, begin_phys, end_phys, used_slots, count)
        return header + struct.pack(f">{INDEX_SLOTS}i", *slots) + bytes(entries)


def build_clean(root: Path) -> HandStore:
    s = HandStore(root)
    for i in range(30):
        s.put("TopicA", i % 2, f"hello {i}".encode() * 20, tags="TagA" if i % 3 else "TagB",
              keys=f"order-{i} k{i}", uniq=f"UNIQ{i:04d}")
    s.put("TopicB", 0, b"half", sys_flag=m.TRANSACTION_PREPARED, uniq="HALF1")
    s.put("TopicB", 0, b"committed", sys_flag=m.TRANSACTION_COMMIT, uniq="COMMIT1")
    s.put("SCHEDULE_TOPIC_XXXX", 2, b"later", tags="TagA", delay_tags_code=T0 + 99_000)
    s.put("TopicA", 0, bytes(range(256)), tags="Bin")
    s.write()
    return s


def cl_file(root: Path, n: int = 0) -> Path:
    return root / "commitlog" / f"{n * FILE_SIZE:020d}"


def patch(path: Path, pos: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[pos:pos + len(data)] = data
    path.write_bytes(bytes(raw))


def kinds(result: v.VerifyResult) -> set[str]:
    return {p.what for p in result.problems}


@pytest.fixture
def store(tmp_path: Path) -> HandStore:
    return build_clean(tmp_path / "store")


def in_file(s: HandStore, n: int) -> list[tuple[int, int]]:
    return [(p, size) for p, size in s.records if n * FILE_SIZE <= p < (n + 1) * FILE_SIZE]


# --- clean store ---------------------------------------------------------------------


def test_clean_store_verifies_ok(store: HandStore) -> None:
    result = v.verify_store(store.root)
    assert result.ok, [str(p) for p in result.problems]
    c = result.counters
    assert len(store.files) >= 3, "the test store must roll CommitLog files"
    assert c.commitlog_files == len(store.files)
    assert c.records == len(store.records)
    assert c.blanks == len(store.files) - 1
    assert c.record_bytes == sum(size for _, size in store.records)
    assert c.cq_entries == sum(len(e) for e in store.cq.values())
    assert c.index_entries == len(store.index_entries)
    assert c.index_files == 1
    assert result.commitlog_end_offset == store.records[-1][0] + store.records[-1][1]
    assert result.dispatched_offset == result.commitlog_end_offset
    assert result.checkpoint == {"physic_msg_timestamp": store.now, "logics_msg_timestamp": store.now,
                                 "index_msg_timestamp": 0}


def test_empty_store_and_preallocated_next_file(tmp_path: Path) -> None:
    (tmp_path / "commitlog").mkdir()
    assert v.verify_store(tmp_path).ok
    s = HandStore(tmp_path / "s")
    s.put("T", 0, b"x")
    s.write()
    (s.root / "commitlog" / f"{FILE_SIZE:020d}").write_bytes(bytes(FILE_SIZE))  # warm next file
    result = v.verify_store(s.root)
    assert result.ok, [str(p) for p in result.problems]


def test_unreadable_dirs_raise(tmp_path: Path) -> None:
    with pytest.raises(v.UnreadableStoreError):
        v.verify_store(tmp_path / "missing")
    with pytest.raises(v.UnreadableStoreError):
        v.verify_store(tmp_path)          # exists, but holds no store


def test_abort_marker_is_a_note_not_a_problem(store: HandStore) -> None:
    (store.root / "abort").write_bytes(b"")
    result = v.verify_store(store.root)
    assert result.ok and result.abort_present
    assert any("abort" in n for n in result.notes)


def test_verifier_never_writes(store: HandStore) -> None:
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in store.root.rglob("*") if p.is_file()}
    patch(cl_file(store.root), store.records[2][0] + 100, b"\xff")
    before[cl_file(store.root)] = (cl_file(store.root).read_bytes(),
                                   cl_file(store.root).stat().st_mtime_ns)
    v.verify_store(store.root)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in store.root.rglob("*") if p.is_file()}
    assert after == before


# --- CommitLog corruption --------------------------------------------------------------


def test_bit_flip_in_body_is_a_crc_problem(store: HandStore) -> None:
    phys, _ = store.records[3]
    path = cl_file(store.root)
    raw = path.read_bytes()
    patch(path, phys + 88, bytes([raw[phys + 88] ^ 0x01]))
    result = v.verify_store(store.root)
    crc = [p for p in result.problems if p.what == "crc"]
    assert len(crc) == 1 and crc[0].file_pos == phys and crc[0].file == "commitlog/" + path.name
    assert kinds(result) == {"crc"}, "a CRC error must not cascade"
    assert v.verify_store(store.root, check_crc=False).ok


def test_bad_magic_mid_file_is_reported_and_walk_resumes(store: HandStore) -> None:
    phys, _ = store.records[2]
    patch(cl_file(store.root), phys + 4, b"\x12\x34\x56\x78")
    result = v.verify_store(store.root)
    assert "bad-magic" in kinds(result)
    assert [p.file_pos for p in result.problems if p.what == "bad-magic"] == [phys]
    # the records after it were still walked, and the lost one misses its queue entry
    assert result.counters.records == len(store.records) - 1
    assert "cq-not-record-start" in kinds(result) or "cq-past-end" in kinds(result)


def test_torn_tail_is_reported(store: HandStore) -> None:
    last_file = len(store.files) - 1
    end = store.file_pos
    patch(cl_file(store.root, last_file), end, b"\x00\x00\x01\x00" + b"\xde\xad" * 40)
    result = v.verify_store(store.root)
    torn = [p for p in result.problems if p.what == "torn-tail"]
    assert len(torn) == 1 and torn[0].file_pos == end
    assert result.counters.records == len(store.records)
    assert result.commitlog_end_offset == last_file * FILE_SIZE + end


def test_half_written_last_record_is_a_torn_tail(store: HandStore) -> None:
    phys, size = store.records[-1]
    file_no = phys // FILE_SIZE
    pos = phys - file_no * FILE_SIZE
    patch(cl_file(store.root, file_no), pos + size // 2, bytes(size - size // 2))
    result = v.verify_store(store.root)
    assert "torn-tail" in kinds(result)
    assert result.commitlog_end_offset == phys


def test_wrong_physical_offset_field(store: HandStore) -> None:
    phys, _ = store.records[5]
    patch(cl_file(store.root), phys + 28, struct.pack(">q", phys + 8))
    result = v.verify_store(store.root)
    assert kinds(result) == {"phys-offset"}
    assert result.problems[0].file_pos == phys


def test_size_field_disagreeing_with_fields(store: HandStore) -> None:
    phys, size = store.records[1]
    patch(cl_file(store.root), phys, struct.pack(">i", size + 4))
    result = v.verify_store(store.root)
    assert "size-mismatch" in kinds(result)


def test_missing_blank_marker(store: HandStore) -> None:
    file0 = in_file(store, 0)
    end = file0[-1][0] + file0[-1][1]
    patch(cl_file(store.root), end, bytes(8))
    result = v.verify_store(store.root)
    assert "missing-blank" in kinds(result)


def test_blank_with_wrong_size(store: HandStore) -> None:
    file0 = in_file(store, 0)
    end = file0[-1][0] + file0[-1][1]
    patch(cl_file(store.root), end, struct.pack(">i", 8))
    assert "blank" in kinds(v.verify_store(store.root))


def test_queue_offset_gap_in_the_log(store: HandStore) -> None:
    phys, _ = store.records[4]          # TopicA:0, queue offset 2
    patch(cl_file(store.root), phys + 20, struct.pack(">q", 7))
    result = v.verify_store(store.root)
    assert "queue-offset" in kinds(result) and "cq-queue-offset" in kinds(result)


def test_wrong_file_size(store: HandStore) -> None:
    path = cl_file(store.root, 1)
    path.write_bytes(path.read_bytes() + bytes(100))
    result = v.verify_store(store.root)
    assert any(p.what == "file-size" and p.file.endswith(path.name) for p in result.problems)


def test_non_contiguous_and_bad_names(store: HandStore) -> None:
    last = len(store.files) - 1
    cl_file(store.root, last).rename(store.root / "commitlog" / f"{(last + 1) * FILE_SIZE:020d}")
    (store.root / "commitlog" / "junk.tmp").write_bytes(b"")
    result = v.verify_store(store.root)
    assert {"file-gap", "file-name"} <= kinds(result)


def test_name_not_multiple_of_size(tmp_path: Path) -> None:
    s = HandStore(tmp_path)
    s.put("T", 0, b"x")
    s.write()
    cl_file(tmp_path).rename(tmp_path / "commitlog" / f"{100:020d}")
    assert "file-name" in kinds(v.verify_store(tmp_path))


# --- ConsumeQueue ------------------------------------------------------------------------


def cq_file(root: Path, topic: str, qid: int, n: int = 0) -> Path:
    return root / "consumequeue" / topic / str(qid) / f"{n * CQ_FILE_SIZE:020d}"


def test_cq_entry_pointing_mid_record(store: HandStore) -> None:
    phys, _, _ = store.cq[("TopicA", 0)][1]
    patch(cq_file(store.root, "TopicA", 0), 20, struct.pack(">q", phys + 10))
    result = v.verify_store(store.root)
    mid = [p for p in result.problems if p.what == "cq-not-record-start"]
    assert len(mid) == 1 and mid[0].file_pos == 20 and f"phys {phys}" in mid[0].detail
    assert "cq-missing" in kinds(result)


def test_cq_size_mismatch(store: HandStore) -> None:
    _, size, _ = store.cq[("TopicA", 1)][0]
    patch(cq_file(store.root, "TopicA", 1), 8, struct.pack(">i", size + 1))
    assert kinds(v.verify_store(store.root)) == {"cq-size"}


def test_cq_tags_mismatch_and_schedule_topic_exempt(store: HandStore) -> None:
    patch(cq_file(store.root, "TopicA", 1), 12, struct.pack(">q", 12345))
    assert kinds(v.verify_store(store.root)) == {"cq-tags"}


def test_cq_entry_in_the_wrong_queue_directory(store: HandStore) -> None:
    src = store.root / "consumequeue" / "TopicB"
    src.rename(store.root / "consumequeue" / "TopicC")
    assert {"cq-queue", "cq-missing"} <= kinds(v.verify_store(store.root))


def test_missing_cq_entry(store: HandStore) -> None:
    # drop TopicB's only entry; TopicA entries reach past it, so dispatch passed it
    path = cq_file(store.root, "TopicB", 0)
    path.write_bytes(bytes(CQ_FILE_SIZE))
    result = v.verify_store(store.root)
    missing = [p for p in result.problems if p.what == "cq-missing"]
    phys = store.cq[("TopicB", 0)][0][0]
    assert len(missing) == 1 and f"phys {phys}" in missing[0].detail


def test_undispatched_tail_is_a_note(tmp_path: Path) -> None:
    s = HandStore(tmp_path)
    for i in range(3):
        s.put("T", 0, b"m%d" % i)
    s.cq[("T", 0)].pop()                     # dispatcher has not reached the last record yet
    s.write()
    result = v.verify_store(tmp_path)
    assert result.ok and any("dispatch lags" in n for n in result.notes)


def test_cq_blank_fill_entries_are_skipped(tmp_path: Path) -> None:
    s = HandStore(tmp_path)
    s.put("T", 0, b"x")
    s.write()
    # a queue that starts at logical offset 2: RocketMQ fills 0 and 1 with blank entries
    phys, size, tags = s.cq[("T", 0)][0]
    patch(s.root / "commitlog" / f"{0:020d}", phys + 20, struct.pack(">q", 2))
    blank = struct.pack(">qiq", 0, 0x7FFFFFFF, 0)
    cq_file(tmp_path, "T", 0).write_bytes(blank * 2 + struct.pack(">qiq", phys, size, tags)
                                          + bytes(CQ_FILE_SIZE - 60))
    result = v.verify_store(tmp_path)
    assert result.ok, [str(p) for p in result.problems]
    assert result.counters.cq_blank_entries == 2


def test_cq_torn_tail_and_bad_file_size(store: HandStore) -> None:
    path = cq_file(store.root, "TopicB", 0)
    patch(path, 60, b"\x01")
    other = cq_file(store.root, "TopicA", 1)
    other.write_bytes(other.read_bytes()[:-20])
    assert {"cq-torn-tail", "file-size"} <= kinds(v.verify_store(store.root))


def test_cq_entry_past_the_log_end(store: HandStore) -> None:
    path = cq_file(store.root, "TopicB", 0)
    patch(path, 20, struct.pack(">qiq", len(store.files) * FILE_SIZE + 100, 50, 0))
    assert "cq-past-end" in kinds(v.verify_store(store.root))


# --- IndexFile ---------------------------------------------------------------------------


def index_path(store: HandStore) -> Path:
    return store.root / "index" / "20231114221320000"


def test_index_entry_pointing_mid_record(store: HandStore) -> None:
    pos = 40 + INDEX_SLOTS * 4 + 3 * 20
    phys = struct.unpack_from(">q", index_path(store).read_bytes(), pos + 4)[0]
    patch(index_path(store), pos + 4, struct.pack(">q", phys + 1))
    result = v.verify_store(store.root)
    assert {"index-not-record-start", "index-missing"} <= kinds(result)


def test_index_header_and_slot_damage(store: HandStore) -> None:
    patch(index_path(store), 40 + 4 * 3, struct.pack(">i", 10_000))
    assert "index-slot" in kinds(v.verify_store(store.root, index_slot_count=INDEX_SLOTS))
    patch(index_path(store), 36, struct.pack(">i", 0))
    assert "index-header" in kinds(
        v.verify_store(store.root, index_slot_count=INDEX_SLOTS, index_entry_count=INDEX_ENTRIES))


def test_index_key_hash_mismatch(store: HandStore) -> None:
    pos = 40 + INDEX_SLOTS * 4 + 5 * 20
    patch(index_path(store), pos, struct.pack(">i", 7))
    result = v.verify_store(store.root, index_slot_count=INDEX_SLOTS)
    assert "index-key" in kinds(result)


def test_index_geometry_is_inferred(store: HandStore) -> None:
    raw = index_path(store).read_bytes()
    assert v.index_geometry(raw, len(raw)) == (INDEX_SLOTS, INDEX_ENTRIES)
    assert v.index_geometry(raw, len(raw), INDEX_SLOTS) == (INDEX_SLOTS, INDEX_ENTRIES)
    assert v.index_geometry(raw, len(raw), 17) is None


# --- reader / dump -------------------------------------------------------------------------


def test_reader_finds_records_entries_and_index_hits(store: HandStore) -> None:
    with v.StoreReader(store.root) as reader:
        items = list(reader.iter_commitlog())
        recs = [p for _, p in items if isinstance(p, v.ProbeRecord)]
        assert len(recs) == len(store.records)
        entries = list(reader.queue_entries("TopicA", 0))
        assert [e.queue_offset for e in entries] == list(range(len(store.cq[("TopicA", 0)])))
        assert list(reader.queue_entries("TopicA", 0, 3))[0].queue_offset == 3
        hits = reader.query_index("TopicA", "order-7")
        assert [h.phys_offset for h in hits] == [store.records[7][0]]


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(store_app, list(args))
    return result.exit_code, result.output


def test_cli_verify_exit_codes(store: HandStore, tmp_path: Path) -> None:
    code, out = run_cli("verify", str(store.root))
    assert code == 0, out
    assert out.startswith("OK")
    code, out = run_cli("verify", str(tmp_path / "nope"))
    assert code == 2
    phys, _ = store.records[3]
    patch(cl_file(store.root), phys + 90, b"\x00\x00")
    code, out = run_cli("verify", str(store.root))
    assert code == 1 and "PROBLEM" in out and "crc" in out
    code, out = run_cli("verify", "--no-crc", str(store.root))
    assert code == 0, out


def test_cli_verify_json(store: HandStore) -> None:
    patch(cq_file(store.root, "TopicA", 1), 8, struct.pack(">i", 1))
    code, out = run_cli("verify", "--json", str(store.root))
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False and doc["problems"][0]["what"] == "cq-size"
    assert doc["counters"]["records"] == len(store.records)


def test_cli_dump_commitlog(store: HandStore) -> None:
    code, out = run_cli("dump", str(store.root), "--limit", "2")
    assert code == 0, out
    assert "topic=TopicA" in out and "queue_offset=0" in out and "UNIQ_KEY=UNIQ0000" in out
    assert "10.0.0.7:40001" in out and "10.0.0.1:10911" in out and "'hello 0hello 0" in out
    assert out.count("phys=") == 2
    phys = store.records[-1][0]
    code, out = run_cli("dump", str(store.root), "--commitlog", "--from", str(phys), "--json")
    doc = json.loads(out)
    assert doc["records"][0]["phys_offset"] == phys
    assert doc["records"][0]["body_preview_kind"] == "hex"
    assert doc["records"][0]["properties"] == {"TAGS": "Bin"}
    assert doc["records"][-1]["kind"] == "end"


def test_cli_dump_queue_and_index(store: HandStore) -> None:
    code, out = run_cli("dump", str(store.root), "--queue", "TopicA:1", "--from", "2",
                        "--limit", "3", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert [e["queue_offset"] for e in doc["queue"]] == [2, 3, 4]
    phys, size, tags = store.cq[("TopicA", 1)][2]
    assert doc["queue"][0]["phys_offset"] == phys and doc["queue"][0]["size"] == size
    assert doc["queue"][0]["tags_code"] == tags and doc["queue"][0]["record"]["queue_offset"] == 2
    code, out = run_cli("dump", str(store.root), "--index", "k12", "--topic", "TopicA")
    assert code == 0, out
    assert f"phys={store.records[12][0]}" in out and "KEYS=order-12 k12" in out
    code, _ = run_cli("dump", str(store.root), "--index", "k12")
    assert code == 2
    code, _ = run_cli("dump", str(store.root), "--queue", "NoSuch:0")
    assert code == 2
    code, _ = run_cli("dump", str(store.root), "--queue", "bad")
    assert code == 2


def test_cli_help_explains_every_option() -> None:
    code, out = run_cli("dump", "--help")
    assert code == 0
    for opt in ("--commitlog", "--queue", "--index", "--topic", "--from", "--limit", "--json"):
        assert opt in out
    code, out = run_cli("verify", "--help")
    assert "--no-crc" in out and "--json" in out


def test_a_held_store_lock_is_noted(store: HandStore) -> None:
    import fcntl
    import os

    path = store.root / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if v.lock_holder(path) is None:
            pytest.skip("/proc/locks does not show flock locks here")
        result = v.verify_store(store.root)
        assert result.ok and any("in use" in n for n in result.notes)
    finally:
        os.close(fd)
    assert v.lock_holder(path) is None


def test_body_preview_does_not_split_utf8() -> None:
    rec = m.MessageRecord(topic="T", body="é".encode() * 40)
    fields = v.record_fields(0, rec, body_preview_bytes=5)
    assert fields["body_preview_kind"] == "text" and fields["body_preview"] == "éé"


def test_random_damage_never_crashes_the_verifier(tmp_path: Path) -> None:
    """Whatever the bytes, the verifier reports; it never raises (seeded, so a failure replays)."""
    import random
    import shutil

    clean = build_clean(tmp_path / "clean").root
    files = sorted(p for p in clean.rglob("*") if p.is_file())
    rng = random.Random(20261123)
    for round_no in range(60):
        root = tmp_path / f"r{round_no}"
        shutil.copytree(clean, root)
        for _ in range(rng.randint(1, 6)):
            path = root / rng.choice(files).relative_to(clean)
            raw = bytearray(path.read_bytes())
            if not raw:
                continue
            pos = rng.randrange(len(raw))
            n = rng.choice((1, 4, 8, 64))
            raw[pos:pos + n] = bytes(rng.getrandbits(8) for _ in range(len(raw[pos:pos + n])))
            path.write_bytes(bytes(raw))
        result = v.verify_store(root)
        assert result.counters.records >= 0, f"seed 20261123 round {round_no}"
        shutil.rmtree(root)


def test_store_after_retention_deleted_the_first_file(store: HandStore) -> None:
    cl_file(store.root, 0).unlink()
    result = v.verify_store(store.root)
    assert result.ok, [str(p) for p in result.problems]
    assert result.commitlog_min_offset == FILE_SIZE
    assert result.counters.cq_expired_entries == sum(
        1 for entries in store.cq.values() for phys, _, _ in entries if phys < FILE_SIZE)


def test_register_adds_the_store_group_to_a_root_app(store: HandStore) -> None:
    import typer

    from rocketpy.cli import store as store_cli

    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """root"""

    store_cli.register(root)
    result = CliRunner().invoke(root, ["store", "verify", str(store.root)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK")
