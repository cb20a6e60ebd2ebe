"""The client registry: membership, notify pushes, expiry, queue locks; all on a fake clock."""

from __future__ import annotations

from rocketpy.broker.control.clients import (
    ClientChannel,
    ConsumerManager,
    ProducerManager,
    RebalanceLockManager,
)
from rocketpy.clock import FakeClock
from rocketpy.protocol.bodies import ConsumerData, HeartbeatData, MessageQueue, build_subscription
from rocketpy.protocol.codes import RequestCode
from rocketpy.protocol.remoting import FLAG_ONEWAY, decode_frame


class Pushes:
    def __init__(self) -> None:
        self.sent: list[tuple[int, int, int, str, int]] = []   # slot, conn, code, group, flag

    def __call__(self, slot: int, conn_id: int, frame: bytes) -> None:
        cmd = decode_frame(frame[4:])
        value = cmd.ext_fields["consumerGroup"]
        assert type(value) is str
        self.sent.append((slot, conn_id, cmd.code, value, cmd.flag))

    def take(self) -> list[tuple[int, int]]:
        out = [(s, c) for s, c, _, _, _ in self.sent]
        self.sent.clear()
        return sorted(out)


def _consumer(group: str, *topics: str) -> ConsumerData:
    return ConsumerData(group, subscription_data_set=tuple(build_subscription(t, "*") for t in topics))


def _ch(slot: int, conn: int, cid: str) -> ClientChannel:
    return ClientChannel(worker_slot=slot, conn_id=conn, client_id=cid)


def test_join_notifies_every_member() -> None:
    pushes = Pushes()
    m = ConsumerManager(pushes, clock=FakeClock())
    assert m.register(_ch(3, 1, "c1"), _consumer("G", "T"))
    assert pushes.sent == [(3, 1, RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, "G", FLAG_ONEWAY)]
    pushes.take()
    assert m.register(_ch(4, 7, "c2"), _consumer("G", "T"))
    assert pushes.take() == [(3, 1), (4, 7)]
    assert sorted(m.consumer_ids("G")) == ["c1", "c2"]
    # same heartbeat again: nothing changed, nothing pushed
    assert not m.register(_ch(3, 1, "c1"), _consumer("G", "T"))
    assert pushes.take() == []
    # a new subscribed topic is a change
    assert m.register(_ch(3, 1, "c1"), _consumer("G", "T", "T2"))
    assert pushes.take() == [(3, 1), (4, 7)]
    # a changed expression for the same topic is not
    sub = build_subscription("T", "TagA", sub_version=5)
    assert not m.register(_ch(3, 1, "c1"), ConsumerData("G", subscription_data_set=(
        sub, build_subscription("T2", "*"))))
    assert m.get("G").subscriptions["T"].sub_string == "TagA"  # type: ignore[union-attr]


def test_leave_close_and_worker_gone() -> None:
    pushes = Pushes()
    m = ConsumerManager(pushes, clock=FakeClock())
    m.register(_ch(3, 1, "c1"), _consumer("G", "T"))
    m.register(_ch(3, 2, "c2"), _consumer("G", "T"))
    m.register(_ch(4, 1, "c3"), _consumer("G", "T"))
    pushes.take()
    assert m.unregister("G", "3:1")
    assert pushes.take() == [(3, 2), (4, 1)]
    assert m.connection_closed("3:2") == ["G"]
    assert pushes.take() == [(4, 1)]
    m.register(_ch(3, 5, "c4"), _consumer("G", "T"))
    pushes.take()
    assert m.worker_gone(4) == 1
    assert m.consumer_ids("G") == ["c4"]
    assert pushes.take() == [(3, 5)]
    m.connection_closed("3:5")
    assert m.get("G") is None
    assert pushes.take() == []


def test_expiry() -> None:
    clock = FakeClock()
    pushes = Pushes()
    m = ConsumerManager(pushes, clock=clock, expiry_ms=120_000)
    m.register(_ch(3, 1, "c1"), _consumer("G", "T"))
    clock.advance(60_000)
    m.register(_ch(3, 2, "c2"), _consumer("G", "T"))
    pushes.take()
    clock.advance(60_000)
    assert m.scan_expired() == []
    clock.advance(1)
    assert m.scan_expired() == ["3:1"]
    assert pushes.take() == [(3, 2)]
    clock.advance(60_000)
    assert m.scan_expired() == ["3:2"]
    assert m.get("G") is None


def test_notify_disabled_per_group() -> None:
    pushes = Pushes()
    m = ConsumerManager(pushes, notify_enabled=lambda g: g != "quiet", clock=FakeClock())
    assert m.register(_ch(3, 1, "c1"), _consumer("quiet", "T"))
    assert m.register(_ch(3, 2, "c2"), _consumer("quiet", "T"))
    assert pushes.sent == []


def test_heartbeat_with_ordinals_registers() -> None:
    body = (b'{"clientID":"10.0.0.1@1","producerDataSet":[{"groupName":"PG"}],"consumerDataSet":'
            b'[{"groupName":"CG","consumeType":1,"messageModel":1,"consumeFromWhere":4,'
            b'"subscriptionDataSet":[{"topic":"T","subString":"a||b","subVersion":"17"}]}]}')
    hb = HeartbeatData.from_json(body)
    pushes = Pushes()
    m = ConsumerManager(pushes, clock=FakeClock())
    m.register(_ch(3, 1, hb.client_id), hb.consumer_data_set[0])
    assert m.consumer_ids("CG") == ["10.0.0.1@1"]
    p = ProducerManager(clock=FakeClock())
    p.register(hb.producer_data_set[0].group_name, _ch(3, 1, hb.client_id))
    assert [c.client_id for c in p.channels("PG")] == ["10.0.0.1@1"]


