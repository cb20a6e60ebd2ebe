"""The SDK producer and lite pull consumer against real NameServer and broker processes."""

from __future__ import annotations

import asyncio
import threading
import zlib

import pytest

from rocketpy.client import (
    AsyncProducer,
    LitePullConsumer,
    Message,
    MessageQueue,
    Producer,
    SelectMessageQueueByHash,
    SendStatus,
)
from rocketpy.protocol.bodies import ConsumeFromWhere
from rocketpy.protocol.message import SysFlag
from tests.support.broker_ops import pull, records
from tests.support.cluster import Cluster, cluster, free_port, wait_for
from tests.support.remoting_client import RemotingTestClient

WAIT_S = 20.0


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    # Short delay levels: a delayed message is delivered to its topic within the test's waits.
    with cluster(tmp_path_factory.mktemp("sdkprod"), messageDelayLevel="1s 1s 2s") as c:
        yield c


def _pull_all(c: Cluster, topic: str, queue_id: int, offset: int = 0):  # type: ignore[no-untyped-def]
    with RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10) as rc:
        return records(pull(rc, topic, queue_id, offset, max_msgs=32))


def _drain(consumer: LitePullConsumer, count: int, timeout_s: float = WAIT_S) -> list:  # type: ignore[type-arg]
    got: list = []  # type: ignore[type-arg]
    wait_for(lambda: got.extend(consumer.poll(0.2)) or len(got) >= count, timeout_s, f"{count} messages")
    return got


def test_sync_send_properties_compression_and_pull_back(running):
    topic = "SdkSendTopic"
    big = bytes(range(256)) * 40                    # 10 KiB: compressed on the wire
    with Producer("SdkPG1", namesrv_addr=running.namesrv_addr) as p:
        small = p.send(Message(topic, b"hello", tags="TagA", keys=["k1", "k2"]).with_property("color", "blue"))
        large = p.send(Message(topic, big, tags="TagB", delay_level=3))
    assert small.status is SendStatus.SEND_OK and small.msg_id and small.offset_msg_id
    def both_stored():  # type: ignore[no-untyped-def]
        table = {r.uniq_key: r for q in range(4) for r in _pull_all(running, topic, q)}
        return table if {small.msg_id, large.msg_id} <= set(table) else None
    stored = wait_for(both_stored, WAIT_S, "both messages to be pullable")
    rec = stored[small.msg_id]
    assert (rec.tags, rec.keys, rec.property_map()["color"]) == ("TagA", ["k1", "k2"], "blue")
    raw = stored[large.msg_id]
    assert raw.sys_flag & SysFlag.COMPRESSED and zlib.decompress(raw.body) == big
    # Parked in SCHEDULE_TOPIC_XXXX at level 3, then delivered to its topic with DELAY cleared.
    assert "DELAY" not in raw.property_map() and raw.property_map()["REAL_TOPIC"] == topic
    with LitePullConsumer("SdkReadAll", namesrv_addr=running.namesrv_addr,
                          consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET) as c:
        c.subscribe(topic)
        got = {m.msg_id: m for m in _drain(c, 2)}
    assert got[large.msg_id].body == big and got[large.msg_id].delay_level == 0
    assert got[small.msg_id].user_properties == {"color": "blue"} and got[small.msg_id].keys == ["k1", "k2"]


def test_async_send_both_forms_oneway_and_batch_split(running):
    topic = "SdkAsyncTopic"
    seen: list = []  # type: ignore[type-arg]
    done = threading.Event()

    def callback(result, error):  # type: ignore[no-untyped-def]
        seen.append((result, error))
        done.set()

    with Producer("SdkPG2", namesrv_addr=running.namesrv_addr, max_message_size=64 * 1024) as p:
        fut = p.send_async(Message(topic, b"future"))
        p.send_async(Message(topic, b"callback"), callback)
        assert fut.result(WAIT_S).status is SendStatus.SEND_OK
        assert done.wait(WAIT_S) and seen[0][1] is None and seen[0][0].status is SendStatus.SEND_OK
        p.send_oneway(Message(topic, b"oneway"))
        batch = [Message(topic, f"b{i}".encode() * 1000, keys=f"bk{i}") for i in range(40)]   # ~80 KiB
        results = p.send_batch(batch)
    assert len(results) >= 2
    assert sum(len(r.msg_id.split(",")) for r in results) == 40
    assert [m.uniq_key for m in batch] == [k for r in results for k in r.msg_id.split(",")]

    async def via_asyncio() -> None:
        async with AsyncProducer("SdkPG3", namesrv_addr=running.namesrv_addr) as ap:
            r1 = await ap.send_async(Message(topic, b"awaited"))
            r2 = await ap.send(Message(topic, b"plain"))
            assert r1.status is r2.status is SendStatus.SEND_OK
    asyncio.run(via_asyncio())
    with LitePullConsumer("SdkAsyncReader", namesrv_addr=running.namesrv_addr,
                          consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET) as c:
        c.subscribe(topic)
        bodies = {m.body for m in _drain(c, 45)}
    assert {b"future", b"callback", b"oneway", b"awaited", b"plain"} <= bodies
    assert {f"b{i}".encode() * 1000 for i in range(40)} <= bodies


