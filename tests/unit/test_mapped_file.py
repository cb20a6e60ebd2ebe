"""MappedFile / MappedFileQueue: naming, full-size zero-filled files, load checks, reads, truncation."""

from __future__ import annotations

import os

import pytest

from rocketpy.errors import CorruptStoreError, StoreError
from rocketpy.store.io import RealFileIO
from rocketpy.store.mapped_file import MappedFileQueue, file_name, parse_file_name

SIZE = 4096


def _queue(tmp_path, *, writable=True) -> MappedFileQueue:
    q = MappedFileQueue(RealFileIO(), str(tmp_path / "q"), SIZE, writable=writable)
    q.load()
    return q


def test_file_names_are_20_digit_start_offsets():
    assert file_name(0) == "00000000000000000000"
    assert file_name(1073741824) == "00000000001073741824"
    assert parse_file_name("00000000001073741824") == 1073741824
    assert parse_file_name("0000000000107374182") is None
    assert parse_file_name("0000000000107374182x") is None


def test_files_are_created_full_size_and_zero(tmp_path):
    q = _queue(tmp_path)
    mf = q.file_for_write(0)
    assert os.path.getsize(mf.path) == SIZE
    assert bytes(mf.read(0, SIZE)) == bytes(SIZE)
    mf.write(100, b"hello")
    assert bytes(q.read(100, 5, limit=105)) == b"hello"
    assert q.read(100, 5, limit=104) is None, "never past the read limit"
    assert q.read(SIZE - 2, 4, limit=10 * SIZE) is None, "a read never spans two files"
    # the next file: only the one right after the last
    mf2 = q.file_for_write(SIZE + 7)
    assert mf2.file_start == SIZE and os.path.basename(mf2.path) == file_name(SIZE)
    with pytest.raises(StoreError):
        q.file_for_write(5 * SIZE)
    assert q.find(SIZE + 1) is mf2 and q.find(0) is mf and q.find(2 * SIZE) is None
    q.close()


def test_prepare_next_file_warms_the_next_one(tmp_path):
    q = _queue(tmp_path)
    q.file_for_write(0)
    assert q.prepare_next_file(10) is True
    assert [f.file_start for f in q.files] == [0, SIZE]
    assert q.prepare_next_file(10) is False, "already prepared"
    assert q.file_for_write(SIZE) is q.files[1]
    assert not any(n.endswith(".tmp") for n in os.listdir(q.dir_path))
    q.close()


def test_load_checks_size_and_names(tmp_path):
    q = _queue(tmp_path)
    q.file_for_write(0)
    q.file_for_write(SIZE)
    q.close()
    qdir = tmp_path / "q"
    (qdir / (file_name(2 * SIZE) + ".tmp")).write_bytes(b"partial")
    q = _queue(tmp_path)
    assert [f.file_start for f in q.files] == [0, SIZE]
    assert not (qdir / (file_name(2 * SIZE) + ".tmp")).exists(), "a half-made file is removed"
    q.close()
    with open(qdir / file_name(SIZE), "r+b") as f:
        f.truncate(SIZE - 1)
    with pytest.raises(CorruptStoreError, match=file_name(SIZE)):
        _queue(tmp_path)
    os.unlink(qdir / file_name(SIZE))
    (qdir / file_name(2 * SIZE)).write_bytes(bytes(SIZE))
    with pytest.raises(CorruptStoreError, match="not contiguous"):
        _queue(tmp_path)
    os.unlink(qdir / file_name(2 * SIZE))
    (qdir / file_name(100)).write_bytes(bytes(SIZE))
    with pytest.raises(CorruptStoreError, match="multiple"):
        _queue(tmp_path)


def test_truncate_dirty_zeroes_tail_and_deletes_later_files(tmp_path):
    q = _queue(tmp_path)
    for start in (0, SIZE, 2 * SIZE):
        q.file_for_write(start).write(0, b"\x01" * 100)
    removed, deleted = q.truncate_dirty(SIZE + 40)
    assert removed == 60 + 100
    assert [os.path.basename(p) for p in deleted] == [file_name(2 * SIZE)]
    assert bytes(q.files[1].read(0, 100)) == b"\x01" * 40 + bytes(60)
    assert bytes(q.files[0].read(0, 100)) == b"\x01" * 100
    # at a file start: the file stays, emptied
    removed, deleted = q.truncate_dirty(SIZE)
    assert removed == 40 and deleted == [] and len(q.files) == 2
    q.close()


