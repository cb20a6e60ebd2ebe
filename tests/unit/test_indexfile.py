"""IndexFile / IndexService: layout, collisions, chain walk, time filter, roll, reopen, truncation."""

from __future__ import annotations

import os
import struct

import pytest

from rocketpy.clock import FakeClock
from rocketpy.protocol.message import TRANSACTION_ROLLBACK, index_key_hash, java_string_hash
from rocketpy.store.indexfile import (
    ENTRY,
    HEADER_SIZE,
    IndexFile,
    IndexService,
    KeyHasher,
    index_file_name,
    index_file_name_ms,
    index_file_size,
)
from rocketpy.store.io import RealFileIO

T0 = 1_700_000_000_000
FAR = 1 << 62


def service(tmp_path: os.PathLike[str], clock: FakeClock, slots: int = 4, entries: int = 8) -> IndexService:
    svc = IndexService(os.path.join(tmp_path, "index"), slot_count=slots, entry_count=entries, clock=clock)
    svc.load()
    return svc


def test_file_size_and_name() -> None:
    assert index_file_size(5_000_000, 20_000_000) == 420_000_040
    name = index_file_name(T0 + 123)
    assert len(name) == 17 and name.endswith("123")
    assert index_file_name_ms(name) == T0 + 123


def test_golden_header_bytes(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "f")
    f = IndexFile.create(path, RealFileIO(), 4, 8)
    with open(path, "rb") as fh:
        assert fh.read(HEADER_SIZE) == bytes(36) + b"\x00\x00\x00\x01"
    assert f.put_key("T#a", 0, T0)
    assert f.put_key("T#b", 132, T0 + 5000)
    f.flush()
    with open(path, "rb") as fh:
        raw = fh.read(os.path.getsize(path))
    assert len(raw) == 40 + 4 * 4 + 8 * 20
    assert raw[:HEADER_SIZE].hex() == (
        "0000018bcfe56800"      # beginTimestamp
        "0000018bcfe57b88"      # endTimestamp (T0 + 5 s)
        "0000000000000000"      # beginPhyOffset
        "0000000000000084"      # endPhyOffset 132
        "00000002"              # hashSlotCount
        "00000003")             # indexCount (next entry number)
    # slot of T#a (hash 81906 % 4 == 2) points at entry 1; T#b (slot 3) at entry 2
    assert struct.unpack_from(">4i", raw, 40) == (0, 0, 1, 2)
    e1 = ENTRY.unpack_from(raw, 56 + 20)
    e2 = ENTRY.unpack_from(raw, 56 + 40)
    assert e1 == (index_key_hash("T#a"), 0, 0, 0)
    assert e2 == (index_key_hash("T#b"), 132, 5, 0)     # timeDiff in seconds
    f.close()


def test_collisions_share_a_slot_and_chain(tmp_path: os.PathLike[str]) -> None:
    clock = FakeClock(T0)
    svc = service(tmp_path, clock, slots=1, entries=32)   # every key in the same slot
    for i, key in enumerate(["a", "b", "a", "c", "a"]):
        svc.put_keys("T", key, None, i * 100, T0 + i * 1000)
    assert sorted(svc.query("T", "a", 64, 0, FAR)) == [0, 200, 400]
    assert svc.query("T", "b", 64, 0, FAR) == [100]
    assert svc.query("T", "zzz", 64, 0, FAR) == []
    assert svc.query("T", "a", 2, 0, FAR) == [400, 200]       # newest first, capped
    assert svc.files[-1].hash_slot_count == 1


def test_uniq_key_and_keys_words_and_rollback(tmp_path: os.PathLike[str]) -> None:
    svc = service(tmp_path, FakeClock(T0), slots=16, entries=32)
    assert svc.put_keys("T", "k1  k2", "U1", 0, T0) == 3
    assert svc.put_keys("T", "k9", None, 50, T0, sys_flag=TRANSACTION_ROLLBACK) == 0
    assert svc.query("T", "U1", 64, 0, FAR) == [0]
    assert svc.query("T", "k2", 64, 0, FAR) == [0]
    assert svc.query("T", "k9", 64, 0, FAR) == []
    assert svc.query("Other", "k1", 64, 0, FAR) == []


