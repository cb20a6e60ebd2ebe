"""The unmodified C++ orderly push consumer (rocketmq==0.4.4) keeps each queue in order while a
second consumer of its group joins and leaves.

One NameServer + broker; a topic of 8 queues; a C++ producer (send_orderly, hash selector: key
index mod 8, so two keys share each queue) sends rounds of one message per key, numbered 0..N-1,
the whole time. Consumer A (an orderly push consumer: MessageListenerOrderly, queues locked with
LOCK_BATCH_MQ) starts on a backlog. Consumer B joins; the broker's NOTIFY_CONSUMER_IDS_CHANGED makes
both rebalance (A unlocks the queues it gives up, B locks them); once both consume side by side, B
leaves gracefully (offsets persisted, UNLOCK_BATCH_MQ, UNREGISTER_CLIENT) and A must take back
every queue B had. Then the producer stops and everything sent must be consumed.

Checked, from each consumer's JSON lines (one per delivery, with "mono": CLOCK_MONOTONIC, one clock
for every process of the host, read when the listener is entered):
- every message is consumed at least once, and each on its key's queue;
- group order: no delivery of seq n > 0 of a key comes before the first delivery of seq n-1;
- consumer order: in one consumer's stream of one key, each delivery is prev+1, or a jump forward
  over seqs the other consumer consumed before it, or a restart at or below a seq already seen
  (a replay from the committed offset after taking a queue back), at most once per membership
  change;
- duplicates: a duplicate delivery comes only at the start of a consumer's run on a queue,
  right after the queue changed hands (the new owner replays from the committed offset), never
  in the middle of a run or in the queue's first run;
- the rebalance happened: while B was consuming, A consumed from queues B never had;
- at the end the group's committed offset of every queue is the queue's end.
Not checked: how often a queue changes hands during a rebalance. The C++ client 1.2.x gives a
dropped queue's broker lock back (UNLOCK_BATCH_MQ) before it stops consuming the queue: its log shows
"unlock success" for the queue, then the other member's "lock success", then "drop mq" — so for
that moment both members consume the queue by turns, each in order (seen in CI on a loaded
machine: 38 alternations on one queue within ~40 ms). The Java client waits on its consume lock
before unlocking. The broker's side — a queue's lock never held by two clients — is tested in
tests/unit/test_control_clients.py. The hand changes and duplicates are printed.
A member may also replay a queue it never gave away from an older offset (a restart, bounded per
membership change): the C++ client reads a new queue's start offset before it holds the queue's
lock (Java locks first), so a joining member can read a stale offset and, when it leaves, persist
it over the owner's newer commit (seen in its log: "lastOffset ... is:0" before "lock success", its
shutdown persisting 0, then the owner re-reading 0). At-least-once allows that replay; order within
each run still holds and is checked.
Also not checked: that a listener call of one consumer ends before the other's first call on the same
queue. The C++ client drops a queue without waiting for a listener call in progress (the Java
client waits on its consume lock), so that window is the client's, whatever the broker does, and
measuring it would be a timing assertion.

Known limits. With notifications on, A gives up a queue before B asks for it, so this test passes
even against a broker whose LOCK_BATCH_MQ grants every lock (tried): it proves the client's
ordering against rocketpy, not the lock's exclusion. A variant with the group's
notifyConsumerIdsChangedEnable=false (A keeps its queues and locks until its 10 s rebalance timer
while B asks for them) was tried and left out: there A replayed a queue from offset 0 after B left,
with no change of hands; the C++ client computes a queue's start offset when it is allocated,
before it holds the lock, which is the likely cause (not yet pinned down).
Not covered here: a consumer killed with SIGKILL. Its locks stay until the broker's lock expiry
(60 s, RocketMQ's lockMaxLiveTime, not configurable in rocketpy), too long for this test.
CONSUME_FROM_TIMESTAMP cannot be tested with this client: the C API of rocketmq==0.4.4 has no
setter for consumeFromWhere (the consumer always uses CONSUME_FROM_LAST_OFFSET), and the C++ core
1.2.3 computes no start offset for CONSUME_FROM_TIMESTAMP on a new group (the queue is never pulled).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest

from rocketpy.protocol.codes import RequestCode, ResponseCode
from tests.compat.test_cpp_client import (
    DELIVERY_WAIT_S,
    Child,
    Clients,
    broker_client,
    consumer_ids,
    create_topic,
)
from tests.support.cluster import Cluster, cluster, wait_for

PRODUCER_GROUP = "cpp_orderly_rebalance_pg"
QUEUE_COUNT = 8
KEY_COUNT = 16
PACE_MS = 100                   # the producer's pause between rounds (one message per key a round)
MAX_ROUNDS = 400                # bounds the load: at most 6,400 messages
STREAM_DEADLINE_S = 120
BACKLOG_ROUNDS = 10             # sent before A starts
MIN_DELIVERIES_B = 20
WORK_MS = 1                     # listener time per message, so there is a backlog to hand over
MEMBERSHIP_CHANGES = 2          # B joins, B leaves

Delivery = dict[str, Any]       # who, key, seq, queue, mono


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("cpp-orderly-rebalance")) as c:
        yield c


def deliveries(child: Child, who: str) -> list[Delivery]:
    out = []
    for m in child.messages():
        key_text, seq_text = m["body"].split(":")
        out.append({"who": who, "key": int(key_text[1:]), "seq": int(seq_text), "queue": m["queue_id"],
                    "mono": m["mono"]})
    return out


def committed_offsets_all(c: Cluster, group: str, topic: str) -> list[int | None]:
    """The group's committed offset of every queue (None where the broker has none)."""
    out: list[int | None] = []
    with broker_client(c) as b:
        for q in range(QUEUE_COUNT):
            r = b.request(RequestCode.QUERY_CONSUMER_OFFSET, {"consumerGroup": group, "topic": topic, "queueId": q})
            out.append(int(r.ext_str("offset") or "-1") if r.code == ResponseCode.SUCCESS else None)
    return out


