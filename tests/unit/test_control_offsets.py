"""ConsumerOffsetManager: commits, persistence (also of Java-written files), QUERY_CONSUMER_OFFSET rules."""

from __future__ import annotations

import json
import mmap
from pathlib import Path

from rocketpy.broker.control.offsets import (
    QUERY_NOT_FOUND_REMARK,
    ConsumerOffsetManager,
    OffsetQuery,
)
from rocketpy.ipc.queue_table import (
    QueueTable,
    QueueTableWriter,
    init_queue_table,
    queue_table_size,
)

JAVA_FILE = """{
\t"offsetTable":{
\t\t"TopicA@CG1":{0:120,1:118,2:121,3:119
\t\t},
\t\t"%RETRY%CG1@CG1":{0:0
\t\t}
\t}
}"""


def test_commit_query_and_ignore_negative(tmp_path: Path) -> None:
    m = ConsumerOffsetManager(str(tmp_path))
    m.load()
    assert m.query("G", "T", 0) is None
    m.commit("G", "T", 0, 10)
    m.commit("G", "T", 0, -1)
    m.commit("G", "T", 1, 3)
    assert m.query("G", "T", 0) == 10
    assert m.query("G", "T", 1) == 3
    assert m.groups_of_topic("T") == {"G"}


def test_persist_round_trip_only_when_dirty(tmp_path: Path) -> None:
    m = ConsumerOffsetManager(str(tmp_path))
    m.load()
    assert not m.persist()
    m.commit("G", "T", 2, 42)
    assert m.persist()
    assert not m.persist()
    assert json.loads((tmp_path / "consumerOffset.json").read_text()) == {"offsetTable": {"T@G": {"2": 42}}}
    m2 = ConsumerOffsetManager(str(tmp_path))
    m2.load()
    assert m2.query("G", "T", 2) == 42
    m2.commit("G", "T", 2, 42)           # same value: not dirty
    assert not m2.persist()


def test_reads_java_written_file(tmp_path: Path) -> None:
    (tmp_path / "consumerOffset.json").write_text(JAVA_FILE)
    m = ConsumerOffsetManager(str(tmp_path))
    m.load()
    assert m.query("CG1", "TopicA", 2) == 121
    assert m.query("CG1", "%RETRY%CG1", 0) == 0


def test_java_file_falls_back_to_bak(tmp_path: Path) -> None:
    (tmp_path / "consumerOffset.json").write_text("")
    (tmp_path / "consumerOffset.json.bak").write_text(JAVA_FILE)
    m = ConsumerOffsetManager(str(tmp_path))
    m.load()
    assert m.query("CG1", "TopicA", 3) == 119


def test_query_for_client_semantics(tmp_path: Path) -> None:
    buf = mmap.mmap(-1, queue_table_size(8))
    init_queue_table(buf, 8)
    writer = QueueTableWriter(buf)
    writer.publish("T", 0, 10, 0, 0)      # min offset 0
    writer.publish("T", 1, 50, 20, 0)     # files already expired below 20
    m = ConsumerOffsetManager(str(tmp_path), QueueTable(buf))
    m.load()
    assert m.query_for_client("G", "T", 0) == OffsetQuery(0)
    assert m.query_for_client("G", "T", 1) == OffsetQuery(None, QUERY_NOT_FOUND_REMARK)
    assert m.query_for_client("G", "T", 7) == OffsetQuery(0)          # no such queue yet
    m.commit("G", "T", 1, 33)
    assert m.query_for_client("G", "T", 1) == OffsetQuery(33)
    # without a queue table every queue counts as starting at 0
    assert ConsumerOffsetManager(str(tmp_path)).query_for_client("G", "T", 1) == OffsetQuery(0)
