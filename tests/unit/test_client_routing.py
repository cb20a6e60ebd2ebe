"""Queue choice: latency fault tolerance (fake clock) and selectors."""

from __future__ import annotations

import pytest

from rocketpy.client.fault import MQFaultStrategy, not_available_duration_ms
from rocketpy.client.message import Message, MessageQueue
from rocketpy.client.producer import AsyncProducer
from rocketpy.client.selector import SelectMessageQueueByHash, SelectMessageQueueByRandom, java_hash
from rocketpy.clock import FakeClock
from rocketpy.errors import MessageIllegalError

QUEUES = [MessageQueue("T", b, q) for b in ("a", "b") for q in range(2)]


@pytest.mark.parametrize(("latency_ms", "penalty_ms"), [
    (0, 0), (99, 0), (549, 0), (550, 30_000), (999, 30_000), (1000, 60_000), (2000, 120_000),
    (3000, 180_000), (15_000, 600_000), (30_000, 600_000)])
def test_penalty_table(latency_ms, penalty_ms):
    assert not_available_duration_ms(latency_ms) == penalty_ms


def test_failed_broker_is_avoided_until_its_penalty_ends():
    clock = FakeClock()
    fs = MQFaultStrategy(True, clock)
    fs.update("a", 10, isolation=True)              # 30 s counts as 600 s unavailable
    assert {fs.select(QUEUES).broker_name for _ in range(20)} == {"b"}
    clock.advance(599_999)
    assert {fs.select(QUEUES).broker_name for _ in range(20)} == {"b"}
    clock.advance(1)
    assert {fs.select(QUEUES).broker_name for _ in range(20)} == {"a", "b"}


def test_all_brokers_down_picks_the_least_bad_one():
    clock = FakeClock()
    fs = MQFaultStrategy(True, clock)
    fs.update("a", 10, isolation=True)
    clock.advance(1000)
    fs.update("b", 10, isolation=True)              # b is unavailable for longer
    assert fs.select(QUEUES).broker_name in {"a", "b"}
    assert fs.select(QUEUES).topic == "T"


def test_round_robin_and_retry_elsewhere_when_disabled():
    fs = MQFaultStrategy(False)
    picks = [fs.select(QUEUES) for _ in range(8)]
    assert set(picks) == set(QUEUES)
    assert all(fs.select(QUEUES, last_broker="a").broker_name == "b" for _ in range(10))


def test_retry_prefers_another_available_broker():
    fs = MQFaultStrategy(True, FakeClock())
    assert all(fs.select(QUEUES, last_broker="b").broker_name == "a" for _ in range(10))
    one = [MessageQueue("T", "a", 0)]
    assert fs.select(one, last_broker="a") == one[0]


def test_hash_selector_matches_java_hash_codes():
    assert java_hash("abc") == 96354 and java_hash(7) == 7 and java_hash(True) == 1231
    assert java_hash("polygenelubricants") == -(1 << 31)    # Java's famous MIN_VALUE hash
    sel = SelectMessageQueueByHash()
    msg = Message("T", b"x")
    assert sel(QUEUES, msg, "abc") == QUEUES[96354 % 4]
    assert sel(QUEUES, msg, -5) == QUEUES[5 % 4]
    assert len({SelectMessageQueueByRandom()(QUEUES, msg, None) for _ in range(200)}) == 4


def test_long_hash_is_javas():
    # Long.hashCode(v) = (int)(v ^ (v >>> 32)): 2^40 + 3 -> 3 ^ 256 = 259
    assert java_hash((1 << 40) + 3) == 259
    assert java_hash(-(1 << 40)) == -256 ^ 0 and java_hash(-(1 << 40)) < 0


def _producer() -> AsyncProducer:
    return AsyncProducer("PG", namesrv_addr="127.0.0.1:1")


def test_messages_are_checked_before_sending():
    p = _producer()
    with pytest.raises(MessageIllegalError, match="empty"):
        p._prepare(Message("T", b""))
    with pytest.raises(MessageIllegalError, match="system topic"):
        p._prepare(Message("SCHEDULE_TOPIC_XXXX", b"x"))
    with pytest.raises(MessageIllegalError, match="max_message_size"):
        AsyncProducer("PG", namesrv_addr="h:1", max_message_size=10)._prepare(Message("T", b"x" * 11))


def test_prepare_compresses_large_bodies_and_keeps_the_uniq_key():
    p = _producer()
    msg = Message("T", b"a" * 5000)
    first = p._prepare(msg)
    assert first.sys_flag & 0x1 and len(first.body) < 5000
    assert p._prepare(msg).msg_id == first.msg_id == msg.uniq_key
    assert p._prepare(Message("T", b"a" * 4095)).sys_flag == 0


def test_batches_split_at_the_size_limit_and_refuse_delay():
    p = AsyncProducer("PG", namesrv_addr="h:1", max_message_size=10_000)
    msgs = [Message("T", b"x" * 1000) for _ in range(25)]
    batches = p._prepare_batches(msgs)
    assert len(batches) >= 3 and all(len(b.body) <= 10_000 for b in batches)
    assert sum(len(b.msg_id.split(",")) for b in batches) == 25
    with pytest.raises(MessageIllegalError, match="delayed"):
        p._prepare_batches([Message("T", b"x", delay_level=2)])
    with pytest.raises(MessageIllegalError, match="one topic"):
        p._prepare_batches([Message("T", b"x"), Message("U", b"x")])