def test_time_range_filter(tmp_path: os.PathLike[str]) -> None:
    svc = service(tmp_path, FakeClock(T0), slots=4, entries=32)
    for i in range(5):
        svc.put_keys("T", "k", None, i * 100, T0 + i * 10_000)
    assert sorted(svc.query("T", "k", 64, T0 + 10_000, T0 + 30_000)) == [100, 200, 300]
    assert svc.query("T", "k", 64, T0 + 100_000, FAR) == []
    assert svc.query("T", "k", 64, 0, T0 - 1) == []


def test_skip_already_indexed_on_redispatch(tmp_path: os.PathLike[str]) -> None:
    svc = service(tmp_path, FakeClock(T0), slots=4, entries=32)
    svc.put_keys("T", "a", None, 0, T0)
    svc.put_keys("T", "b", None, 100, T0)
    assert svc.max_phys_offset == 100
    assert svc.put_keys("T", "a", None, 0, T0) == 0
    assert svc.query("T", "a", 64, 0, FAR) == [0]


def test_roll_to_new_file_and_reopen(tmp_path: os.PathLike[str]) -> None:
    clock = FakeClock(T0)
    svc = service(tmp_path, clock, slots=4, entries=4)   # 3 entries per file (entry 0 unused)
    for i in range(8):
        svc.put_keys("T", f"k{i % 2}", None, i * 100, T0 + i * 1000)
    assert len(svc.files) == 3
    first, second = svc.files[0], svc.files[1]
    assert first.index_count == 4 and first.end_phys_offset == 200
    assert second.begin_phys_offset == 300 and second.begin_timestamp == T0 + 3000
    assert [f.name for f in svc.files] == sorted(f.name for f in svc.files)
    assert sorted(svc.query("T", "k0", 64, 0, FAR)) == [0, 200, 400, 600]
    assert svc.flush() == svc.files[-1].end_timestamp
    svc.close()
    again = service(tmp_path, clock, slots=4, entries=4)
    assert len(again.files) == 3
    assert sorted(again.query("T", "k1", 64, 0, FAR)) == [100, 300, 500, 700]
    assert again.max_phys_offset == 700
    again.close()


def test_new_file_starts_at_previous_end_values(tmp_path: os.PathLike[str]) -> None:
    clock = FakeClock(T0)
    svc = service(tmp_path, clock, slots=4, entries=2)   # one entry per file
    svc.put_keys("T", "a", None, 10, T0 + 1000)
    svc.put_keys("T", "b", None, 20, T0 + 2000)
    # created as the previous file ended; the first entry then sets the begin fields
    assert svc.files[1].begin_phys_offset == 20 and svc.files[1].end_phys_offset == 20
    assert svc.files[1].name > svc.files[0].name          # unique even with a frozen clock


def test_delete_files_below_never_newest(tmp_path: os.PathLike[str]) -> None:
    svc = service(tmp_path, FakeClock(T0), slots=4, entries=2)
    for i in range(4):
        svc.put_keys("T", "a", None, i * 100, T0)
    assert len(svc.files) == 4
    assert len(svc.delete_files_below(250)) == 3
    assert [f.end_phys_offset for f in svc.files] == [300]
    assert svc.delete_files_below(10_000) == []


def test_drop_files_newer_than_checkpoint(tmp_path: os.PathLike[str]) -> None:
    svc = service(tmp_path, FakeClock(T0), slots=4, entries=3)
    for i in range(6):
        svc.put_keys("T", "a", None, i * 100, T0 + i * 1000)
    ends = [f.end_timestamp for f in svc.files]
    dropped = svc.drop_files_newer_than(ends[0])
    assert len(dropped) == len(ends) - 1 and len(svc.files) == 1