def test_delete_first_never_deletes_the_last(tmp_path):
    q = _queue(tmp_path)
    for start in (0, SIZE, 2 * SIZE):
        q.file_for_write(start)
    assert len(q.delete_first(10)) == 2
    assert [f.file_start for f in q.files] == [2 * SIZE]
    assert q.min_offset == 2 * SIZE
    q.close()


def test_reader_mode_follows_the_writer(tmp_path):
    writer = _queue(tmp_path)
    writer.file_for_write(0).write(0, b"abc")
    reader = _queue(tmp_path, writable=False)
    assert bytes(reader.read(0, 3, limit=3)) == b"abc"
    writer.file_for_write(SIZE).write(0, b"def")
    assert reader.read(SIZE, 3, limit=SIZE + 3) is None
    reader.refresh()
    assert bytes(reader.read(SIZE, 3, limit=SIZE + 3)) == b"def"
    writer.delete_first(1)
    reader.refresh()
    assert reader.min_offset == SIZE
    with pytest.raises(AssertionError):
        reader.file_for_write(2 * SIZE)
    reader.close()
    writer.close()


def test_reader_remaps_a_file_deleted_and_created_again(tmp_path):
    """Recovery after a writer crash deletes files past the recovered end (a warmed next file
    a worker may have mapped) and the new writer creates them again: a reader's refresh must map
    the new file, not keep serving the deleted one (found by tests/crash/test_broker_kill.py)."""
    writer = _queue(tmp_path)
    writer.file_for_write(0).write(0, b"abc")
    writer.file_for_write(SIZE)                     # warmed, still zero
    reader = _queue(tmp_path, writable=False)
    assert bytes(reader.read(SIZE, 3, limit=SIZE + 3)) == bytes(3)
    writer.close()
    os.unlink(tmp_path / "q" / file_name(SIZE))     # recovery: past the end
    writer = _queue(tmp_path)
    writer.file_for_write(SIZE).write(0, b"new")    # the new writer rolls into it
    reader.refresh()
    assert bytes(reader.read(SIZE, 3, limit=SIZE + 3)) == b"new"
    assert bytes(reader.read(0, 3, limit=3)) == b"abc"
    reader.close()
    writer.close()


def test_reader_of_missing_dir_is_empty(tmp_path):
    reader = _queue(tmp_path, writable=False)
    assert reader.files == [] and reader.read(0, 1, limit=10) is None


def test_next_file_is_warmed_in_bounded_steps(tmp_path):
    q = _queue(tmp_path)
    q.file_for_write(0)
    steps = 0
    tmp = tmp_path / "q" / (file_name(SIZE) + ".tmp")
    while not q.warm_next_file_step(10, 1024):
        steps += 1
        assert tmp.exists() and os.path.getsize(tmp) == steps * 1024   # visible only as a .tmp
        assert len(q.files) == 1
    assert steps == 3 and not tmp.exists()
    assert [mf.file_start for mf in q.files] == [0, SIZE]
    assert os.path.getsize(q.files[1].path) == SIZE
    assert q.warm_next_file_step(10, 1024)          # nothing more to do: the next file exists


def test_a_write_that_reaches_a_half_warmed_file_finishes_it(tmp_path):
    q = _queue(tmp_path)
    q.file_for_write(0)
    assert not q.warm_next_file_step(0, 1024)
    mf = q.file_for_write(SIZE)
    assert mf.file_start == SIZE and os.path.getsize(mf.path) == SIZE
    assert bytes(mf.read(0, SIZE)) == bytes(SIZE)
    assert not (tmp_path / "q" / (file_name(SIZE) + ".tmp")).exists()


def test_a_crash_mid_warm_up_leaves_only_a_tmp_that_load_removes(tmp_path):
    q = _queue(tmp_path)
    q.file_for_write(0)
    q.warm_next_file_step(0, 1024)
    # no close: a kill -9 leaves the .tmp behind
    again = _queue(tmp_path)
    assert [mf.file_start for mf in again.files] == [0]
    assert not (tmp_path / "q" / (file_name(SIZE) + ".tmp")).exists()
