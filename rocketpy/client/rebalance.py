"""Queue allocation strategies and the rebalance of a push consumer (RocketMQ's RebalanceImpl).

Every member of a consumer group computes the same allocation on its own: it sorts the
topic's queues and the group's client ids, and a strategy picks its share. The results
here are RocketMQ's, queue for queue, so a rocketpy consumer and a Java consumer can share a
group without owning a queue twice or leaving one orphaned (strategies are ported from
`org.apache.rocketmq.client.consumer.rebalance`, facts only).

`RebalanceImpl` diffs an allocation against the queues a consumer holds: dropped queues
commit their offset (and are unlocked for orderly consumers) before they go, new queues get
a start offset from the committed offset or, for a new group, from consumeFromWhere.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

from rocketpy.client.process_queue import ProcessQueue, now_ms
from rocketpy.limits import CONSISTENT_HASH_VIRTUAL_NODE_COUNT_DEFAULT
from rocketpy.protocol.topics import RETRY_GROUP_TOPIC_PREFIX

log = logging.getLogger("rocketpy.client.rebalance")


class QueueLike(Protocol):
    """What a strategy reads of a message queue (the SDK's `MessageQueue` has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def broker_name(self) -> str: ...
    @property
    def queue_id(self) -> int: ...


Q = TypeVar("Q", bound=QueueLike)


def queue_sort_key(mq: QueueLike) -> tuple[str, str, int]:
    """MessageQueue.compareTo: topic, then broker name, then queue id."""
    return (mq.topic, mq.broker_name, mq.queue_id)


def queue_to_string(mq: QueueLike) -> str:
    """MessageQueue.toString: the key the consistent-hash strategy hashes."""
    return f"MessageQueue [topic={mq.topic}, brokerName={mq.broker_name}, queueId={mq.queue_id}]"


def _check(group: str, current_cid: str, mq_all: Sequence[object], cid_all: Sequence[str]) -> bool:
    """AbstractAllocateMessageQueueStrategy.check: bad input raises; a client that is not (yet)
    in the group's list gets nothing rather than a share computed from a wrong index."""
    if not current_cid:
        raise ValueError("the current client id is empty: set the consumer's client id before it rebalances")
    if not mq_all:
        raise ValueError("no message queues to allocate: the topic has no readable queues")
    if not cid_all:
        raise ValueError("no consumer ids to allocate to: the broker knows no member of the group")
    if current_cid not in cid_all:
        log.info("consumer %s of group %s is not in the group's list %s yet; it gets no queue",
                 current_cid, group, list(cid_all))
        return False
    return True


class AllocateStrategy(Protocol):
    """RocketMQ's AllocateMessageQueueStrategy. Inputs are sorted by the caller."""

    name: str

    def allocate(self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]) -> list[Q]:
        ...


class AllocateMessageQueueAveragely:
    """Contiguous runs: the first `len(mq_all) % len(cid_all)` consumers get one queue more."""

    name = "AVG"

    def allocate(self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]) -> list[Q]:
        if not _check(group, current_cid, mq_all, cid_all):
            return []
        index = cid_all.index(current_cid)
        n_mq, n_cid = len(mq_all), len(cid_all)
        mod = n_mq % n_cid
        if n_mq <= n_cid:
            average = 1
        elif mod > 0 and index < mod:
            average = n_mq // n_cid + 1
        else:
            average = n_mq // n_cid
        start = index * average if (mod > 0 and index < mod) else index * average + mod
        count = min(average, n_mq - start)
        return [mq_all[start + i] for i in range(max(count, 0))]


class AllocateMessageQueueAveragelyByCircle:
    """Round robin: queue i goes to consumer i % len(cid_all)."""

    name = "AVG_BY_CIRCLE"

    def allocate(self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]) -> list[Q]:
        if not _check(group, current_cid, mq_all, cid_all):
            return []
        index = cid_all.index(current_cid)
        return [mq_all[i] for i in range(index, len(mq_all)) if i % len(cid_all) == index]


def md5_hash(key: str) -> int:
    """ConsistentHashRouter's default MD5Hash: the first four digest bytes as an unsigned int."""
    return int.from_bytes(hashlib.md5(key.encode("utf-8"), usedforsecurity=False).digest()[:4], "big")