def test_producer_expiry_and_close() -> None:
    clock = FakeClock()
    p = ProducerManager(clock=clock, expiry_ms=1000)
    p.register("PG", _ch(3, 1, "a"))
    p.register("PG", _ch(3, 2, "b"))
    p.connection_closed("3:2")
    assert [c.client_id for c in p.channels("PG")] == ["a"]
    clock.advance(1001)
    assert p.scan_expired() == ["3:1"]
    assert p.channels("PG") == []


def test_locks_expire_after_60_s() -> None:
    clock = FakeClock()
    locks = RebalanceLockManager(clock=clock)
    q0, q1 = MessageQueue("T", "b", 0), MessageQueue("T", "b", 1)
    assert locks.try_lock_batch("G", [q0, q1], "A") == [q0, q1]
    assert locks.try_lock_batch("G", [q0, q1], "B") == []
    clock.advance(30_000)
    assert locks.try_lock_batch("G", [q0], "A") == [q0]       # renewal
    clock.advance(30_001)
    assert locks.try_lock_batch("G", [q0, q1], "B") == [q1]   # q1 expired, q0 renewed 30 s ago
    assert locks.is_locked("G", q1, "B")
    locks.unlock_batch("G", [q0], "B")                        # not B's: no effect
    assert locks.try_lock_batch("G", [q0], "B") == []
    locks.unlock_batch("G", [q0], "A")
    assert locks.try_lock_batch("G", [q0], "B") == [q0]
    assert locks.try_lock_batch("other", [q0], "A") == [q0]   # locks are per group


def test_worker_gone_notifies_each_group_once() -> None:
    pushes = Pushes()
    clock = FakeClock()
    m = ConsumerManager(pushes, clock=clock, expiry_ms=1000)
    for conn in range(1, 4):
        m.register(_ch(4, conn, f"c{conn}"), _consumer("G", "T"))
    m.register(_ch(3, 1, "survivor"), _consumer("G", "T"))
    m.register(_ch(3, 1, "survivor"), _consumer("H", "T"))
    m.register(_ch(4, 9, "x"), _consumer("H", "T"))
    pushes.take()
    assert m.worker_gone(4) == 4
    assert pushes.take() == [(3, 1), (3, 1)]          # one notify for G, one for H
    assert m.consumer_ids("G") == ["survivor"] and m.consumer_ids("H") == ["survivor"]
    # expiry of several connections at once also notifies once
    m.register(_ch(5, 1, "a"), _consumer("G", "T"))
    m.register(_ch(5, 2, "b"), _consumer("G", "T"))
    clock.advance(500)
    m.register(_ch(3, 1, "survivor"), _consumer("G", "T"))
    m.register(_ch(3, 1, "survivor"), _consumer("H", "T"))
    pushes.take()
    clock.advance(501)
    assert sorted(m.scan_expired()) == ["5:1", "5:2"]
    assert pushes.take() == [(3, 1)]


def test_expired_lock_changes_hands_once_and_is_never_held_twice() -> None:
    """RocketMQ's RebalanceLockManager: expired means strictly more than 60 s since the last
    renewal; after a takeover the previous holder's renewal fails and only the new holder may unlock."""
    clock = FakeClock()
    locks = RebalanceLockManager(clock=clock)
    q = MessageQueue("T", "b", 0)
    assert locks.try_lock_batch("G", [q], "A") == [q]
    clock.advance(60_000)
    assert locks.is_locked("G", q, "A") and locks.try_lock_batch("G", [q], "B") == []   # exactly 60 s: still A's
    clock.advance(1)
    assert not locks.is_locked("G", q, "A")
    assert locks.try_lock_batch("G", [q], "B") == [q]
    assert locks.try_lock_batch("G", [q], "A") == []                  # A's late renewal loses
    holders = [c for c in ("A", "B") if locks.is_locked("G", q, c)]
    assert holders == ["B"]
    locks.unlock_batch("G", [q], "A")
    assert locks.is_locked("G", q, "B")
    locks.unlock_batch("G", [q], "B")
    assert locks.try_lock_batch("G", [q], "A") == [q]


def test_unlock_client_frees_only_that_clients_queues_in_that_group() -> None:
    clock = FakeClock()
    locks = RebalanceLockManager(clock=clock)
    q0, q1, q2 = (MessageQueue("T", "b", i) for i in range(3))
    assert locks.try_lock_batch("G", [q0, q1], "A") == [q0, q1]
    assert locks.try_lock_batch("G", [q2], "B") == [q2]
    assert locks.try_lock_batch("H", [q0], "A") == [q0]
    assert locks.try_lock_batch("G", [q0, q1], "B") == []
    assert sorted(locks.unlock_client("G", "A"), key=lambda mq: mq.queue_id) == [q0, q1]
    assert locks.try_lock_batch("G", [q0, q1], "B") == [q0, q1]       # at once, no 60 s wait
    assert locks.is_locked("H", q0, "A")                              # other groups keep theirs
    assert locks.unlock_client("G", "A") == [] and locks.unlock_client("nope", "A") == []
    assert locks.unlock_client("G", "B") and locks.groups.get("G") is None
