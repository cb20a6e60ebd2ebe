"""QUERY_MESSAGE and VIEW_MESSAGE_BY_ID against a real broker: the dispatcher builds the IndexFile,
the workers read it (remoting-protocol.md §9.11, storage-format.md §5)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.message import iter_records
from rocketpy.protocol.msgid import decode_offset_msg_id
from rocketpy.protocol.remoting import RemotingCommand
from rocketpy.store.indexfile import HEADER, HEADER_SIZE, index_file_size
from tests.support.broker_ops import send
from tests.support.cluster import cluster, wait_for
from tests.support.remoting_client import RemotingTestClient

SLOTS = 100
ENTRIES = 200           # 199 entries per file: the messages below fill several index files
TOPIC = "QueryTopic"
NOT_FOUND_REMARK = "can not find message, maybe time range not correct"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("broker-query"), maxHashSlotNum=str(SLOTS),
                 maxIndexNum=str(ENTRIES)) as c:
        yield c


def connect(c) -> RemotingTestClient:
    return RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10)


def query(client: RemotingTestClient, key: str, *, uniq: bool = False, max_num: int = 32, begin: int = 0,
          end: int | None = None, topic: str = TOPIC) -> RemotingCommand:
    ext: dict[str, object] = {"topic": topic, "key": key, "maxNum": max_num, "beginTimestamp": begin,
                              "endTimestamp": end if end is not None else int(time.time() * 1000) + 60_000}
    if uniq:
        ext["_UNIQUE_KEY_QUERY"] = "true"
    return client.request(RequestCode.QUERY_MESSAGE, ext)


def found(client: RemotingTestClient, key: str, count: int, **kw: object) -> RemotingCommand:
    """Poll until the dispatcher has indexed the messages: QUERY_MESSAGE returns `count` of them."""
    def ready() -> RemotingCommand | None:
        r = query(client, key, **kw)  # type: ignore[arg-type]
        return r if r.code == ResponseCode.SUCCESS and len(iter_records(r.body)) >= count else None
    return wait_for(ready, 20, f"{count} message(s) indexed under {key!r}")


def test_query_by_key_and_by_uniq_key_and_view_by_id(running):
    with connect(running) as c:
        sent = []
        for i in range(5):
            uniq = f"7F000001000018B4AAC2{i:012X}"
            reply = send(c, TOPIC, b"body-%d" % i, keys=f"order-{i} shared", props={"UNIQ_KEY": uniq},
                         queue_id=i % 2)
            assert reply.code == ResponseCode.SUCCESS, reply.remark
            sent.append((uniq, decode_offset_msg_id(reply.ext_str("msgId"))[2]))

        # one KEYS word of one message
        r = found(c, "order-3", 1)
        msgs = iter_records(r.body, check_crc=True)
        assert [m.body for m in msgs] == [b"body-3"]
        assert msgs[0].phys_offset == sent[3][1]
        assert msgs[0].property_map()["KEYS"] == "order-3 shared"
        last_ts, last_phys = int(r.ext_str("indexLastUpdateTimestamp")), int(r.ext_str("indexLastUpdatePhyoffset"))
        assert last_phys >= sent[3][1] and last_ts > 0

        # a word every message has: all of them, sorted by CommitLog offset
        r = found(c, "shared", 5)
        msgs = iter_records(r.body, check_crc=True)
        assert [m.phys_offset for m in msgs] == sorted(p for _, p in sent)
        assert [m.body for m in msgs] == [b"body-%d" % i for i in range(5)]

        # maxNum caps the hits (newest first, then sorted)
        r = query(c, "shared", max_num=2)
        assert [m.body for m in iter_records(r.body)] == [b"body-3", b"body-4"]

        # by UNIQ_KEY (the producer-side msgId), with the ext flag Java's admin sends
        uniq, phys = sent[1]
        r = found(c, uniq, 1, uniq=True)
        msgs = iter_records(r.body, check_crc=True)
        assert [m.phys_offset for m in msgs] == [phys]
        assert msgs[0].property_map()["UNIQ_KEY"] == uniq

        # VIEW_MESSAGE_BY_ID by the offset msgId's CommitLog offset
        r = c.request(RequestCode.VIEW_MESSAGE_BY_ID, {"offset": phys})
        assert r.code == ResponseCode.SUCCESS
        (msg,) = iter_records(r.body, check_crc=True)
        assert msg.body == b"body-1" and msg.phys_offset == phys


def test_query_not_found(running):
    with connect(running) as c:
        assert send(c, TOPIC, b"x", keys="present-key").code == ResponseCode.SUCCESS
        found(c, "present-key", 1)
        for r in (query(c, "absent-key"),                                     # no such key
                  query(c, "present-key", topic="OtherTopic"),                # other topic
                  query(c, "present-key", begin=0, end=1_000_000),            # time range before it
                  query(c, "present-key", max_num=0)):
            assert r.code == ResponseCode.QUERY_NOT_FOUND
            assert r.remark == NOT_FOUND_REMARK
        r = c.request(RequestCode.VIEW_MESSAGE_BY_ID, {"offset": 1 << 40})
        assert r.code == ResponseCode.SYSTEM_ERROR
        assert r.remark == f"can not find message by the offset, {1 << 40}"


def test_index_rolls_over_files_and_workers_see_new_ones(running):
    with connect(running) as c:
        topic = "RollTopic"
        n = 250                                    # 2 entries each: > 2 files of 199 entries
        offsets = []
        for i in range(n):
            reply = send(c, topic, b"r%d" % i, keys=f"k{i % 5}", props={"UNIQ_KEY": f"U{i:031d}"})
            assert reply.code == ResponseCode.SUCCESS, reply.remark
            offsets.append(decode_offset_msg_id(reply.ext_str("msgId"))[2])
        r = found(c, "k2", 50, topic=topic, max_num=64)
        assert [m.phys_offset for m in iter_records(r.body)] == offsets[2::5]
        for i in (0, 120, n - 1):                  # first, middle and last index file
            r = found(c, f"U{i:031d}", 1, topic=topic, uniq=True)
            assert [m.body for m in iter_records(r.body)] == [b"r%d" % i]
        index_dir = running.store_dir / "index"
        names = sorted(os.listdir(index_dir))
        assert len(names) >= 3
        for name in names:                         # RocketMQ's layout, sized by the broker props
            path = index_dir / name
            assert path.stat().st_size == index_file_size(SLOTS, ENTRIES)
            with open(path, "rb") as fh:
                header = HEADER.unpack(fh.read(HEADER_SIZE))
            assert 1 < header[5] <= ENTRIES


def index_entries(c) -> int:
    """Entries in the broker's index files, as their headers count them."""
    index_dir = c.store_dir / "index"
    total = 0
    for name in sorted(os.listdir(index_dir)):
        with open(index_dir / name, "rb") as fh:
            total += HEADER.unpack(fh.read(HEADER_SIZE))[5] - 1
    return total