class AllocateMessageQueueConsistentHash:
    """A hash ring of `virtual_node_count` points per client ("<cid>-<i>", MD5); each queue
    (hashed by its Java toString) goes to the first point at or after its hash, wrapping."""

    name = "CONSISTENT_HASH"

    def __init__(self, virtual_node_count: int = CONSISTENT_HASH_VIRTUAL_NODE_COUNT_DEFAULT,
                 hash_function: Callable[[str], int] | None = None) -> None:
        if virtual_node_count < 0:
            raise ValueError(f"virtual_node_count is {virtual_node_count}: give 0 or more virtual nodes per client")
        self.virtual_node_count = virtual_node_count
        self.hash_function = hash_function or md5_hash     # None: RocketMQ's MD5 hash

    def allocate(self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]) -> list[Q]:
        if not _check(group, current_cid, mq_all, cid_all):
            return []
        ring: dict[int, str] = {}
        for cid in cid_all:
            for i in range(self.virtual_node_count):
                ring[self.hash_function(f"{cid}-{i}")] = cid   # a TreeMap.put: a later node wins a collision
        if not ring:
            return []
        points = sorted(ring)
        result = []
        for mq in mq_all:
            pos = bisect.bisect_left(points, self.hash_function(queue_to_string(mq)))
            owner = ring[points[pos if pos < len(points) else 0]]
            if owner == current_cid:
                result.append(mq)
        return result


class AllocateMessageQueueByConfig:
    """A fixed list of queues, whatever the group looks like (every member gets the same list)."""

    name = "CONFIG"

    def __init__(self, message_queues: Iterable[QueueLike]) -> None:
        self.message_queues = list(message_queues)

    def allocate(self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]) -> list[Q]:
        wanted = {queue_sort_key(mq) for mq in self.message_queues}
        return [mq for mq in mq_all if queue_sort_key(mq) in wanted]


class AllocateMessageQueueByMachineRoom:
    """Only queues of brokers named "<idc>@<name>" whose idc is in `consumer_idcs`, split in
    contiguous runs; the remainder goes one each to the first consumers."""

    name = "MACHINE_ROOM"

    def __init__(self, consumer_idcs: Iterable[str]) -> None:
        self.consumer_idcs = frozenset(consumer_idcs)

    def allocate(self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]) -> list[Q]:
        if not _check(group, current_cid, mq_all, cid_all):
            return []
        index = cid_all.index(current_cid)
        eligible = []
        for mq in mq_all:
            parts = mq.broker_name.split("@")
            if len(parts) == 2 and parts[0] in self.consumer_idcs:
                eligible.append(mq)
        per_consumer, rem = divmod(len(eligible), len(cid_all))
        start = per_consumer * index
        result = list(eligible[start:start + per_consumer])
        if rem > index:
            result.append(eligible[index + per_consumer * len(cid_all)])
        return result


# --- rebalance -----------------------------------------------------------------------------


class RebalanceOwner(Protocol, Generic[Q]):
    """What the rebalance needs from its consumer (RebalancePushImpl's hooks)."""

    async def subscribe_queues(self, topic: str) -> list[Q]:
        """The topic's readable queues from the route (empty when the topic has no route)."""
        ...

    async def find_consumer_ids(self, topic: str) -> list[str]:
        """The group's client ids as a broker of the topic knows them."""
        ...

    async def compute_pull_from_where(self, mq: Q) -> int:
        """The start offset of a newly assigned queue (raises when it cannot be known yet)."""
        ...

    async def remove_unnecessary_queue(self, mq: Q, pq: ProcessQueue) -> bool:
        """Commit the queue's offset (and unlock it for orderly) before it goes; False keeps
        it for the next round (an orderly queue still being consumed)."""
        ...

    async def lock_queue(self, mq: Q) -> bool:
        """Orderly consumers only: the broker's lock on a queue before it is pulled."""
        ...

    def dispatch_pull(self, mq: Q, pq: ProcessQueue, next_offset: int) -> None:
        """Start pulling a newly assigned queue from `next_offset`."""
        ...


