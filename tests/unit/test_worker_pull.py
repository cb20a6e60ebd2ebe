"""Pulls and lookups through a worker against a real FileStore in tmp_path (tiny files), with the
queue table and committed offset published by the test as the dispatcher and writer would."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rocketpy.broker.control.groups import SubscriptionGroupConfig
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.protocol.bodies import TopicConfig
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.message import MessageRecord, encode_record, format_properties, iter_records
from rocketpy.store.api import PutRequest
from rocketpy.store.file_store import FileStore, StoreReader
from tests.unit.test_worker_rig import Client, Rig, run

PULL_FLAGS_SUB = 0x4
PULL_FLAGS_SUSPEND_SUB = 0x6


class PullRig:
    def __init__(self, tmp_path: Any, broker_config: BrokerConfig | None = None) -> None:
        self.config = StoreConfig(store_path_root_dir=str(tmp_path / "store"), mapped_file_size_commitlog=8192,
                                  mapped_file_size_consumequeue=20 * 8)
        self.store = FileStore.open(self.config)
        self.reader = StoreReader(self.config)
        self.rig = Rig(self.config, broker_config, store_reader=self.reader,
                       topics={"T": TopicConfig("T", 4, 4, 6), "RO": TopicConfig("RO", 1, 1, 2)})
        self.phys: list[int] = []

    def append(self, bodies_tags: list[tuple[bytes, str]], queue_id: int = 0, topic: str = "T") -> None:
        group = []
        for body, tags in bodies_tags:
            props = format_properties({"TAGS": tags}) if tags else ""
            data = encode_record(MessageRecord(topic=topic, body=body, queue_id=queue_id, properties=props,
                                               born_host="10.0.0.1", born_port=1, store_host="192.168.7.7",
                                               store_port=10911))
            group.append(PutRequest(topic, queue_id, 0, data))
        self.phys += [r.phys_offset for r in self.store.append(group)]
        self.store.flush()
        self.store.dispatch()
        self.publish()

    def publish(self) -> None:
        cl = self.store.commitlog
        self.rig.sup.publish_writer(committed_offset=cl.committed_offset, flushed_offset=cl.flushed_offset,
                                    flushed_store_ts=0, writer_generation=1)
        for topic, qids in self.store.queues().items():
            for qid in qids:
                self.rig.queue_table_writer.publish(topic, qid, self.store.max_queue_offset(topic, qid),
                                                    self.store.min_queue_offset(topic, qid), 0)

    def close(self) -> None:
        self.reader.close()
        self.store.close()


@pytest.fixture
def prig(tmp_path):
    r = PullRig(tmp_path)
    yield r
    r.close()


def pull(c: Client, offset: int, *, queue_id: int = 0, sys_flag: int = PULL_FLAGS_SUB, sub: str | None = "*",
         max_nums: int = 32, suspend_ms: int = 15000, topic: str = "T", group: str = "CG", **extra: Any):
    ext: dict[str, Any] = {"consumerGroup": group, "topic": topic, "queueId": queue_id, "queueOffset": str(offset),
                           "maxMsgNums": max_nums, "sysFlag": sys_flag, "commitOffset": "0",
                           "suspendTimeoutMillis": str(suspend_ms), "subVersion": "0"}
    if sub is not None:
        ext["subscription"] = sub
    ext.update(extra)
    return c.request(RequestCode.PULL_MESSAGE, ext)


def header(r) -> tuple[int, int, int, str]:
    e = r.ext_fields
    assert e["suggestWhichBrokerId"] == "0" and all(isinstance(v, str) for v in e.values())
    return int(e["nextBeginOffset"]), int(e["minOffset"]), int(e["maxOffset"]), r.remark


def test_found_bodies_and_every_not_found_status(prig) -> None:
    prig.append([(b"a", "TagA"), (b"b", "TagB"), (b"c", "TagA")])

    async def main() -> None:
        await prig.rig.start()
        c = prig.rig.client()
        r = await c.call(pull(c, 0))
        assert r.code == ResponseCode.SUCCESS and header(r) == (3, 0, 3, "FOUND")
        assert [m.body for m in iter_records(r.body)] == [b"a", b"b", b"c"]
        assert [m.phys_offset for m in iter_records(r.body)] == prig.phys
        r = await c.call(pull(c, 1, max_nums=1))
        assert header(r) == (2, 0, 3, "FOUND") and [m.body for m in iter_records(r.body)] == [b"b"]
        r = await c.call(pull(c, 3, sys_flag=PULL_FLAGS_SUB))        # no suspend bit: at once
        assert (r.code, header(r)) == (ResponseCode.PULL_NOT_FOUND, (3, 0, 3, "OFFSET_OVERFLOW_ONE"))
        assert r.body == b""
        r = await c.call(pull(c, 9))
        assert (r.code, header(r)) == (ResponseCode.PULL_OFFSET_MOVED, (3, 0, 3, "OFFSET_OVERFLOW_BADLY"))
        r = await c.call(pull(c, 0, queue_id=2))
        assert (r.code, header(r)) == (ResponseCode.PULL_NOT_FOUND, (0, 0, 0, "NO_MATCHED_LOGIC_QUEUE"))
        r = await c.call(pull(c, 5, queue_id=2))
        assert r.code == ResponseCode.PULL_OFFSET_MOVED and header(r)[0] == 0
        await prig.rig.stop()
    run(main())


def test_tag_filter_uses_the_header_subscription(prig) -> None:
    prig.append([(b"a", "TagA"), (b"b", "TagB"), (b"c", "TagA"), (b"d", "")])

    async def main() -> None:
        await prig.rig.start()
        c = prig.rig.client()
        r = await c.call(pull(c, 0, sub="TagA"))
        assert [m.body for m in iter_records(r.body)] == [b"a", b"c"] and header(r)[0] == 4
        r = await c.call(pull(c, 0, sub="TagB || TagZ"))
        assert [m.body for m in iter_records(r.body)] == [b"b"]
        r = await c.call(pull(c, 0, sub="TagZ"))
        assert (r.code, header(r)) == (ResponseCode.PULL_RETRY_IMMEDIATELY, (4, 0, 4, "NO_MATCHED_MESSAGE"))
        r = await c.call(pull(c, 0, sub="TagZ", sys_flag=0))         # no SUBSCRIPTION bit: the registered one
        assert r.code == ResponseCode.SUBSCRIPTION_NOT_EXIST            # (none: tests/unit/test_worker_pull_filter.py)
        await prig.rig.stop()
    run(main())


def test_long_polling_is_woken_by_the_pull_doorbell_within_milliseconds(prig) -> None:
    prig.append([(b"a", "TagA")])

    async def main() -> None:
        await prig.rig.start()
        c = prig.rig.client()
        req = pull(c, 1, sys_flag=PULL_FLAGS_SUSPEND_SUB, suspend_ms=10_000)
        c.send(req)
        await c.nothing(0.05)
        assert prig.rig.server.pull.long_polling.count == 1
        prig.append([(b"new", "TagA")])
        started = time.monotonic()
        prig.rig.pull_bell.ring()                          # what the dispatcher does after publishing
        (r,) = await c.responses(1)
        assert time.monotonic() - started < 5, "woken by the doorbell, not by the 10 s hold expiring"
        assert r.opaque == req.opaque and r.code == ResponseCode.SUCCESS
        assert [m.body for m in iter_records(r.body)] == [b"new"] and header(r)[0] == 2
        assert prig.rig.server.pull.long_polling.count == 0
        await prig.rig.stop()
    run(main())


def test_parked_pull_times_out_with_the_full_header_and_other_queues_do_not_wake_it(prig) -> None:
    prig.append([(b"a", "")])

    async def main() -> None:
        await prig.rig.start()
        c = prig.rig.client()
        started = time.monotonic()
        c.send(pull(c, 1, sys_flag=PULL_FLAGS_SUSPEND_SUB, suspend_ms=200))
        prig.append([(b"other", "")], queue_id=1)
        prig.rig.pull_bell.ring()
        await c.nothing(0.1)
        (r,) = await c.responses(1, timeout_s=2)
        assert 0.15 < time.monotonic() - started < 1.0
        assert (r.code, header(r)) == (ResponseCode.PULL_NOT_FOUND, (1, 0, 1, "OFFSET_OVERFLOW_ONE"))
        await prig.rig.stop()
    run(main())


def test_commit_offset_flag_batches_offsets_for_control(prig) -> None:
    async def main() -> None:
        await prig.rig.start()
        c = prig.rig.client()
        await c.call(pull(c, 0, sys_flag=PULL_FLAGS_SUB | 0x1, commitOffset="7"))
        await c.call(pull(c, 0, sys_flag=PULL_FLAGS_SUB | 0x1, commitOffset="9"))
        await c.call(pull(c, 0, sys_flag=PULL_FLAGS_SUB, commitOffset="11"))     # no flag: not committed
        assert prig.rig.server.offsets.entries == {("CG", "T", 0): 9}
        sent: list[bytes] = []
        prig.rig.server.offsets.send = lambda body: sent.append(body) or True
        prig.rig.server.offsets.flush()
        assert sent == [b'{"offsets":[["CG","T",0,9]]}'] and not prig.rig.server.offsets.entries
        await prig.rig.stop()
    run(main())


def test_pull_preconditions(prig) -> None:
    async def main() -> None:
        rig = prig.rig
        rig.ctx.set_groups({"OFF": SubscriptionGroupConfig("OFF", consume_enable=False)})
        await rig.start()
        c = rig.client()
        r = await c.call(pull(c, 0, topic="Nope"))
        assert r.code == ResponseCode.TOPIC_NOT_EXIST and "Nope" in r.remark
        r = await c.call(pull(c, 0, topic="RO"))
        assert r.code == ResponseCode.NO_PERMISSION
        r = await c.call(pull(c, 0, queue_id=4))
        assert r.code == ResponseCode.SYSTEM_ERROR and "queueId[4] is illegal" in r.remark
        r = await c.call(pull(c, 0, group="OFF"))
        assert r.code == ResponseCode.NO_PERMISSION
        r = await c.call(pull(c, 0, sub="a > 1", expressionType="SQL92"))
        assert r.code == ResponseCode.SYSTEM_ERROR and "SQL92" in r.remark
        r = await c.call(pull(c, 0, queueOffset="x"))
        assert r.code == ResponseCode.SYSTEM_ERROR and "queueOffset" in r.remark
        await rig.stop()
    run(main())


def test_lookups(prig) -> None:
    before = int(time.time() * 1000)
    prig.append([(b"a", ""), (b"b", "")])

    async def main() -> None:
        await prig.rig.start()
        c = prig.rig.client()

        async def ask(code: int, **ext: Any):
            return await c.call(c.request(code, ext))

        assert (await ask(RequestCode.GET_MAX_OFFSET, topic="T", queueId=0)).ext_fields == {"offset": "2"}
        assert (await ask(RequestCode.GET_MAX_OFFSET, topic="T", queueId=3)).ext_fields == {"offset": "0"}
        assert (await ask(RequestCode.GET_MIN_OFFSET, topic="T", queueId=0)).ext_fields == {"offset": "0"}
        assert (await ask(RequestCode.GET_MIN_OFFSET, topic="X", queueId=0)).ext_fields == {"offset": "0"}
        r = await ask(RequestCode.GET_EARLIEST_MSG_STORETIME, topic="T", queueId=0)
        assert before <= int(r.ext_fields["timestamp"]) <= int(time.time() * 1000)
        r = await ask(RequestCode.GET_EARLIEST_MSG_STORETIME, topic="T", queueId=3)
        assert r.ext_fields == {"timestamp": "-1"}
        r = await ask(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, topic="T", queueId=0, timestamp=str(before - 10_000))
        assert r.ext_fields == {"offset": "0"}
        r = await ask(RequestCode.VIEW_MESSAGE_BY_ID, offset=str(prig.phys[1]))
        assert r.code == 0 and iter_records(r.body)[0].body == b"b"
        r = await ask(RequestCode.VIEW_MESSAGE_BY_ID, offset="123456")
        assert (r.code, r.remark) == (ResponseCode.SYSTEM_ERROR, "can not find message by the offset, 123456")
        r = await ask(RequestCode.QUERY_MESSAGE, topic="T", key="k", maxNum=32, beginTimestamp="0",
                      endTimestamp=str(2**40))
        assert r.code == ResponseCode.QUERY_NOT_FOUND
        await prig.rig.stop()
    run(main())


def test_idle_connections_are_closed_by_the_scan(prig) -> None:
    async def main() -> None:
        await prig.rig.start()
        c = prig.rig.client()
        prig.rig.server.tick(time.monotonic() + 5)
        assert not c.transport.closed
        prig.rig.server._last_slow = 0
        prig.rig.server.tick(time.monotonic() + 121)
        assert c.transport.closed
        await asyncio.sleep(0)
        assert c.conn.conn_id not in prig.rig.server.connections
        await prig.rig.stop()
    run(main())


def test_drain_answers_parked_pulls_and_closes_connections(prig) -> None:
    prig.append([(b"a", "")])

    async def main() -> None:
        await prig.rig.start()
        c = prig.rig.client()
        req = pull(c, 1, sys_flag=PULL_FLAGS_SUSPEND_SUB, suspend_ms=30_000)
        c.send(req)
        await c.nothing(0.02)
        await prig.rig.server.drain()
        (r,) = await c.responses(1)
        assert r.opaque == req.opaque and r.code == ResponseCode.PULL_NOT_FOUND
        assert c.transport.closed and not c.transport.reading
        await prig.rig.stop()
    run(main())