def test_truncate_after_drops_suffix_and_fixes_slots(tmp_path: os.PathLike[str]) -> None:
    clock = FakeClock(T0)
    svc = service(tmp_path, clock, slots=2, entries=8)
    for i in range(10):
        svc.put_keys("T", f"k{i % 3}", None, i * 100, T0 + i * 1000)
    svc.truncate_after(450)
    assert svc.max_phys_offset == 400
    assert sorted(svc.query("T", "k0", 64, 0, FAR)) == [0, 300]
    assert sorted(svc.query("T", "k1", 64, 0, FAR)) == [100, 400]
    svc.put_keys("T", "k0", None, 500, T0 + 20_000)
    assert sorted(svc.query("T", "k0", 64, 0, FAR)) == [0, 300, 500]
    svc.truncate_after(0)
    assert svc.files == [] and svc.query("T", "k0", 64, 0, FAR) == []


def test_corrupt_chain_terminates(tmp_path: os.PathLike[str]) -> None:
    svc = service(tmp_path, FakeClock(T0), slots=1, entries=8)
    for i in range(3):
        svc.put_keys("T", "a", None, i * 100, T0)
    f = svc.files[-1]
    # make entry 1 point at entry 3 (a loop forward) - the walk must still end
    with open(f.path, "r+b") as fh:
        fh.seek(HEADER_SIZE + 4 + 1 * 20 + 16)
        fh.write(struct.pack(">i", 3))
    assert sorted(svc.query("T", "a", 64, 0, FAR)) == [0, 100, 200]


def test_wrong_size_file_is_dropped_on_load(tmp_path: os.PathLike[str]) -> None:
    d = os.path.join(tmp_path, "index")
    os.makedirs(d)
    with open(os.path.join(d, "20231114221320000"), "wb") as fh:
        fh.write(b"\0" * 10)
    svc = IndexService(d, slot_count=4, entry_count=8, clock=FakeClock(T0))
    assert svc.load() == ["20231114221320000"]
    assert svc.files == []


@pytest.mark.parametrize("max_num", [0, 1, 64, 1000])
def test_query_cap(tmp_path: os.PathLike[str], max_num: int) -> None:
    svc = service(tmp_path, FakeClock(T0), slots=4, entries=200)
    for i in range(100):
        svc.put_keys("T", "a", None, i, T0)
    assert len(svc.query("T", "a", max_num, 0, FAR)) == min(max_num, 64)


# --- batched writes, fast hashing, read-only readers ---------------------------------------------