def test_orderly_queues_stay_in_order_while_a_second_consumer_joins_and_leaves(
        clients: Clients, running: Cluster) -> None:
    topic, group = "CppOrderlyRebalanceTopic", "cpp_orderly_rebalance_cg"
    create_topic(running, topic, queues=QUEUE_COUNT)

    producer = clients.start("stream", group=PRODUCER_GROUP, topic=topic, keys=KEY_COUNT, max_rounds=MAX_ROUNDS,
                             pace_ms=PACE_MS, deadline_s=STREAM_DEADLINE_S)

    def rounds() -> list[dict[str, Any]]:
        return [e for e in producer.snapshot() if e.get("event") == "round"]
    try:
        wait_for(lambda: len(rounds()) >= BACKLOG_ROUNDS or producer.popen.poll() is not None, DELIVERY_WAIT_S,
                 "a backlog to be sent", interval_s=0.05)
        a = clients.consumer(group, topic, orderly=True, work_ms=WORK_MS)
        wait_for(lambda: a.messages() or a.popen.poll() is not None, DELIVERY_WAIT_S, "A's first message",
                 interval_s=0.05)

        # B joins; both must consume side by side (A from queues B was not given)
        b = clients.consumer(group, topic, orderly=True, work_ms=WORK_MS)

        def side_by_side() -> bool:
            got_b = deliveries(b, "B")
            b_queues = {d["queue"] for d in got_b}
            return len(got_b) >= MIN_DELIVERIES_B and any(
                d["mono"] > got_b[0]["mono"] and d["queue"] not in b_queues for d in deliveries(a, "A"))
        wait_for(lambda: side_by_side() or b.popen.poll() is not None, DELIVERY_WAIT_S,
                 "A and B to consume side by side", interval_s=0.1)
        assert b.popen.poll() is None, b.diagnostics()

        # B leaves; A must take back every queue B had
        b.stop()
        assert b.wait() == 0 and b.snapshot()[-1].get("event") == "done", b.diagnostics()
        left_at = deliveries(b, "B")[-1]["mono"]
        b_queues = {d["queue"] for d in deliveries(b, "B")}
        wait_for(lambda: len(consumer_ids(running, group)) == 1, DELIVERY_WAIT_S, "B to be unregistered",
                 interval_s=0.1)
        wait_for(lambda: {d["queue"] for d in deliveries(a, "A") if d["mono"] > left_at} >= b_queues,
                 DELIVERY_WAIT_S, f"A to take over B's queues {sorted(b_queues)}", interval_s=0.1)
        producer.stop()
        assert producer.wait() == 0, producer.diagnostics()
        done = producer.snapshot()[-1]
        assert done.get("event") == "done" and done["errors"] == [], producer.diagnostics()
        sent_rounds = done["rounds"]
        everything = {(k, s) for k in range(KEY_COUNT) for s in range(sent_rounds)}

        def consumed() -> set[tuple[int, int]]:
            return {(d["key"], d["seq"]) for x, who in ((a, "A"), (b, "B")) for d in deliveries(x, who)}
        wait_for(lambda: consumed() >= everything, DELIVERY_WAIT_S, "every message to be consumed", interval_s=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{clients.diagnostics()}") from None
    a.stop()
    assert a.wait() == 0, a.diagnostics()

    queue_of_key = {int(k): q for k, q in rounds()[0]["queues"].items()}
    assert sorted(set(queue_of_key.values())) == list(range(QUEUE_COUNT)), queue_of_key
    assert all({int(k): q for k, q in r["queues"].items()} == queue_of_key for r in rounds()), "a key moved queue"
    got_a, got_b = deliveries(a, "A"), deliveries(b, "B")
    every = got_a + got_b
    for d in every:
        assert d["queue"] == queue_of_key[d["key"]], f"delivered from another queue than its key's: {d}"
    check_group_order(every)
    restarts = {who: check_consumer_order(own, every) for who, own in (("A", got_a), ("B", got_b))}
    switches, duplicates = check_duplicates_start_runs(every)
    b_queues = {d["queue"] for d in got_b}
    print(f"{sent_rounds} rounds x {KEY_COUNT} keys sent; A: {len(got_a)} deliveries from queues "
          f"{sorted({d['queue'] for d in got_a})}; B: {len(got_b)} from queues {sorted(b_queues)}; duplicates "
          f"{duplicates}; owner switches per queue {switches}; restarts {restarts}")
    assert 0 < len(b_queues) < QUEUE_COUNT, b_queues
    # A's shutdown persisted its offsets: the group's committed offsets are at every queue's end
    per_queue = collections.Counter(queue_of_key.values())
    ends = [per_queue[q] * sent_rounds for q in range(QUEUE_COUNT)]
    wait_for(lambda: committed_offsets_all(running, group, topic) == ends, DELIVERY_WAIT_S,
             f"the group's committed offsets to reach {ends}", interval_s=0.2)


def check_group_order(every: list[Delivery]) -> None:
    """No seq n > 0 of a key is delivered before the first delivery of seq n-1 (mono order)."""
    first_at: dict[tuple[int, int], float] = {}
    for d in every:
        k = (d["key"], d["seq"])
        first_at[k] = min(first_at.get(k, d["mono"]), d["mono"])
    for d in every:
        if d["seq"] > 0:
            prev = first_at.get((d["key"], d["seq"] - 1))
            assert prev is not None and prev <= d["mono"], f"seq {d['seq']} of key {d['key']} before seq {d['seq'] - 1}: {d}"


def check_consumer_order(own: list[Delivery], every: list[Delivery]) -> dict[int, int]:
    """One consumer's stream of each key (in its delivery order): prev+1, a jump over seqs the other
    consumer consumed earlier, or a restart at or below a seq already seen, at most once per
    membership change. Returns the restarts per key."""
    restarts: collections.Counter[int] = collections.Counter()
    prev: dict[int, int] = {}
    for d in own:
        k, s = d["key"], d["seq"]
        p = prev.get(k)
        if p is not None and s <= p:
            restarts[k] += 1
            assert restarts[k] <= MEMBERSHIP_CHANGES, f"{d['who']} restarted key {k} {restarts[k]} times"
        elif p is not None and s > p + 1:
            gap = set(range(p + 1, s))
            by_other = {o["seq"] for o in every if o["who"] != d["who"] and o["key"] == k and o["mono"] < d["mono"]}
            assert gap <= by_other, f"{d['who']} jumped from {p} to {s} on key {k}; nobody had {sorted(gap - by_other)}"
        prev[k] = s
    return dict(restarts)


def check_duplicates_start_runs(every: list[Delivery]) -> tuple[dict[int, int], int]:
    """Per queue, in mono order: a message delivered before is delivered again only at the start of
    a run that follows a change of consumer or a restart of the same consumer from an older offset. Returns the owner switches per queue (reported, not
    bounded: see the module docstring) and the number of duplicate deliveries."""
    by_queue: dict[int, list[Delivery]] = collections.defaultdict(list)
    for d in every:
        by_queue[d["queue"]].append(d)
    switches: dict[int, int] = {}
    duplicates = 0
    for q, ds in sorted(by_queue.items()):
        ds.sort(key=lambda d: d["mono"])
        trail = [(d["who"], d["key"], d["seq"]) for d in ds]
        seen: set[tuple[int, int]] = set()
        switches[q] = 0
        replaying = False               # at the start of a run that follows a change of hands or a restart
        last: dict[tuple[str, int], int] = {}
        for i, d in enumerate(ds):
            if i and d["who"] != ds[i - 1]["who"]:
                switches[q] += 1
                replaying = True
            mine = (d["who"], d["key"])
            if mine in last and d["seq"] < last[mine]:
                replaying = True        # a restart (bounded per consumer and key by check_consumer_order)
            last[mine] = d["seq"]
            msg = (d["key"], d["seq"])
            if msg in seen:
                assert replaying, f"queue {q}: {msg} delivered again in the middle of a run: {trail}"
                duplicates += 1
            else:
                replaying = False
                seen.add(msg)
    return switches, duplicates