def test_orderly_sends_keep_each_key_on_one_queue_in_order(running):
    topic = "SdkOrderTopic"
    sel = SelectMessageQueueByHash()
    with Producer("SdkPG4", namesrv_addr=running.namesrv_addr) as p:
        results = [p.send(Message(topic, f"{order}:{step}".encode()), selector=sel, arg=order)
                   for step in range(5) for order in ("o-1", "o-2", "o-3")]
        custom = p.send(Message(topic, b"third"), selector=lambda qs, m, a: qs[a], arg=2)
    assert custom.message_queue.queue_id == 2
    by_order: dict[str, set[int]] = {}
    for r, (_step, order) in zip(results, [(s, o) for s in range(5) for o in ("o-1", "o-2", "o-3")], strict=True):
        by_order.setdefault(order, set()).add(r.message_queue.queue_id)
    assert all(len(qs) == 1 for qs in by_order.values())
    for order, (qid,) in by_order.items():
        def steps(order: str = order, qid: int = qid) -> list[str]:
            return [r.body.decode().split(":")[1] for r in _pull_all(running, topic, qid)
                    if r.body.decode().startswith(order)]
        wait_for(lambda: len(steps()) == 5, WAIT_S, f"five steps of {order}")  # noqa: B023
        assert steps() == [str(s) for s in range(5)]


def test_new_topic_is_routed_after_auto_creation(running):
    topic = "SdkFreshTopic"

    async def main() -> None:
        async with AsyncProducer("SdkPG5", namesrv_addr=running.namesrv_addr) as p:
            first = await p.send(Message(topic, b"first"))       # through TBW102's route
            assert first.status is SendStatus.SEND_OK
            inst = p.instance

            async def routed() -> None:
                while topic not in inst._routes:
                    await inst.refresh_routes()
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(routed(), WAIT_S)
            assert (await p.send(Message(topic, b"second"))).status is SendStatus.SEND_OK
    asyncio.run(main())


def test_a_dead_nameserver_first_in_the_list_is_skipped(running):
    dead = f"127.0.0.1:{free_port()}"
    with Producer("SdkPG6", namesrv_addr=f"{dead};{running.namesrv_addr}") as p:
        p.async_producer.config  # noqa: B018 - the config parsed both addresses
        assert p.send(Message("SdkFailoverTopic", b"x")).status is SendStatus.SEND_OK


def test_lite_pull_poll_seek_commit_and_resume(running):
    topic = "SdkPullTopic"
    mq = MessageQueue(topic, "broker-a", 0)
    with Producer("SdkPG7", namesrv_addr=running.namesrv_addr) as p:
        for i in range(10):
            p.send(Message(topic, f"m{i}".encode(), tags="even" if i % 2 == 0 else "odd"), queue=mq)
    with LitePullConsumer("SdkPullG", namesrv_addr=running.namesrv_addr, auto_commit=False,
                          consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET) as c:
        c.assign([mq])
        got = _drain(c, 10)
        assert [m.body for m in got] == [f"m{i}".encode() for i in range(10)]
        c.seek(mq, 7)
        assert [m.body for m in _drain(c, 3)] == [b"m7", b"m8", b"m9"]
        c.seek_to_begin(mq)
        assert _drain(c, 1)[0].body == b"m0"
        c.seek(mq, 4)
        c.commit_sync()
        assert c.committed(mq) == 4
        c.seek_to_end(mq)
        assert c.poll(0.3) == []
    with LitePullConsumer("SdkPullG", namesrv_addr=running.namesrv_addr, auto_commit=True) as c:
        c.assign([mq])                                   # resumes at the committed 4
        assert _drain(c, 1)[0].body == b"m4"
    with LitePullConsumer("SdkTagG", namesrv_addr=running.namesrv_addr,
                          consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET) as c:
        c.subscribe(topic, "odd")
        assert sorted(m.body for m in _drain(c, 5)) == [f"m{i}".encode() for i in (1, 3, 5, 7, 9)]


def test_auto_commit_at_close_lets_a_restart_resume(running):
    topic = "SdkResumeTopic"
    with Producer("SdkPG8", namesrv_addr=running.namesrv_addr) as p:
        for i in range(6):
            p.send(Message(topic, f"r{i}".encode()))
    opts = dict(namesrv_addr=running.namesrv_addr, consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET)
    with LitePullConsumer("SdkResumeG", **opts) as c:
        c.subscribe(topic)
        first = _drain(c, 6)
    with LitePullConsumer("SdkResumeG", **opts) as c:
        c.subscribe(topic)
        assert c.poll(0.5) == []
    with Producer("SdkPG8", namesrv_addr=running.namesrv_addr) as p:
        p.send(Message(topic, b"after"))
    with LitePullConsumer("SdkResumeG", **opts) as c:
        c.subscribe(topic)
        assert [m.body for m in _drain(c, 1)] == [b"after"]
    assert len(first) == 6