class RecordingIO(RealFileIO):
    """RealFileIO that logs every pwrite as (path, pos, length)."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: dict[int, str] = {}
        self.writes: list[tuple[str, int, int]] = []

    def open(self, path: str, *, create: bool = False, size: int | None = None, writable: bool = True) -> int:
        fd = super().open(path, create=create, size=size, writable=writable)
        self.paths[fd] = path
        return fd

    def pwrite(self, fd: int, data, pos: int) -> int:  # type: ignore[no-untyped-def]
        self.writes.append((self.paths.get(fd, "?"), pos, len(data)))
        return super().pwrite(fd, data, pos)


def test_key_hasher_matches_java_string_hash() -> None:
    hasher = KeyHasher()
    keys = ["", "a", "ab", "abc", "order-12345", "7F0000010F2A18B4AAC2000000012345",
            "7F0000010F2A18B4AAC2000000012346", "x" * 17, "y" * 300, "Ünïcode-kéy", "日本語キー" * 5,
            "\ud800lone", "emoji-\U0001F600-key-long-enough", "polygenelubricants"]
    for topic in ("T", "BenchTopic", "%RETRY%group", "Töpic"):
        for key in keys:
            assert hasher(topic, key) == index_key_hash(f"{topic}#{key}"), (topic, key)


def key_with_java_hash(topic: str, target: int, n: int = 8) -> str:
    """An n-char key of '0'..'N' with String.hashCode(topic + "#" + key) == target (mod 2^32)."""
    prefix = java_string_hash(topic + "#") & 0xFFFFFFFF
    want = (target - prefix * 31 ** n) % (1 << 32)
    low = 48 * (31 ** n - 1) // 30                     # every char '0'
    value = want + -(-(low - want) // (1 << 32)) * (1 << 32)
    digits = value - low
    assert 0 <= digits < 31 ** n
    chars = []
    for _ in range(n):
        digits, d = divmod(digits, 31)
        chars.append(chr(48 + d))
    return "".join(reversed(chars))


@pytest.mark.parametrize("n", [8, 20])                  # short keys and the cached-head path
def test_key_hasher_integer_min_value_maps_to_zero(n: int) -> None:
    key = key_with_java_hash("T", 0x80000000, n)
    assert index_key_hash("T#" + key) == 0              # Java: Math.abs(MIN_VALUE) < 0 -> 0
    assert KeyHasher()("T", key) == 0
    near = key_with_java_hash("T", 0x80000001, n)       # -MAX_VALUE -> MAX_VALUE
    assert KeyHasher()("T", near) == index_key_hash("T#" + near) == 0x7FFFFFFF


def test_batch_reaches_the_file_only_on_flush_batch_and_matches_put_by_put(tmp_path: os.PathLike[str]) -> None:
    clock = FakeClock(T0)
    batched = IndexService(os.path.join(tmp_path, "a"), slot_count=8, entry_count=64, clock=clock)
    single = IndexService(os.path.join(tmp_path, "b"), slot_count=8, entry_count=64, clock=clock)
    batched.load()
    single.load()
    for i in range(20):
        for svc in (batched, single):
            svc.add("T", [f"k{i % 3}", "all"], f"U{i}", i * 100, T0 + i * 1500)
        single.flush_batch()
    f = batched.files[0]
    with open(f.path, "rb") as fh:
        on_disk = fh.read()
    assert on_disk[:HEADER_SIZE] == bytes(36) + b"\x00\x00\x00\x01"     # nothing written yet
    assert sorted(batched.query("T", "k1", 64, 0, FAR)) == [100, 400, 700, 1000, 1300, 1600, 1900]
    batched.flush_batch()
    with open(f.path, "rb") as a, open(single.files[0].path, "rb") as b:
        assert a.read() == b.read()
    batched.flush_batch()                               # nothing new: no write at all
    batched.close()
    single.close()


def test_flush_batch_order_entries_then_slots_then_header(tmp_path: os.PathLike[str]) -> None:
    io = RecordingIO()
    svc = IndexService(os.path.join(tmp_path, "index"), slot_count=4096, entry_count=1000,
                       clock=FakeClock(T0), io=io)
    svc.load()
    svc.add("T", ["warm"], None, 0, T0)
    svc.flush_batch()
    io.writes.clear()
    for i in range(1, 200):
        svc.add("T", [f"key-{i}"], f"UNIQ{i:028d}", i * 100, T0 + i)
    svc.flush_batch()
    entries_pos = HEADER_SIZE + 4096 * 4
    kinds = ["entries" if pos >= entries_pos else "header" if pos == 0 else "slots" for _, pos, _ in io.writes]
    assert kinds[0] == "entries" and kinds[-1] == "header"
    assert set(kinds[1:-1]) == {"slots"}
    assert io.writes[0][2] == 398 * ENTRY.size                # one pwrite for the whole batch
    assert len(kinds) - 2 < 398                               # nearby slots coalesced
    assert svc.query("T", "key-150", 64, 0, FAR) == [15000]
    svc.close()


def test_roll_writes_the_full_file_before_the_next(tmp_path: os.PathLike[str]) -> None:
    io = RecordingIO()
    svc = IndexService(os.path.join(tmp_path, "index"), slot_count=4, entry_count=4, clock=FakeClock(T0), io=io)
    svc.load()
    for i in range(5):                                 # 3 entries per file: the 4th record rolls
        svc.add("T", [f"k{i}"], None, i * 100, T0 + i)
    first = svc.files[0]
    with open(first.path, "rb") as fh:
        header = fh.read(HEADER_SIZE)
    assert struct.unpack(">qqqqii", header)[5] == 4           # complete before the roll
    assert sorted(svc.query("T", "k4", 64, 0, FAR)) == [400]
    svc.close()


def test_reader_sees_flushed_batches_new_files_and_deletions(tmp_path: os.PathLike[str]) -> None:
    d = os.path.join(tmp_path, "index")
    reader = IndexService(d, slot_count=4, entry_count=4, read_only=True)
    reader.load()                                      # no directory yet: empty, nothing created
    assert reader.files == [] and not os.path.exists(d)
    writer = service(tmp_path, FakeClock(T0), slots=4, entries=4)
    writer.add("T", ["a"], None, 0, T0)
    reader.refresh()
    assert reader.query("T", "a", 64, 0, FAR) == []            # not flushed: not visible
    writer.flush_batch()
    assert reader.query("T", "a", 64, 0, FAR) == [0]           # header re-read per query
    for i in range(1, 8):
        writer.add("T", ["a"], None, i * 100, T0 + i * 1000)
    writer.flush_batch()
    assert len(reader.query("T", "a", 64, 0, FAR)) == 3        # its 3 entries; new files unseen
    reader.refresh()
    assert sorted(reader.query("T", "a", 64, 0, FAR)) == [i * 100 for i in range(8)]
    assert reader.last_update() == (T0 + 7000, 700)
    assert len(writer.delete_files_below(600)) == 2
    reader.refresh()
    assert sorted(reader.query("T", "a", 64, 0, FAR)) == [600, 700]
    with pytest.raises(PermissionError):
        reader.delete_files_below(1 << 40)
    with pytest.raises(PermissionError):
        reader.truncate_after(0)
    reader.close()
    writer.close()


def test_reader_never_deletes_a_file_it_cannot_use(tmp_path: os.PathLike[str]) -> None:
    d = os.path.join(tmp_path, "index")
    os.makedirs(d)
    bad = os.path.join(d, "20231114221320000")
    with open(bad, "wb") as fh:
        fh.write(b"\0" * 10)                           # e.g. a file the writer has just created
    reader = IndexService(d, slot_count=4, entry_count=8, read_only=True)
    assert reader.load() == [] and reader.files == []
    assert os.path.exists(bad)


def test_reader_follows_slots_written_before_the_header(tmp_path: os.PathLike[str]) -> None:
    writer = service(tmp_path, FakeClock(T0), slots=4, entries=16)
    writer.add("T", ["a"], None, 0, T0)
    writer.flush_batch()
    f = writer.files[-1]
    writer.add("T", ["a"], None, 100, T0 + 1000)
    f._write_header = lambda: None                     # type: ignore[method-assign]  # dies before the header
    f.flush_batch()
    reader = IndexService(os.path.join(tmp_path, "index"), slot_count=4, entry_count=16, read_only=True)
    reader.load()
    assert sorted(reader.query("T", "a", 64, 0, FAR)) == [0, 100]
    reader.close()


def test_writer_killed_mid_batch_repairs_slots_on_reopen(tmp_path: os.PathLike[str]) -> None:
    clock = FakeClock(T0)
    svc = service(tmp_path, clock, slots=2, entries=32)
    for i in range(4):
        svc.add("T", [f"k{i % 3}"], None, i * 100, T0 + i * 1000)
    svc.flush_batch()                                   # committed: entries 1..4
    f = svc.files[-1]
    for i in range(4, 8):
        svc.add("T", [f"k{i % 3}"], None, i * 100, T0 + i * 1000)
    f._write_header = lambda: None                     # type: ignore[method-assign]  # killed before the header
    f.flush_batch()
    os.close(f._fd)                                    # the process is gone; nothing else is written
    f._fd = -1
    again = service(tmp_path, clock, slots=2, entries=32)
    assert again.max_phys_offset == 300                 # what the header says was indexed
    for i in range(4, 8):                               # re-dispatch of the records past it
        again.add("T", [f"k{i % 3}"], None, i * 100, T0 + i * 1000)
    again.flush_batch()
    assert sorted(again.query("T", "k0", 64, 0, FAR)) == [0, 300, 600]
    assert sorted(again.query("T", "k1", 64, 0, FAR)) == [100, 400, 700]
    assert sorted(again.query("T", "k2", 64, 0, FAR)) == [200, 500]
    assert again.files[-1].index_count == 9
    again.close()


def test_key_hasher_property() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    hasher = KeyHasher()

    @settings(max_examples=300, deadline=None)
    @given(st.text(min_size=1, max_size=12), st.one_of(st.text(max_size=60),
                                                      st.text(alphabet="0123456789ABCDEF", max_size=40)))
    def check(topic: str, key: str) -> None:
        assert hasher(topic, key) == index_key_hash(f"{topic}#{key}")

    check()