class RebalanceImpl(Generic[Q]):
    """The queues one consumer holds and the rebalance that changes them (state on one loop)."""

    def __init__(self, group: str, client_id: str, owner: RebalanceOwner[Q], strategy: AllocateStrategy, *,
                 broadcasting: bool = False, orderly: bool = False,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.group = group
        self.client_id = client_id
        self.owner = owner
        self.strategy = strategy
        self.broadcasting = broadcasting
        self.orderly = orderly
        self.process_queue_table: dict[Q, ProcessQueue] = {}
        self._clock_ms = clock_ms

    async def do_rebalance(self, topics: Iterable[str]) -> bool:
        """One rebalance of every subscribed topic; True when the held queues changed.
        A topic that fails (no route yet, broker down) keeps its queues until the next round."""
        changed = False
        topics = list(topics)
        for topic in topics:
            try:
                changed |= await self.rebalance_topic(topic)
            except Exception as exc:  # noqa: BLE001 - one topic's failure must not stop the others
                # a group's retry topic exists only once the broker created it (first send-back)
                level = logging.DEBUG if topic.startswith(RETRY_GROUP_TOPIC_PREFIX) else logging.WARNING
                log.log(level, "rebalance of topic %s for group %s failed: %s", topic, self.group, exc)
        # queues of topics no longer subscribed
        for mq in [mq for mq in self.process_queue_table if mq.topic not in topics]:
            pq = self.process_queue_table.pop(mq)
            pq.dropped = True
            changed = True
            log.info("group %s drops %s: its topic is no longer subscribed", self.group, queue_to_string(mq))
        return changed

    async def rebalance_topic(self, topic: str) -> bool:
        mq_set = await self.owner.subscribe_queues(topic)
        if not mq_set:
            log.warning("group %s: topic %s has no readable queue yet; its route may not exist", self.group, topic)
            return False
        if self.broadcasting:
            allocated = list(mq_set)
        else:
            cids = await self.owner.find_consumer_ids(topic)
            if not cids:
                log.warning("group %s: no consumer id for topic %s from the broker yet", self.group, topic)
                return False
            mq_all = sorted(mq_set, key=queue_sort_key)
            cid_all = sorted(set(cids))
            allocated = self.strategy.allocate(self.group, self.client_id, mq_all, cid_all)
        return await self.update_process_queue_table(topic, allocated)

    async def update_process_queue_table(self, topic: str, allocated: Iterable[Q]) -> bool:
        """RebalanceImpl.updateProcessQueueTableInRebalance: drop what is no longer ours,
        add what is new. Returns True when the set of held queues changed."""
        wanted = set(allocated)
        changed = False
        for mq, pq in list(self.process_queue_table.items()):
            if mq.topic != topic:
                continue
            expired = pq.is_pull_expired(self._now_ms())
            if mq in wanted and not expired:
                continue
            pq.dropped = True
            if await self.owner.remove_unnecessary_queue(mq, pq):
                del self.process_queue_table[mq]
                changed = True
                log.info("group %s removes %s (%s)", self.group, queue_to_string(mq),
                         "pull expired" if expired else "rebalanced away")
            else:
                pq.dropped = False   # not released (orderly queue busy): try again next round
        for mq in sorted(wanted - self.process_queue_table.keys(), key=queue_sort_key):
            if self.orderly and not await self.owner.lock_queue(mq):
                log.info("group %s: %s is locked by another consumer; it is skipped this round",
                         self.group, queue_to_string(mq))
                continue
            try:
                next_offset = await self.owner.compute_pull_from_where(mq)
            except Exception as exc:  # noqa: BLE001 - retried at the next rebalance
                log.warning("group %s: no start offset for %s yet (%s); retried at the next rebalance",
                            self.group, queue_to_string(mq), exc)
                continue
            pq = ProcessQueue(clock_ms=self._clock_ms)
            if self.orderly:
                pq.locked = True
                pq.last_lock_timestamp_ms = self._now_ms()
            self.process_queue_table[mq] = pq
            changed = True
            log.info("group %s adds %s from queue offset %d", self.group, queue_to_string(mq), next_offset)
            self.owner.dispatch_pull(mq, pq, next_offset)
        return changed

    def drop_all(self) -> list[tuple[Q, ProcessQueue]]:
        """Every held queue marked dropped and forgotten (shutdown)."""
        items = list(self.process_queue_table.items())
        for _, pq in items:
            pq.dropped = True
        self.process_queue_table.clear()
        return items

    def queues_by_broker(self) -> dict[str, list[Q]]:
        result: dict[str, list[Q]] = {}
        for mq in self.process_queue_table:
            result.setdefault(mq.broker_name, []).append(mq)
        return result

    def _now_ms(self) -> int:
        return self._clock_ms() if self._clock_ms is not None else now_ms()

