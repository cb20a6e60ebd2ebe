"""The push consumer's decisions, driven without a network: start offsets by consumeFromWhere,
what a listener's answer does to retries and offsets, the client-side tag filter, retried
messages' real topic, orderly suspend and its retry limit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rocketpy.client.config import ClientConfig
from rocketpy.client.message import MessageExt, MessageQueue, PullResult, PullStatus
from rocketpy.client.offset_store import RemoteBrokerOffsetStore
from rocketpy.client.process_queue import ProcessQueue
from rocketpy.client.push_consumer import (
    ConsumeConcurrentlyStatus,
    ConsumeOrderlyStatus,
    PushConsumerOptions,
    _await_listener,
    _ConsumerCore,
    parse_consume_timestamp,
)
from rocketpy.errors import ConfigError
from rocketpy.protocol import message as pm
from rocketpy.protocol.bodies import ConsumeFromWhere, MessageModel, build_subscription

MQ = MessageQueue("T", "broker-a", 0)
RETRY_MQ = MessageQueue("%RETRY%G", "broker-a", 0)


def ext(offset: int, *, topic: str = "T", tags: str | None = None, props: dict[str, str] | None = None,
        reconsume_times: int = 0) -> MessageExt:
    properties = dict(props or {})
    if tags:
        properties[pm.PROPERTY_TAGS] = tags
    return MessageExt(topic=topic, body=f"b{offset}".encode(), properties=properties, queue_id=0,
                      queue_offset=offset, commitlog_offset=1000 + offset, sys_flag=0, born_timestamp=0,
                      born_host="127.0.0.1:1", store_timestamp=0, store_host="127.0.0.1:10911",
                      reconsume_times=reconsume_times, msg_id=f"id{offset}", offset_msg_id="", broker_name="broker-a")


class FakeInstance:
    def __init__(self) -> None:
        self.committed: dict[MessageQueue, int] = {}
        self.sent_back: list[tuple[int, int, int]] = []      # (offset, delay level, max reconsume times)
        self.send_back_fails = False
        self.searched: list[int] = []

    async def query_consumer_offset(self, mq: MessageQueue, group: str) -> int | None:
        return self.committed.get(mq)

    async def update_consumer_offset(self, mq: MessageQueue, group: str, offset: int, *, oneway: bool = True) -> None:
        self.committed[mq] = offset

    async def max_offset(self, mq: MessageQueue) -> int:
        return 42

    async def search_offset(self, mq: MessageQueue, timestamp_ms: int) -> int:
        self.searched.append(timestamp_ms)
        return 7

    async def send_back(self, msg: MessageExt, group: str, delay_level: int, max_reconsume_times: int) -> None:
        if self.send_back_fails:
            raise ConnectionError("broker down")
        self.sent_back.append((msg.queue_offset, delay_level, max_reconsume_times))


def make_core(*, orderly: bool = False, **options: Any) -> tuple[_ConsumerCore, FakeInstance]:
    core = _ConsumerCore("G", ClientConfig.make("127.0.0.1:9876"), PushConsumerOptions(**options), _await_listener)
    fake = FakeInstance()
    core.instance = fake  # type: ignore[assignment]
    core.offset_store = RemoteBrokerOffsetStore(fake, "G")
    core.subscriptions["T"] = build_subscription("T", "TagA || TagB")
    core._start_ms = 10_000_000
    if orderly:
        core.orderly_listener = lambda msgs, ctx: ConsumeOrderlyStatus.SUCCESS
    else:
        core.concurrent_listener = lambda msgs, ctx: ConsumeConcurrentlyStatus.CONSUME_SUCCESS
    return core, fake


def run(core: _ConsumerCore, coro: Any) -> Any:
    async def main() -> Any:
        core._semaphore = asyncio.Semaphore(4)
        core._stopping = asyncio.Event()
        core.running = True
        result = await coro()
        while core._consume_tasks:
            await asyncio.gather(*list(core._consume_tasks))
        return result
    return asyncio.run(main())


@pytest.mark.parametrize(("where", "mq", "expected"), [
    (ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET, MQ, 42),          # max offset
    (ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET, RETRY_MQ, 0),     # retry topics from the start
    (ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET, MQ, 0),
    (ConsumeFromWhere.CONSUME_FROM_TIMESTAMP, MQ, 7),             # search by time
    (ConsumeFromWhere.CONSUME_FROM_TIMESTAMP, RETRY_MQ, 42),
])
def test_start_offset_of_a_new_group(where: ConsumeFromWhere, mq: MessageQueue, expected: int) -> None:
    core, fake = make_core(consume_from_where=where)
    assert run(core, lambda: core.compute_pull_from_where(mq)) == expected
    if where == ConsumeFromWhere.CONSUME_FROM_TIMESTAMP and mq is MQ:
        assert fake.searched == [10_000_000 - 30 * 60 * 1000]     # half an hour before start


def test_a_committed_offset_wins_over_consume_from_where() -> None:
    core, fake = make_core(consume_from_where=ConsumeFromWhere.CONSUME_FROM_TIMESTAMP, consume_timestamp_ms=5)
    fake.committed[MQ] = 13
    assert run(core, lambda: core.compute_pull_from_where(MQ)) == 13
    assert fake.searched == []


def test_consume_timestamp_formats() -> None:
    assert parse_consume_timestamp(123) == 123
    assert parse_consume_timestamp("20240131235959") > 0
    with pytest.raises(ConfigError, match="yyyyMMddHHmmss"):
        parse_consume_timestamp("yesterday")


@pytest.mark.parametrize("answer", [ConsumeConcurrentlyStatus.RECONSUME_LATER, None, "raise"])
def test_a_failed_message_is_sent_back_and_its_offset_passed(answer: Any) -> None:
    core, fake = make_core()

    def listener(msgs: list[MessageExt], ctx: Any) -> Any:
        if answer == "raise":
            raise RuntimeError("boom")
        return answer

    core.concurrent_listener = listener
    pq = ProcessQueue()
    msgs = [ext(5, tags="TagA")]
    pq.put_messages(msgs)
    run(core, lambda: core._consume_concurrently(MQ, pq, msgs))
    assert fake.sent_back == [(5, 0, 16)]          # delay 0: the broker picks 3 + reconsume times
    assert core.offset_store is not None and core.offset_store.offsets() == {MQ: 6}
    assert pq.msg_count == 0


def test_a_failed_send_back_keeps_the_message_and_its_offset_for_a_local_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    from rocketpy import limits
    monkeypatch.setattr(limits, "SEND_BACK_FAILED_RECONSUME_DELAY_MS", 1)
    core, fake = make_core()
    fake.send_back_fails = True
    calls: list[tuple[int, int]] = []

    def listener(msgs: list[MessageExt], ctx: Any) -> Any:
        m = msgs[0]
        calls.append((m.queue_offset, m.reconsume_times))
        if m.queue_offset == 5 and m.reconsume_times == 0:
            return ConsumeConcurrentlyStatus.RECONSUME_LATER
        return ConsumeConcurrentlyStatus.CONSUME_SUCCESS

    core.concurrent_listener = listener
    pq = ProcessQueue()
    msgs = [ext(5), ext(6)]
    pq.put_messages(msgs)

    async def scenario() -> None:
        await core._consume_concurrently(MQ, pq, [msgs[1]])   # 6 done first: 5 still holds the offset
        assert core.offset_store is not None and core.offset_store.offsets() == {MQ: 5}
        await core._consume_concurrently(MQ, pq, [msgs[0]])   # fails, and so does its send-back
        assert pq.msg_count == 1 and core.offset_store.offsets() == {MQ: 5}

    run(core, scenario)                                 # waits for the local retry
    assert calls == [(6, 0), (5, 0), (5, 1)]
    assert core.offset_store is not None and core.offset_store.offsets() == {MQ: 7} and pq.msg_count == 0


def test_broadcasting_drops_failed_messages_without_sending_them_back() -> None:
    core, fake = make_core(message_model=MessageModel.BROADCASTING)
    core.concurrent_listener = lambda msgs, ctx: ConsumeConcurrentlyStatus.RECONSUME_LATER
    pq = ProcessQueue()
    msgs = [ext(3)]
    pq.put_messages(msgs)
    run(core, lambda: core._consume_concurrently(MQ, pq, msgs))
    assert fake.sent_back == [] and core.offset_store is not None and core.offset_store.offsets() == {MQ: 4}


def test_a_retried_message_shows_its_real_topic() -> None:
    core, _ = make_core()
    topics: list[str] = []

    def listener(msgs: list[MessageExt], ctx: Any) -> Any:
        topics.extend(m.topic for m in msgs)
        return ConsumeConcurrentlyStatus.CONSUME_SUCCESS

    core.concurrent_listener = listener
    pq = ProcessQueue()
    msgs = [ext(0, topic="%RETRY%G", props={pm.PROPERTY_RETRY_TOPIC: "T"})]
    pq.put_messages(msgs)
    run(core, lambda: core._consume_concurrently(RETRY_MQ, pq, msgs))
    assert topics == ["T"] and pm.PROPERTY_CONSUME_START_TIMESTAMP in msgs[0].properties


def test_pull_results_are_refiltered_by_tag_and_an_empty_queue_moves_its_offset() -> None:
    core, _ = make_core()
    got: list[int] = []
    core._submit_concurrently = lambda mq, pq, msgs: got.extend(m.queue_offset for m in msgs)  # type: ignore[method-assign]
    pq = ProcessQueue()
    sub = core.subscriptions["T"]
    found = PullResult(PullStatus.FOUND, 4, 0, 4, [ext(0, tags="TagA"), ext(1, tags="TagC"), ext(2), ext(3, tags="TagB")])

    async def scenario() -> None:
        assert core._on_pull_result(MQ, pq, sub, 0, found) == 4
        assert got == [0, 3]
        pq.remove_messages(pq.messages())
        only_other = PullResult(PullStatus.FOUND, 9, 0, 9, [ext(8, tags="TagC")])
        assert core._on_pull_result(MQ, pq, sub, 4, only_other) == 9
        assert core.offset_store is not None and core.offset_store.offsets()[MQ] == 9
        assert core._on_pull_result(MQ, pq, sub, 9, PullResult(PullStatus.NO_NEW_MSG, 9, 0, 9)) == 9

    run(core, scenario)


def test_orderly_suspend_puts_messages_back_then_gives_up_past_the_retry_limit() -> None:
    core, fake = make_core(orderly=True, max_reconsume_times=2, suspend_current_queue_time_ms=1)
    answers: list[int] = []

    def listener(msgs: list[MessageExt], ctx: Any) -> Any:
        answers.append(msgs[0].queue_offset)
        return ConsumeOrderlyStatus.SUSPEND_CURRENT_QUEUE_A_MOMENT if msgs[0].queue_offset == 0 else \
            ConsumeOrderlyStatus.SUCCESS

    core.orderly_listener = listener
    core.options = PushConsumerOptions(max_reconsume_times=2, suspend_current_queue_time_ms=1,
                                       message_model=MessageModel.BROADCASTING)   # no broker lock needed
    pq = ProcessQueue()
    msgs = [ext(0), ext(1)]
    pq.put_messages(msgs)

    async def scenario() -> None:
        await core._consume_orderly(MQ, pq)
        for _ in range(200):
            if core.offset_store is not None and core.offset_store.offsets().get(MQ) == 2:
                return
            await asyncio.sleep(0.005)

    run(core, scenario)
    assert answers == [0, 0, 0, 1]                  # 0 suspended twice, then past the limit: sent back
    assert fake.sent_back == [(0, -1, 2)]
    assert core.offset_store is not None and core.offset_store.offsets() == {MQ: 2}


def test_a_message_stuck_in_its_listener_past_the_consume_timeout_is_sent_back() -> None:
    import types
    core, fake = make_core(consume_timeout_ms=60_000)
    now = [1_000_000]
    pq = ProcessQueue(clock_ms=lambda: now[0])
    msgs = [ext(4), ext(5)]
    pq.put_messages(msgs)
    pq.mark_consume_start(msgs[:1])
    core.rebalance = types.SimpleNamespace(process_queue_table={MQ: pq})  # type: ignore[assignment]
    run(core, core.clean_expired)
    assert fake.sent_back == [] and pq.msg_count == 2                  # not expired yet
    now[0] += 60_001
    run(core, core.clean_expired)
    assert fake.sent_back == [(4, 3, 16)]                               # delay level 3, as RocketMQ
    assert pq.msg_count == 1 and pq.first_offset() == 5                 # no longer holds the offset back
