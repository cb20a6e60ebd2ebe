"""The lite pull consumer — RocketMQ's DefaultLitePullConsumer: you call poll(), it pulls.

    with LitePullConsumer("Readers", namesrv_addr="127.0.0.1:9876") as consumer:
        consumer.subscribe("Orders", "paid || refunded")
        while running:
            for msg in consumer.poll(timeout_s=1.0):
                handle(msg)

Two modes: `subscribe(topic, expression)` shares the topic's queues with the other
members of the group (clustering; re-allocated every 20 s and when members come or go),
`assign(queues)` reads exactly those queues. One long-polling pull task per queue fills a
bounded buffer; poll() hands out one pulled batch at a time.

Offsets: the offset after the last batch poll() handed out is the queue's consumed
offset. With auto_commit (the default) consumed offsets are committed by the poll() that
follows, once every auto_commit_interval_ms, and at close(): a message is committed only
after the next poll, so a crash replays at most what was polled since the last commit
(at-least-once; duplicates are possible). With auto_commit=False, commit_sync() commits.
A queue without a committed offset starts at consume_from_where (last offset by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from rocketpy import limits
from rocketpy.client._loop import LoopThread, acquire_shared_loop, release_shared_loop
from rocketpy.client.config import ClientConfig
from rocketpy.client.instance import PULL_FLAG_SUBSCRIPTION, PULL_FLAG_SUSPEND, ClientInstance
from rocketpy.client.message import MessageExt, MessageQueue, PullStatus
from rocketpy.errors import ClientStateError, RocketpyError
from rocketpy.protocol.bodies import SUB_ALL, ConsumeFromWhere, build_subscription
from rocketpy.protocol.topics import validate_group, validate_topic

log = logging.getLogger("rocketpy.client.consumer")


def allocate_averagely(client_id: str, all_queues: Sequence[MessageQueue], client_ids: Sequence[str]
                       ) -> list[MessageQueue]:
    """AllocateMessageQueueAveragely, private to the lite pull consumer (the push consumer's
    strategies live in rebalance.py): sorted queues cut into contiguous, near-equal ranges."""
    queues = sorted(all_queues)
    cids = sorted(client_ids)
    if client_id not in cids or not queues:
        return []
    index = cids.index(client_id)
    n, m = len(queues), len(cids)
    mod = n % m
    if n <= m:
        size = 1
    else:
        size = n // m + 1 if mod > 0 and index < mod else n // m
    start = index * size if mod > 0 and index < mod else index * size + mod
    count = min(size, n - start)
    return [queues[(start + i) % n] for i in range(max(count, 0))]


@dataclasses.dataclass(slots=True)
class _QueueState:
    mq: MessageQueue
    expression: str
    next_offset: int | None = None
    consumed_offset: int | None = None
    committed_offset: int | None = None
    generation: int = 0
    task: asyncio.Task[None] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Batch:
    mq: MessageQueue
    generation: int
    messages: list[MessageExt]
    next_offset: int


class AsyncLitePullConsumer:
    """The lite pull consumer on the caller's asyncio loop (see the module docstring)."""

    def __init__(self, group: str, *, namesrv_addr: str | Sequence[str] | None = None,
                 config: ClientConfig | None = None, auto_commit: bool = True,
                 auto_commit_interval_ms: int = limits.LITE_PULL_AUTO_COMMIT_INTERVAL_MS_DEFAULT,
                 pull_batch_size: int = limits.LITE_PULL_BATCH_SIZE_DEFAULT,
                 pull_threshold_for_all: int = limits.LITE_PULL_THRESHOLD_FOR_ALL_DEFAULT,
                 consume_from_where: ConsumeFromWhere = ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET,
                 consume_timestamp_ms: int | None = None,
                 broker_suspend_max_ms: int = limits.LITE_PULL_BROKER_SUSPEND_MAX_MS_DEFAULT,
                 rebalance_interval_ms: int = limits.LITE_PULL_REBALANCE_INTERVAL_MS_DEFAULT,
                 **client_options: Any) -> None:
        validate_group(group)
        if not 1 <= pull_batch_size <= limits.PULL_MSG_NUMS_MAX:
            raise ValueError(f"pull_batch_size must be 1..{limits.PULL_MSG_NUMS_MAX}")
        if consume_from_where is ConsumeFromWhere.CONSUME_FROM_TIMESTAMP and consume_timestamp_ms is None:
            raise ValueError("CONSUME_FROM_TIMESTAMP needs consume_timestamp_ms")
        self.group = group
        self.config = config if config is not None else ClientConfig.make(namesrv_addr, **client_options)
        self.auto_commit = auto_commit
        self.auto_commit_interval_ms = auto_commit_interval_ms
        self.pull_batch_size = pull_batch_size
        self.consume_from_where = consume_from_where
        self.consume_timestamp_ms = consume_timestamp_ms
        self.broker_suspend_max_ms = broker_suspend_max_ms
        self.rebalance_interval_ms = rebalance_interval_ms
        self._buffer_batches_max = max(1, pull_threshold_for_all // pull_batch_size)
        self._subscriptions: dict[str, str] = {}
        self._assigned: list[MessageQueue] | None = None
        self._states: dict[MessageQueue, _QueueState] = {}
        self._buffer: asyncio.Queue[_Batch] | None = None
        self._instance: ClientInstance | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._rebalance_lock: asyncio.Lock | None = None
        self._next_auto_commit = 0.0
        self._unrouted = False
        self._closing = False

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the client instance, register the group and start pulling."""
        if self._instance is not None:
            return
        self._closing = False
        self._buffer = asyncio.Queue(self._buffer_batches_max)
        self._rebalance_lock = asyncio.Lock()
        inst = await ClientInstance.get(self.config)
        try:
            inst.register_consumer(self.group, self)
        except BaseException:
            await inst.release(self)
            raise
        self._instance = inst
        self._next_auto_commit = time.monotonic() + self.auto_commit_interval_ms / 1000
        for topic in self._subscriptions:
            with contextlib.suppress(RocketpyError):
                await inst.topic_route(topic)
        await inst.send_heartbeat_now()
        if self._assigned is not None:
            self._apply_assignment(self._assigned)
        elif self._subscriptions:
            await self._rebalance()
        self._tasks.append(asyncio.get_running_loop().create_task(self._rebalance_every()))

    async def close(self) -> None:
        """Stop pulling, commit consumed offsets (auto_commit), unregister."""
        inst = self._instance
        if inst is None:
            return
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for state in self._states.values():
            if state.task is not None:
                state.task.cancel()
        for task in [*self._tasks, *(s.task for s in self._states.values() if s.task is not None)]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.auto_commit:
            try:
                await self.commit_sync()
            except RocketpyError as exc:
                log.warning("consumer %s: offsets not committed at close: %s", self.group, exc)
        self._instance = None
        await inst.release(self)

    async def __aenter__(self) -> AsyncLitePullConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def instance(self) -> ClientInstance:
        if self._instance is None:
            raise ClientStateError(f"consumer {self.group} is not started; call start() or use it as a context manager")
        return self._instance

    # --- what to read ----------------------------------------------------------------------------

    async def subscribe(self, topic: str, expression: str = SUB_ALL) -> None:
        """Read topic's messages whose tag matches expression ("*", "TagA || TagB"), sharing
        its queues with the group's other members."""
        validate_topic(topic)
        if self._assigned is not None:
            raise ClientStateError("this consumer uses assign(); subscribe() and assign() cannot be mixed")
        build_subscription(topic, expression)
        self._subscriptions[topic] = expression or SUB_ALL
        if self._instance is not None:
            try:
                await self._instance.topic_route(topic)
            except RocketpyError as exc:          # rebalanced once the topic has a route
                log.warning("consumer %s: %s", self.group, exc)
            await self._instance.send_heartbeat_now()
            await self._rebalance()

    async def assign(self, queues: Iterable[MessageQueue]) -> None:
        """Read exactly these queues (every message, no group sharing)."""
        if self._subscriptions:
            raise ClientStateError("this consumer uses subscribe(); subscribe() and assign() cannot be mixed")
        self._assigned = sorted(set(queues))
        if self._instance is not None:
            self._apply_assignment(self._assigned)

    def assignment(self) -> set[MessageQueue]:
        """The queues this consumer reads now."""
        return set(self._states)

    async def fetch_message_queues(self, topic: str) -> list[MessageQueue]:
        """Every readable queue of topic (for assign)."""
        return await self.instance.subscribe_queues(topic)

    # --- polling ---------------------------------------------------------------------------------

    async def poll(self, timeout_s: float = 5.0) -> list[MessageExt]:
        """The next pulled batch (one queue's messages in offset order), or [] after timeout_s."""
        _ = self.instance
        assert self._buffer is not None
        if self.auto_commit and time.monotonic() >= self._next_auto_commit:
            self._next_auto_commit = time.monotonic() + self.auto_commit_interval_ms / 1000
            try:
                await self.commit_sync()
            except RocketpyError as exc:
                log.warning("consumer %s: auto commit failed: %s", self.group, exc)
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    batch = self._buffer.get_nowait()
                else:
                    batch = await asyncio.wait_for(self._buffer.get(), remaining)
            except (TimeoutError, asyncio.QueueEmpty):
                return []
            state = self._states.get(batch.mq)
            if state is None or state.generation != batch.generation:
                continue                    # the queue was seeked or taken away since
            state.consumed_offset = batch.next_offset
            if batch.messages:
                return batch.messages

    # --- offsets ---------------------------------------------------------------------------------

    async def commit_sync(self) -> None:
        """Commit every queue's consumed offset that changed since the last commit."""
        inst = self.instance
        for state in list(self._states.values()):
            offset = state.consumed_offset
            if offset is None or offset == state.committed_offset:
                continue
            await inst.update_consumer_offset(state.mq, self.group, offset, oneway=False)
            state.committed_offset = offset

    async def committed(self, mq: MessageQueue) -> int | None:
        """The group's offset of mq as the broker holds it (None: none)."""
        return await self.instance.query_consumer_offset(mq, self.group)

    def _state(self, mq: MessageQueue) -> _QueueState:
        state = self._states.get(mq)
        if state is None:
            raise ClientStateError(f"{mq} is not assigned to this consumer; seek only queues in assignment()")
        return state

    async def seek(self, mq: MessageQueue, offset: int) -> None:
        """Read mq from offset on (between its min and max offset); buffered messages are dropped."""
        state = self._state(mq)
        low, high = await self.instance.min_offset(mq), await self.instance.max_offset(mq)
        if not low <= offset <= high:
            raise ValueError(f"offset {offset} of {mq} is outside {low}..{high}; seek inside the queue")
        self._restart(state, offset)

    async def seek_to_begin(self, mq: MessageQueue) -> None:
        self._restart(self._state(mq), await self.instance.min_offset(mq))

    async def seek_to_end(self, mq: MessageQueue) -> None:
        self._restart(self._state(mq), await self.instance.max_offset(mq))

    def _restart(self, state: _QueueState, offset: int) -> None:
        if self._closing:
            return
        if state.task is not None:
            state.task.cancel()
        state.generation += 1
        state.next_offset = offset
        state.consumed_offset = offset
        state.task = asyncio.get_running_loop().create_task(self._pull_loop(state))

    # --- assignment --------------------------------------------------------------------------------

    def _apply_assignment(self, queues: Iterable[MessageQueue]) -> None:
        if self._closing:
            return
        wanted = set(queues)
        for mq in [mq for mq in self._states if mq not in wanted]:
            state = self._states.pop(mq)
            if state.task is not None:
                state.task.cancel()
            if self.auto_commit and state.consumed_offset is not None \
                    and state.consumed_offset != state.committed_offset and self._instance is not None:
                task = asyncio.get_running_loop().create_task(
                    self._instance.update_consumer_offset(mq, self.group, state.consumed_offset))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
            log.info("consumer %s: %s released", self.group, mq)
        loop = asyncio.get_running_loop()
        for mq in sorted(wanted - set(self._states)):
            state = _QueueState(mq, self._subscriptions.get(mq.topic, SUB_ALL))
            self._states[mq] = state
            state.task = loop.create_task(self._pull_loop(state))
            log.info("consumer %s: %s assigned", self.group, mq)

    async def _rebalance(self) -> None:
        if self._assigned is not None or not self._subscriptions or self._instance is None:
            return
        assert self._rebalance_lock is not None
        async with self._rebalance_lock:
            self._unrouted = False
            inst = self._instance
            mine: list[MessageQueue] = []
            for topic in sorted(self._subscriptions):
                try:
                    queues = await inst.subscribe_queues(topic)
                    cids = await self._consumer_ids(topic)
                except RocketpyError as exc:
                    log.warning("consumer %s: rebalance of %s skipped: %s", self.group, topic, exc)
                    mine.extend(mq for mq in self._states if mq.topic == topic)
                    self._unrouted = True
                    continue
                mine.extend(allocate_averagely(inst.client_id, queues, cids))
            self._apply_assignment(mine)

    async def _consumer_ids(self, topic: str) -> list[str]:
        """The group's members; when the broker does not list us yet (the topic's route
        arrived after our last heartbeat), heartbeat and ask again."""
        inst = self.instance
        try:
            cids = await inst.find_consumer_ids(topic, self.group)
        except RocketpyError:
            cids = []
        if inst.client_id not in cids:
            await inst.send_heartbeat_now()
            cids = await inst.find_consumer_ids(topic, self.group)
            if inst.client_id not in cids:
                cids = [*cids, inst.client_id]
        return cids

    async def _rebalance_every(self) -> None:
        """Rebalance every rebalance_interval_ms, and every LITE_PULL_UNROUTED_RETRY_MS while a
        subscribed topic has no route yet (a topic being auto-created by its first send)."""
        step_s = min(self.rebalance_interval_ms, limits.LITE_PULL_UNROUTED_RETRY_MS) / 1000
        next_due = time.monotonic() + self.rebalance_interval_ms / 1000
        while True:
            await asyncio.sleep(step_s)
            if not self._unrouted and time.monotonic() < next_due:
                continue
            next_due = time.monotonic() + self.rebalance_interval_ms / 1000
            try:
                await self._rebalance()
            except RocketpyError as exc:
                log.warning("consumer %s: rebalance failed: %s", self.group, exc)

    async def _initial_offset(self, mq: MessageQueue) -> int:
        inst = self.instance
        committed = await inst.query_consumer_offset(mq, self.group)
        if committed is not None and committed >= 0:
            return committed
        where = self.consume_from_where
        if where is ConsumeFromWhere.CONSUME_FROM_TIMESTAMP:
            assert self.consume_timestamp_ms is not None
            return await inst.search_offset(mq, self.consume_timestamp_ms)
        if where in (ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET, ConsumeFromWhere.CONSUME_FROM_MIN_OFFSET):
            return await inst.min_offset(mq)
        return await inst.max_offset(mq)

    async def _pull_loop(self, state: _QueueState) -> None:
        generation = state.generation
        inst = self.instance
        buffer = self._buffer
        assert buffer is not None
        delay_s = self.config.pull_time_delay_ms_when_exception / 1000
        while state.generation == generation:
            try:
                if state.next_offset is None:
                    state.next_offset = await self._initial_offset(state.mq)
                    state.consumed_offset = state.next_offset
                    state.committed_offset = state.next_offset
                result = await inst.pull(
                    state.mq, group=self.group, queue_offset=state.next_offset,
                    max_msg_nums=self.pull_batch_size, sys_flag=PULL_FLAG_SUSPEND | PULL_FLAG_SUBSCRIPTION,
                    suspend_timeout_ms=self.broker_suspend_max_ms, subscription=state.expression,
                    timeout_ms=limits.LITE_PULL_CONSUMER_TIMEOUT_MS_WHEN_SUSPEND)
            except asyncio.CancelledError:
                raise
            except RocketpyError as exc:
                log.info("consumer %s: pull of %s failed: %s", self.group, state.mq, exc)
                await asyncio.sleep(delay_s)
                continue
            if state.generation != generation:
                return
            if result.status is PullStatus.OFFSET_ILLEGAL:
                log.warning("consumer %s: offset %s of %s is illegal; moving to %d", self.group,
                            state.next_offset, state.mq, result.next_begin_offset)
            if result.status is PullStatus.FOUND or result.next_begin_offset != state.next_offset:
                await buffer.put(_Batch(state.mq, generation, result.messages, result.next_begin_offset))
            state.next_offset = result.next_begin_offset

    # --- hooks the client instance calls ----------------------------------------------------------------

    def consumer_data(self) -> dict[str, Any]:
        topics = dict(self._subscriptions)
        for mq in self._assigned or ():
            topics.setdefault(mq.topic, SUB_ALL)
        return {"groupName": self.group, "consumeType": "CONSUME_ACTIVELY", "messageModel": "CLUSTERING",
                "consumeFromWhere": self.consume_from_where.name, "unitMode": self.config.unit_mode,
                "subscriptionDataSet": [build_subscription(t, e).to_obj() for t, e in sorted(topics.items())]}

    async def on_consumer_ids_changed(self) -> None:
        await self._rebalance()

    async def on_reset_offset(self, topic: str, table: dict[MessageQueue, int]) -> None:
        for mq, offset in table.items():
            state = self._states.get(mq)
            if state is not None and mq.topic == topic:
                self._restart(state, offset)
                state.committed_offset = None

    def consumer_status(self, topic: str) -> dict[MessageQueue, int]:
        return {mq: s.consumed_offset for mq, s in self._states.items()
                if mq.topic == topic and s.consumed_offset is not None}

    def running_info(self) -> dict[str, Any]:
        return {"properties": {"consumeType": "CONSUME_ACTIVELY", "consumerGroup": self.group,
                               "autoCommit": str(self.auto_commit).lower()},
                "subscriptionSet": self.consumer_data()["subscriptionDataSet"],
                "mqTable": {}, "statusTable": {}}


class LitePullConsumer:
    """The blocking lite pull consumer: an AsyncLitePullConsumer run on the shared client loop."""

    def __init__(self, group: str, *, namesrv_addr: str | Sequence[str] | None = None,
                 config: ClientConfig | None = None, **options: Any) -> None:
        self._impl = AsyncLitePullConsumer(group, namesrv_addr=namesrv_addr, config=config, **options)
        self._lt: LoopThread | None = None

    @property
    def group(self) -> str:
        return self._impl.group

    @property
    def async_consumer(self) -> AsyncLitePullConsumer:
        return self._impl

    def _run(self, coro: Any, timeout_s: float | None = None) -> Any:
        if self._lt is None:
            coro.close()
            raise ClientStateError(f"consumer {self.group} is not started; call start() or use `with`")
        bound = timeout_s if timeout_s is not None else (
            self._impl.config.request_timeout_ms * 4 + self._impl.config.connect_timeout_ms) / 1000
        return self._lt.run(coro, bound)

    def start(self) -> None:
        if self._lt is not None:
            return
        lt = acquire_shared_loop()
        self._lt = lt
        try:
            self._run(self._impl.start(), limits.CLIENT_SHUTDOWN_TIMEOUT_S * 3)
        except BaseException:
            self._lt = None
            release_shared_loop(lt)
            raise

    def close(self) -> None:
        lt = self._lt
        if lt is None:
            return
        try:
            self._run(self._impl.close(), limits.CLIENT_SHUTDOWN_TIMEOUT_S * 3)
        finally:
            self._lt = None
            release_shared_loop(lt)

    shutdown = close

    def __enter__(self) -> LitePullConsumer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subscribe(self, topic: str, expression: str = SUB_ALL) -> None:
        """See AsyncLitePullConsumer.subscribe; before or after start()."""
        if self._lt is None:
            self._impl._subscriptions[topic] = expression or SUB_ALL
            validate_topic(topic)
            build_subscription(topic, expression)
            return
        self._run(self._impl.subscribe(topic, expression))

    def assign(self, queues: Iterable[MessageQueue]) -> None:
        """See AsyncLitePullConsumer.assign; before or after start()."""
        queues = list(queues)
        if self._lt is None:
            if self._impl._subscriptions:
                raise ClientStateError("this consumer uses subscribe(); subscribe() and assign() cannot be mixed")
            self._impl._assigned = sorted(set(queues))
            return
        self._run(self._impl.assign(queues))

    def assignment(self) -> set[MessageQueue]:
        return self._impl.assignment()

    def fetch_message_queues(self, topic: str) -> list[MessageQueue]:
        return self._run(self._impl.fetch_message_queues(topic))

    def poll(self, timeout_s: float = 5.0) -> list[MessageExt]:
        """The next pulled batch, or [] after timeout_s."""
        return self._run(self._impl.poll(timeout_s), timeout_s + self._impl.config.request_timeout_ms / 1000 + 5)

    def commit_sync(self) -> None:
        self._run(self._impl.commit_sync())

    def committed(self, mq: MessageQueue) -> int | None:
        return self._run(self._impl.committed(mq))

    def seek(self, mq: MessageQueue, offset: int) -> None:
        self._run(self._impl.seek(mq, offset))

    def seek_to_begin(self, mq: MessageQueue) -> None:
        self._run(self._impl.seek_to_begin(mq))

    def seek_to_end(self, mq: MessageQueue) -> None:
        self._run(self._impl.seek_to_end(mq))