def test_index_survives_a_dispatcher_kill(running):
    """kill -9 the dispatcher: its successor resumes the index (no lost or doubled keys)."""
    with connect(running) as c:
        topic = "KillTopic"
        before = [send(c, topic, b"b%d" % i, keys="before-kill") for i in range(3)]
        assert all(r.code == ResponseCode.SUCCESS for r in before)
        found(c, "before-kill", 3, topic=topic)
        def settled() -> int | None:
            n = index_entries(running)
            time.sleep(0.2)
            return n if n == index_entries(running) else None
        entries = wait_for(settled, 10, "the index headers to settle")
        victim = running.broker_child("dispatcher")
        os.kill(victim.pid, signal.SIGKILL)

        def respawned() -> bool:
            try:
                return running.broker_child("dispatcher").pid != victim.pid
            except AssertionError:
                return False
        wait_for(respawned, 30, "the supervisor to restart the dispatcher")
        after = [send(c, topic, b"a%d" % i, keys="after-kill before-kill") for i in range(3)]
        assert all(r.code == ResponseCode.SUCCESS for r in after)
        r = found(c, "after-kill", 3, topic=topic)
        assert [m.body for m in iter_records(r.body)] == [b"a0", b"a1", b"a2"]
        r = found(c, "before-kill", 6, topic=topic)
        assert [m.body for m in iter_records(r.body)] == [b"b0", b"b1", b"b2", b"a0", b"a1", b"a2"]
        # 3 messages x 2 words since the kill; nothing indexed twice by the new dispatcher
        wait_for(lambda: index_entries(running) == entries + 6, 10,
                 f"{entries + 6} index entries (now {index_entries(running)})")
