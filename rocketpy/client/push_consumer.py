"""The push consumer: `PushConsumer` (blocking listeners on threads) and `AsyncPushConsumer`.

RocketMQ's DefaultMQPushConsumer, rebuilt on one asyncio core:

    with PushConsumer("my-group", namesrv_addr="127.0.0.1:9876") as consumer:
        consumer.subscribe("Orders", "paid || refunded")
        consumer.register_message_listener(lambda msgs, ctx: ConsumeConcurrentlyStatus.CONSUME_SUCCESS)
        consumer.start()
        ...

How it works (the same as RocketMQ's, so groups can mix rocketpy and Java members):
- **rebalance** every 20 s and at once when the broker says the group changed
  (NOTIFY_CONSUMER_IDS_CHANGED): each member sorts the topic's queues and the group's
  client ids and takes its share with the allocation strategy (`rebalance.py`).
- **pull**: one long-polling pull loop per held queue (the broker holds a pull up to
  15 s) into a `ProcessQueue`; pulling pauses while a queue caches more than 1000
  messages or 100 MiB (flow control). Tags are re-checked on the client: the broker
  filters by tag hash only.
- **consume**: a concurrent listener gets batches (consumeMessageBatchMaxSize = 1) on
  up to 20 threads (coroutines for `AsyncPushConsumer`); an orderly listener gets each
  queue's messages one batch at a time, in order, while this client holds the broker's
  lock on the queue (LOCK_BATCH_MQ, renewed every 20 s).
- **retry**: a concurrent listener that returns RECONSUME_LATER, returns None or raises has
  its messages sent back to the broker (CONSUMER_SEND_MSG_BACK), which redelivers them
  through `%RETRY%<group>` with a growing delay and, after maxReconsumeTimes (16), puts them
  in `%DLQ%<group>`. If the send-back fails the message is consumed again locally 5 s later.
  In clustering mode the consumer subscribes to `%RETRY%<group>` itself, and retried
  messages reach the listener with their original topic.
- **offsets**: only a queue's lowest unconsumed offset is committed, every 5 s, on each
  pull, when a queue is given away and at shutdown. Delivery is at-least-once: after a crash
  or a rebalance, messages consumed since the last commit (at most ~5 s of them, plus those
  in flight) are delivered again. Broadcasting consumers keep offsets in a local file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime
import enum
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeAlias

from rocketpy import limits
from rocketpy.client import _loop
from rocketpy.client.config import ClientConfig
from rocketpy.client.instance import ClientInstance
from rocketpy.client.message import MessageExt, MessageQueue, PullResult, PullStatus
from rocketpy.client.offset_store import (
    LocalFileOffsetStore,
    OffsetStore,
    ReadOffsetType,
    RemoteBrokerOffsetStore,
)
from rocketpy.client.process_queue import ProcessQueue, now_ms
from rocketpy.client.rebalance import (
    AllocateMessageQueueAveragely,
    AllocateStrategy,
    RebalanceImpl,
)
from rocketpy.errors import ClientStateError, ConfigError
from rocketpy.protocol import message as pm
from rocketpy.protocol.bodies import (
    ConsumeFromWhere,
    ConsumerData,
    ConsumeType,
    MessageModel,
    SubscriptionData,
    build_subscription,
)
from rocketpy.protocol.headers import (
    PULL_FLAG_COMMIT_OFFSET,
    PULL_FLAG_SUBSCRIPTION,
    PULL_FLAG_SUSPEND,
)
from rocketpy.protocol.topics import is_retry_topic, retry_topic

log = logging.getLogger("rocketpy.client.push_consumer")


__all__ = [
    "AsyncPushConsumer",
    "ConsumeConcurrentlyContext",
    "ConsumeConcurrentlyStatus",
    "ConsumeFromWhere",
    "ConsumeOrderlyContext",
    "ConsumeOrderlyStatus",
    "MessageModel",
    "PushConsumer",
]


class ConsumeConcurrentlyStatus(enum.Enum):
    CONSUME_SUCCESS = "CONSUME_SUCCESS"
    RECONSUME_LATER = "RECONSUME_LATER"


class ConsumeOrderlyStatus(enum.Enum):
    SUCCESS = "SUCCESS"
    SUSPEND_CURRENT_QUEUE_A_MOMENT = "SUSPEND_CURRENT_QUEUE_A_MOMENT"


@dataclasses.dataclass(slots=True)
class ConsumeConcurrentlyContext:
    """Passed to a concurrent listener. `delay_level_when_next_consume` 0 lets the broker
    choose (3 + reconsume times); `ack_index` marks the last consumed message of a
    batch when the listener returns CONSUME_SUCCESS for part of it."""

    message_queue: MessageQueue
    delay_level_when_next_consume: int = 0
    ack_index: int = 2**31 - 1


@dataclasses.dataclass(slots=True)
class ConsumeOrderlyContext:
    """Passed to an orderly listener. `suspend_current_queue_time_ms` is how long the queue
    pauses after SUSPEND_CURRENT_QUEUE_A_MOMENT."""

    message_queue: MessageQueue
    suspend_current_queue_time_ms: int = limits.SUSPEND_CURRENT_QUEUE_TIME_MS_DEFAULT


ConcurrentListener: TypeAlias = Callable[[list[MessageExt], ConsumeConcurrentlyContext],
                                         "ConsumeConcurrentlyStatus | None | Awaitable[ConsumeConcurrentlyStatus | None]"]
OrderlyListener: TypeAlias = Callable[[list[MessageExt], ConsumeOrderlyContext],
                                      "ConsumeOrderlyStatus | None | Awaitable[ConsumeOrderlyStatus | None]"]
# How the core calls a listener: on a thread (PushConsumer) or awaited (AsyncPushConsumer).
Invoker: TypeAlias = Callable[[Callable[..., Any], list[MessageExt], Any], Awaitable[Any]]


@dataclasses.dataclass(frozen=True, slots=True)
class PushConsumerOptions:
    """Everything a push consumer can be tuned with; defaults are RocketMQ's."""

    message_model: MessageModel = MessageModel.CLUSTERING
    consume_from_where: ConsumeFromWhere = ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
    # for CONSUME_FROM_TIMESTAMP: epoch ms; None means half an hour before start
    consume_timestamp_ms: int | None = None
    allocate_strategy: AllocateStrategy = dataclasses.field(default_factory=AllocateMessageQueueAveragely)
    consume_thread_max: int = limits.CONSUME_THREAD_COUNT_MAX_DEFAULT
    pull_threshold_for_queue: int = limits.PULL_THRESHOLD_FOR_QUEUE_MESSAGES_DEFAULT
    pull_threshold_size_for_queue_mib: int = limits.PULL_THRESHOLD_SIZE_FOR_QUEUE_MIB_DEFAULT
    consume_concurrently_max_span: int = limits.CONSUME_CONCURRENTLY_MAX_SPAN_DEFAULT
    consume_message_batch_max_size: int = limits.CONSUME_MESSAGE_BATCH_MAX_SIZE_DEFAULT
    pull_batch_size: int = limits.PULL_BATCH_SIZE_DEFAULT
    # None: 16 for a concurrent listener, unlimited for an orderly one (RocketMQ's -1)
    max_reconsume_times: int | None = None
    suspend_current_queue_time_ms: int = limits.SUSPEND_CURRENT_QUEUE_TIME_MS_DEFAULT
    consume_timeout_ms: int = limits.CONSUME_TIMEOUT_MINUTES_DEFAULT * 60_000
    rebalance_interval_ms: int = limits.REBALANCE_INTERVAL_MS_DEFAULT
    lock_interval_ms: int = limits.REBALANCE_LOCK_INTERVAL_MS
    broker_suspend_max_time_ms: int = limits.BROKER_SUSPEND_MAX_TIME_MS_DEFAULT
    consumer_timeout_ms_when_suspend: int = limits.CONSUMER_TIMEOUT_MS_WHEN_SUSPEND_DEFAULT
    shutdown_await_ms: int = limits.CONSUMER_SHUTDOWN_AWAIT_MS_DEFAULT
    offset_store_dir: str | None = None      # broadcasting offsets; default ~/.rocketmq_offsets

    def __post_init__(self) -> None:
        if self.consume_thread_max < 1:
            raise ConfigError(f"consume_thread_max is {self.consume_thread_max}: give at least 1 thread")
        if not 1 <= self.consume_message_batch_max_size <= limits.CONSUME_MESSAGE_BATCH_MAX_SIZE_MAX:
            raise ConfigError(f"consume_message_batch_max_size is {self.consume_message_batch_max_size}: "
                              f"use 1..{limits.CONSUME_MESSAGE_BATCH_MAX_SIZE_MAX}")
        if not 1 <= self.pull_batch_size <= limits.PULL_MSG_NUMS_MAX:
            raise ConfigError(f"pull_batch_size is {self.pull_batch_size}: use 1..{limits.PULL_MSG_NUMS_MAX}")
        if self.pull_threshold_for_queue < 1 or self.pull_threshold_size_for_queue_mib < 1:
            raise ConfigError("pull thresholds must be at least 1 message and 1 MiB")
        if not 0 < self.broker_suspend_max_time_ms < self.consumer_timeout_ms_when_suspend:
            raise ConfigError(
                f"broker_suspend_max_time_ms ({self.broker_suspend_max_time_ms}) must be positive and below "
                f"consumer_timeout_ms_when_suspend ({self.consumer_timeout_ms_when_suspend}), or pulls time out")
        if self.max_reconsume_times is not None and self.max_reconsume_times < 0:
            raise ConfigError(f"max_reconsume_times is {self.max_reconsume_times}: use 0 or more, or None")


def parse_consume_timestamp(value: str | int | datetime.datetime) -> int:
    """A consume timestamp as epoch ms: RocketMQ's "yyyyMMddHHmmss" (local time), a datetime,
    or epoch ms."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int):
        return value
    try:
        return int(datetime.datetime.strptime(value, "%Y%m%d%H%M%S").timestamp() * 1000)
    except ValueError:
        raise ConfigError(f"consume timestamp {value!r} is not yyyyMMddHHmmss (e.g. 20240131235959)") from None


class _ConsumerCore:
    """The push consumer itself, on one asyncio loop; the public classes wrap it."""

    def __init__(self, group: str, config: ClientConfig, options: PushConsumerOptions, invoker: Invoker) -> None:
        if not group:
            raise ConfigError("a push consumer needs a consumer group name")
        self.group = group
        self.config = config
        self.options = options
        self._invoke = invoker
        self.subscriptions: dict[str, SubscriptionData] = {}
        self.concurrent_listener: Callable[..., Any] | None = None
        self.orderly_listener: Callable[..., Any] | None = None
        self.instance: ClientInstance | None = None
        self.offset_store: OffsetStore[MessageQueue] | None = None
        self.rebalance: RebalanceImpl[MessageQueue] | None = None
        self.running = False
        self._stopping: asyncio.Event | None = None
        self._rebalance_now: asyncio.Event | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._service_tasks: set[asyncio.Task[None]] = set()
        self._pull_tasks: dict[MessageQueue, asyncio.Task[None]] = {}
        self._consume_tasks: set[asyncio.Task[None]] = set()
        self._orderly_locks: dict[MessageQueue, asyncio.Lock] = {}
        self._start_ms = 0
        self.consumed_ok = 0
        self.consumed_failed = 0

    # --- configuration -----------------------------------------------------------------

    @property
    def orderly(self) -> bool:
        return self.orderly_listener is not None

    @property
    def clustering(self) -> bool:
        return self.options.message_model == MessageModel.CLUSTERING

    @property
    def max_reconsume_times(self) -> int:
        if self.options.max_reconsume_times is not None:
            return self.options.max_reconsume_times
        return 2**31 - 1 if self.orderly else limits.MAX_RECONSUME_TIMES_DEFAULT

    def subscribe(self, topic: str, expression: str = "*") -> None:
        if self.running:
            raise ClientStateError("subscribe before start(): the subscription is sent with the first heartbeat")
        if not topic:
            raise ConfigError("subscribe needs a topic name")
        self.subscriptions[topic] = build_subscription(topic, expression or "*",
                                                       sub_version=time.time_ns() // 1_000_000)

    def unsubscribe(self, topic: str) -> None:
        self.subscriptions.pop(topic, None)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self.running:
            raise ClientStateError(f"push consumer of group {self.group} is already started")
        if self.concurrent_listener is None and self.orderly_listener is None:
            raise ClientStateError("register a message listener before start()")
        if not self.subscriptions:
            raise ClientStateError("subscribe to at least one topic before start()")
        self._stopping = asyncio.Event()
        self._rebalance_now = asyncio.Event()
        self._semaphore = asyncio.Semaphore(self.options.consume_thread_max)
        self._start_ms = now_ms()
        if self.clustering:
            rt = retry_topic(self.group)
            self.subscriptions.setdefault(rt, build_subscription(rt, "*", sub_version=self._start_ms))
        instance = await ClientInstance.get(self.config)
        self.instance = instance
        client_id = instance.client_id
        store: OffsetStore[MessageQueue]
        if self.clustering:
            store = RemoteBrokerOffsetStore(_OffsetBrokerAdapter(instance), self.group)
        else:
            store = LocalFileOffsetStore(client_id, self.group, MessageQueue,
                                         store_dir=self.options.offset_store_dir)
        store.load()
        self.offset_store = store
        self.rebalance = RebalanceImpl(self.group, client_id, _RebalanceOwner(self), self.options.allocate_strategy,
                                       broadcasting=not self.clustering, orderly=self.orderly)
        instance.register_consumer(self.group, self)
        self.running = True
        for topic in self.subscriptions:
            try:
                await instance.topic_route(topic)
            except Exception as exc:  # noqa: BLE001 - the topic may be created later; rebalance retries
                if is_retry_topic(topic):
                    continue   # created by the broker at the first send-back (or on a Java broker, at once)
                log.warning("group %s: no route for topic %s yet (%s); consuming starts once it exists",
                            self.group, topic, exc)
        await instance.send_heartbeat_now()
        self._spawn_service(self._rebalance_loop())
        self._spawn_service(self._persist_loop())
        if self.orderly and self.clustering:
            self._spawn_service(self._lock_loop())
        if not self.orderly:
            self._spawn_service(self._clean_expired_loop())
        log.info("push consumer of group %s started as %s (%s, %s)", self.group, client_id,
                 self.options.message_model.name, "orderly" if self.orderly else "concurrently")

    async def shutdown(self) -> None:
        """Stop pulling, wait (bounded) for running listeners, commit offsets, unlock, unregister."""
        if not self.running:
            return
        self.running = False
        assert self._stopping is not None and self.instance is not None and self.rebalance is not None
        self._stopping.set()
        for task in list(self._pull_tasks.values()) + list(self._service_tasks):
            task.cancel()
        await asyncio.gather(*self._pull_tasks.values(), *self._service_tasks, return_exceptions=True)
        if self._consume_tasks:
            done, pending = await asyncio.wait(set(self._consume_tasks),
                                               timeout=self.options.shutdown_await_ms / 1000)
            if pending:
                log.warning("group %s: %d listener calls still running after %d ms; their messages will be "
                            "delivered again", self.group, len(pending), self.options.shutdown_await_ms)
                for task in pending:
                    task.cancel()
        held = self.rebalance.drop_all()
        assert self.offset_store is not None
        if isinstance(self.offset_store, RemoteBrokerOffsetStore):
            broker = self.offset_store.broker
            if isinstance(broker, _OffsetBrokerAdapter):
                broker.oneway = False
        try:
            await self.offset_store.persist_all({mq for mq, _ in held})
        except Exception as exc:  # noqa: BLE001 - shutdown goes on
            log.warning("group %s: committing offsets at shutdown failed: %s", self.group, exc)
        if self.orderly and self.clustering:
            by_broker: dict[str, list[MessageQueue]] = {}
            for mq, _ in held:
                by_broker.setdefault(mq.broker_name, []).append(mq)
            for broker_name, mqs in by_broker.items():
                with contextlib.suppress(Exception):
                    await self.instance.unlock_batch(broker_name, self.group, mqs)
        await self.instance.unregister_consumer(self.group)
        await self.instance.release(self)
        log.info("push consumer of group %s shut down", self.group)

    def _spawn_service(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._service_tasks.add(task)
        task.add_done_callback(self._service_tasks.discard)

    async def _sleep(self, delay_ms: int) -> bool:
        """Sleep unless the consumer stops first; False when it is stopping."""
        assert self._stopping is not None
        if self._stopping.is_set():
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay_ms / 1000)
        return not self._stopping.is_set()

    # --- ClientInstance hooks ------------------------------------------------------------

    def consumer_data(self) -> dict[str, Any]:
        data = ConsumerData(self.group, ConsumeType.CONSUME_PASSIVELY, self.options.message_model,
                            self.options.consume_from_where, self.config.unit_mode,
                            tuple(self.subscriptions.values()))
        return data.to_obj()

    def on_consumer_ids_changed(self) -> None:
        if self._rebalance_now is not None:
            self._rebalance_now.set()

    async def on_reset_offset(self, topic: str, offsets: dict[MessageQueue, int]) -> None:
        """RESET_CONSUMER_CLIENT_OFFSET: drop the topic's queues, store the new offsets, rebalance."""
        assert self.rebalance is not None and self.offset_store is not None
        for mq, offset in offsets.items():
            pq = self.rebalance.process_queue_table.pop(mq, None)
            if pq is not None:
                pq.dropped = True
            self.offset_store.update_offset(mq, offset, False)
            await self.offset_store.persist(mq)
        log.info("group %s: offsets of %d queues of %s reset by the broker", self.group, len(offsets), topic)
        self.on_consumer_ids_changed()

    def consumer_status(self, topic: str) -> dict[MessageQueue, int]:
        """GET_CONSUMER_STATUS_FROM_CLIENT: this member's offsets of the topic's queues."""
        return {mq: off for mq, off in (self.offset_store.offsets() if self.offset_store else {}).items()
                if mq.topic == topic}

    def running_info(self) -> dict[str, Any]:
        """GET_CONSUMER_RUNNING_INFO: a subset of ConsumerRunningInfo."""
        table = self.rebalance.process_queue_table if self.rebalance else {}
        return {
            "properties": {"consumeType": "CONSUME_PASSIVELY", "consumeOrderly": str(self.orderly).lower(),
                           "messageModel": self.options.message_model.name,
                           "consumeFromWhere": self.options.consume_from_where.name,
                           "consumeThreadMax": str(self.options.consume_thread_max),
                           "PROP_CONSUMER_START_TIMESTAMP": str(self._start_ms)},
            "subscriptionSet": [s.to_obj() for s in self.subscriptions.values()],
            "mqTable": {f"{mq.topic}@{mq.broker_name}:{mq.queue_id}": {
                "cachedMsgCount": pq.msg_count, "cachedMsgSizeInMiB": pq.msg_size // limits.MIB,
                "locked": pq.locked, "droped": pq.dropped} for mq, pq in table.items()},
        }

    async def consume_message_directly(self, msg: MessageExt) -> dict[str, Any]:
        """CONSUME_MESSAGE_DIRECTLY: run the listener on one message (not committed, not retried)."""
        mq = msg.message_queue
        started = now_ms()
        try:
            if self.orderly_listener is not None:
                status: Any = await self._invoke(self.orderly_listener, [msg], ConsumeOrderlyContext(mq))
                result = "SUCCESS" if status == ConsumeOrderlyStatus.SUCCESS else "RS"
            else:
                assert self.concurrent_listener is not None
                status = await self._invoke(self.concurrent_listener, [msg], ConsumeConcurrentlyContext(mq))
                result = "CR_SUCCESS" if status == ConsumeConcurrentlyStatus.CONSUME_SUCCESS else "CR_LATER"
            remark = None
        except Exception as exc:  # noqa: BLE001 - reported to the admin tool
            result, remark = "CR_THROW_EXCEPTION", f"{type(exc).__name__}: {exc}"
        return {"order": self.orderly, "autoCommit": True, "consumeResult": result, "remark": remark,
                "spentTimeMills": now_ms() - started}

    # --- periodic services --------------------------------------------------------------

    async def _rebalance_loop(self) -> None:
        assert self._rebalance_now is not None and self.rebalance is not None
        while self.running:
            self._rebalance_now.clear()
            try:
                await self.rebalance.do_rebalance(list(self.subscriptions))
            except Exception:  # noqa: BLE001 - keep rebalancing
                log.exception("group %s: rebalance failed", self.group)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rebalance_now.wait(), self.options.rebalance_interval_ms / 1000)

    async def _persist_loop(self) -> None:
        while await self._sleep(self.config.persist_consumer_offset_interval_ms):
            await self.persist_offsets()

    async def persist_offsets(self) -> None:
        assert self.offset_store is not None and self.rebalance is not None
        try:
            await self.offset_store.persist_all(set(self.rebalance.process_queue_table))
        except Exception as exc:  # noqa: BLE001 - retried next interval
            log.warning("group %s: persisting offsets failed: %s", self.group, exc)

    async def _lock_loop(self) -> None:
        """ConsumeMessageOrderlyService.lockMQPeriodically: renew every held queue's lock."""
        while await self._sleep(min(1000, self.options.lock_interval_ms)):
            await self.lock_all()
            if not await self._sleep(self.options.lock_interval_ms - min(1000, self.options.lock_interval_ms)):
                return

    async def lock_all(self) -> None:
        assert self.rebalance is not None and self.instance is not None
        for broker_name, mqs in self.rebalance.queues_by_broker().items():
            try:
                locked = set(await self.instance.lock_batch(broker_name, self.group, mqs))
            except Exception as exc:  # noqa: BLE001 - the lock just expires; retried
                log.warning("group %s: locking %d queues on %s failed: %s", self.group, len(mqs), broker_name, exc)
                continue
            now = now_ms()
            for mq in mqs:
                pq = self.rebalance.process_queue_table.get(mq)
                if pq is None:
                    continue
                if mq in locked:
                    if not pq.locked:
                        log.info("group %s: lock of %s regained", self.group, mq)
                    pq.locked, pq.last_lock_timestamp_ms = True, now
                else:
                    if pq.locked:
                        log.warning("group %s: lost the lock of %s", self.group, mq)
                    pq.locked = False

    async def _clean_expired_loop(self) -> None:
        interval = max(1000, min(self.options.consume_timeout_ms, limits.CONSUME_TIMEOUT_MINUTES_DEFAULT * 60_000))
        while await self._sleep(interval):
            await self.clean_expired()

    async def clean_expired(self) -> None:
        """Messages whose listener has run longer than consume_timeout_ms are sent back for
        redelivery and no longer hold back the queue's offset (ProcessQueue.cleanExpiredMsg)."""
        assert self.rebalance is not None
        for mq, pq in list(self.rebalance.process_queue_table.items()):
            for msg in pq.expired_messages(self.options.consume_timeout_ms, limits.CONSUME_TIMEOUT_CLEAN_PER_PASS_MAX):
                assert isinstance(msg, MessageExt)
                if await self.send_back(msg, 3):
                    log.warning("group %s: message %s of %s timed out in its listener; sent back for redelivery",
                                self.group, msg.msg_id, mq)
                    if pq.first_offset() == msg.queue_offset:
                        pq.remove_messages([msg])

    # --- rebalance owner ------------------------------------------------------------------

    async def compute_pull_from_where(self, mq: MessageQueue) -> int:
        """RebalancePushImpl.computePullFromWhere: the committed offset, else consumeFromWhere."""
        assert self.offset_store is not None and self.instance is not None
        last = await self.offset_store.read_offset(mq, ReadOffsetType.READ_FROM_STORE)
        if last >= 0:
            return last
        where = self.options.consume_from_where
        if where == ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET:
            return 0   # below the queue's minimum, the broker answers OFFSET_MOVED / NO_NEW_MSG with the fix
        if where == ConsumeFromWhere.CONSUME_FROM_TIMESTAMP:
            if is_retry_topic(mq.topic):
                return int(await self.instance.max_offset(mq))
            ts = self.options.consume_timestamp_ms
            if ts is None:
                ts = self._start_ms - limits.CONSUME_TIMESTAMP_AGO_MS_DEFAULT
            return int(await self.instance.search_offset(mq, ts))
        if is_retry_topic(mq.topic):
            return 0
        return int(await self.instance.max_offset(mq))

    async def remove_unnecessary_queue(self, mq: MessageQueue, pq: ProcessQueue) -> bool:
        assert self.offset_store is not None and self.instance is not None
        task = self._pull_tasks.pop(mq, None)
        if task is not None:
            task.cancel()
        if self.orderly and self.clustering:
            lock = self._orderly_locks.setdefault(mq, asyncio.Lock())
            try:
                await asyncio.wait_for(lock.acquire(), 1.0)
            except TimeoutError:
                log.info("group %s: %s is still being consumed; it is released at a later rebalance",
                         self.group, mq)
                return False
            try:
                await self._persist_one(mq)
                with contextlib.suppress(Exception):
                    await self.instance.unlock_batch(mq.broker_name, self.group, [mq])
            finally:
                lock.release()
            self.offset_store.remove_offset(mq)
            return True
        await self._persist_one(mq)
        self.offset_store.remove_offset(mq)
        return True

    async def _persist_one(self, mq: MessageQueue) -> None:
        assert self.offset_store is not None
        try:
            await self.offset_store.persist(mq)
        except Exception as exc:  # noqa: BLE001 - the next owner redelivers from the older offset
            log.warning("group %s: committing the offset of %s failed: %s", self.group, mq, exc)

    async def lock_queue(self, mq: MessageQueue) -> bool:
        assert self.instance is not None
        if not self.clustering:
            return True
        try:
            return mq in set(await self.instance.lock_batch(mq.broker_name, self.group, [mq]))
        except Exception as exc:  # noqa: BLE001 - retried next rebalance
            log.warning("group %s: locking %s failed: %s", self.group, mq, exc)
            return False

    def dispatch_pull(self, mq: MessageQueue, pq: ProcessQueue, next_offset: int) -> None:
        old = self._pull_tasks.pop(mq, None)
        if old is not None:
            old.cancel()
        self._pull_tasks[mq] = asyncio.ensure_future(self._pull_loop(mq, pq, next_offset))

    # --- pulling -------------------------------------------------------------------------------

    async def _pull_loop(self, mq: MessageQueue, pq: ProcessQueue, next_offset: int) -> None:
        """One queue's pulls, until it is dropped or the consumer stops (DefaultMQPushConsumerImpl.pullMessage)."""
        assert self.instance is not None and self.offset_store is not None
        opts = self.options
        sub = self.subscriptions.get(mq.topic)
        while self.running and not pq.dropped:
            if sub is None:
                sub = self.subscriptions.get(mq.topic)
                if sub is None:
                    return
            if (pq.msg_count > opts.pull_threshold_for_queue
                    or pq.msg_size > opts.pull_threshold_size_for_queue_mib * limits.MIB
                    or (not self.orderly and pq.max_span() > opts.consume_concurrently_max_span)):
                if not await self._sleep(limits.PULL_DELAY_MS_WHEN_FLOW_CONTROL):
                    return
                continue
            if self.orderly and self.clustering and not pq.locked:
                if not await self._sleep(limits.PULL_DELAY_MS_WHEN_NOT_LOCKED):
                    return
                continue
            commit_offset = 0
            if self.clustering:
                commit_offset = max(0, await self.offset_store.read_offset(mq, ReadOffsetType.READ_FROM_MEMORY))
            flag = PULL_FLAG_SUSPEND | PULL_FLAG_SUBSCRIPTION | (PULL_FLAG_COMMIT_OFFSET if commit_offset > 0 else 0)
            try:
                result = await self.instance.pull(
                    mq, group=self.group, queue_offset=next_offset, max_msg_nums=opts.pull_batch_size,
                    sys_flag=flag, commit_offset=commit_offset,
                    suspend_timeout_ms=opts.broker_suspend_max_time_ms,
                    subscription=sub.sub_string, sub_version=sub.sub_version, expression_type=sub.expression_type,
                    timeout_ms=opts.consumer_timeout_ms_when_suspend)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried after a pause
                if not self.running or pq.dropped:
                    return
                log.warning("group %s: pull of %s at %d failed: %s", self.group, mq, next_offset, exc)
                if not await self._sleep(self.config.pull_time_delay_ms_when_exception):
                    return
                continue
            pq.last_pull_timestamp_ms = now_ms()
            if pq.dropped or not self.running:
                return
            next_offset = self._on_pull_result(mq, pq, sub, next_offset, result)

    def _on_pull_result(self, mq: MessageQueue, pq: ProcessQueue, sub: SubscriptionData, offset: int,
                        result: PullResult) -> int:
        assert self.offset_store is not None
        status = result.status
        if status == PullStatus.FOUND:
            msgs = [m for m in result.messages if _tag_matches(sub, m)]
            for msg in msgs:
                msg.broker_name = msg.broker_name or mq.broker_name
            if msgs:
                dispatch = pq.put_messages(msgs)
                if self.orderly:
                    if dispatch:
                        self._submit_orderly(mq, pq)
                else:
                    self._submit_concurrently(mq, pq, msgs)
            elif pq.msg_count == 0:
                self.offset_store.update_offset(mq, result.next_begin_offset, True)
            return int(result.next_begin_offset)
        if status in (PullStatus.NO_NEW_MSG, PullStatus.NO_MATCHED_MSG):
            if pq.msg_count == 0:
                self.offset_store.update_offset(mq, result.next_begin_offset, True)
            return int(result.next_begin_offset)
        # OFFSET_ILLEGAL: the offset is outside the queue; restart from the broker's suggestion
        log.warning("group %s: offset %d of %s is illegal; the queue restarts from %d", self.group, offset, mq,
                    result.next_begin_offset)
        pq.dropped = True
        self.offset_store.update_offset(mq, result.next_begin_offset, False)
        asyncio.ensure_future(self._replace_queue(mq))
        return int(result.next_begin_offset)

    async def _replace_queue(self, mq: MessageQueue) -> None:
        assert self.offset_store is not None and self.rebalance is not None
        await self._persist_one(mq)
        self.rebalance.process_queue_table.pop(mq, None)
        self._pull_tasks.pop(mq, None)
        self.on_consumer_ids_changed()

    # --- consuming: concurrently -------------------------------------------------------------------

    def _track(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._consume_tasks.add(task)
        task.add_done_callback(self._consume_tasks.discard)

    def _submit_concurrently(self, mq: MessageQueue, pq: ProcessQueue, msgs: Sequence[MessageExt]) -> None:
        size = self.options.consume_message_batch_max_size
        for i in range(0, len(msgs), size):
            self._track(self._consume_concurrently(mq, pq, list(msgs[i:i + size])))

    async def _consume_concurrently(self, mq: MessageQueue, pq: ProcessQueue, msgs: list[MessageExt]) -> None:
        assert self._semaphore is not None and self.offset_store is not None
        listener = self.concurrent_listener
        assert listener is not None
        async with self._semaphore:
            if pq.dropped:
                return
            self._restore_retry_topics(msgs)
            pq.mark_consume_start(msgs)
            ctx = ConsumeConcurrentlyContext(mq)
            try:
                status = await self._invoke(listener, msgs, ctx)
            except Exception:  # noqa: BLE001 - a raising listener means "later"
                log.exception("group %s: the listener raised on %d messages of %s; they will be retried",
                              self.group, len(msgs), mq)
                status = ConsumeConcurrentlyStatus.RECONSUME_LATER
        if status is None:
            status = ConsumeConcurrentlyStatus.RECONSUME_LATER
        if not isinstance(status, ConsumeConcurrentlyStatus):
            log.warning("group %s: the listener returned %r, not a ConsumeConcurrentlyStatus; treated as "
                        "RECONSUME_LATER", self.group, status)
            status = ConsumeConcurrentlyStatus.RECONSUME_LATER
        if pq.dropped:
            return   # the queue moved to another member, which redelivers from the committed offset
        ack_index = min(ctx.ack_index, len(msgs) - 1) if status == ConsumeConcurrentlyStatus.CONSUME_SUCCESS else -1
        self.consumed_ok += ack_index + 1
        failed = msgs[ack_index + 1:]
        self.consumed_failed += len(failed)
        back_failed: list[MessageExt] = []
        if self.clustering:
            for msg in failed:
                if not await self.send_back(msg, ctx.delay_level_when_next_consume):
                    msg.reconsume_times += 1
                    back_failed.append(msg)
        elif failed:
            log.warning("group %s: broadcasting consumers do not retry; %d failed messages of %s are dropped",
                        self.group, len(failed), mq)
        done = [m for m in msgs if m not in back_failed] if back_failed else msgs
        offset = pq.remove_messages(done)
        if offset >= 0 and not pq.dropped:
            self.offset_store.update_offset(mq, offset, True)
        if back_failed:
            self._track(self._consume_later(mq, pq, back_failed))

    async def _consume_later(self, mq: MessageQueue, pq: ProcessQueue, msgs: list[MessageExt]) -> None:
        if await self._sleep(limits.SEND_BACK_FAILED_RECONSUME_DELAY_MS) and not pq.dropped:
            await self._consume_concurrently(mq, pq, msgs)

    async def send_back(self, msg: MessageExt, delay_level: int) -> bool:
        """CONSUMER_SEND_MSG_BACK; False when the broker could not take it back."""
        assert self.instance is not None
        try:
            await self.instance.send_back(msg, self.group, delay_level, self.max_reconsume_times)
            return True
        except Exception as exc:  # noqa: BLE001 - the caller falls back to consuming again locally
            log.warning("group %s: sending message %s back failed (%s); it is consumed again locally",
                        self.group, msg.msg_id, exc)
            return False

    def _restore_retry_topics(self, msgs: Iterable[MessageExt]) -> None:
        """A message redelivered through %RETRY%<group> shows its original topic to the listener."""
        group_retry = retry_topic(self.group)
        now = str(now_ms())
        for msg in msgs:
            real = msg.properties.get(pm.PROPERTY_RETRY_TOPIC)
            if real and msg.topic == group_retry:
                msg.topic = real
            msg.properties[pm.PROPERTY_CONSUME_START_TIMESTAMP] = now

    # --- consuming: orderly ----------------------------------------------------------------------

    def _submit_orderly(self, mq: MessageQueue, pq: ProcessQueue, delay_ms: int = 0) -> None:
        self._track(self._consume_orderly(mq, pq, delay_ms))

    async def _consume_orderly(self, mq: MessageQueue, pq: ProcessQueue, delay_ms: int = 0) -> None:
        """One turn of a queue's orderly consumption: batches in offset order, one at a time."""
        assert self._semaphore is not None and self.offset_store is not None
        if delay_ms and not await self._sleep(delay_ms):
            return
        listener = self.orderly_listener
        assert listener is not None
        lock = self._orderly_locks.setdefault(mq, asyncio.Lock())
        async with lock:
            begin = now_ms()
            while self.running and not pq.dropped:
                if self.clustering and (not pq.locked or pq.is_lock_expired()):
                    asyncio.ensure_future(self._lock_and_consume_later(mq, pq))
                    return
                if now_ms() - begin > limits.CONSUME_ORDERLY_CONTINUOUS_MS_MAX:
                    self._submit_orderly(mq, pq, 10)
                    return
                msgs = pq.take_messages(self.options.consume_message_batch_max_size)
                if not msgs:
                    return
                batch = [m for m in msgs if isinstance(m, MessageExt)]
                self._restore_retry_topics(batch)
                ctx = ConsumeOrderlyContext(mq, self.options.suspend_current_queue_time_ms)
                async with self._semaphore:
                    try:
                        status = await self._invoke(listener, batch, ctx)
                    except Exception:  # noqa: BLE001 - a raising listener means "suspend"
                        log.exception("group %s: the orderly listener raised on %s; the queue pauses", self.group, mq)
                        status = ConsumeOrderlyStatus.SUSPEND_CURRENT_QUEUE_A_MOMENT
                if status is None or not isinstance(status, ConsumeOrderlyStatus):
                    status = ConsumeOrderlyStatus.SUSPEND_CURRENT_QUEUE_A_MOMENT
                if pq.dropped:
                    return
                if status == ConsumeOrderlyStatus.SUCCESS:
                    self.consumed_ok += len(batch)
                    commit = pq.commit()
                elif await self._orderly_retry_exhausted(batch):
                    commit = pq.commit()
                else:
                    self.consumed_failed += len(batch)
                    for msg in batch:
                        msg.reconsume_times += 1
                    pq.make_messages_consume_again(batch)
                    self._submit_orderly(mq, pq, ctx.suspend_current_queue_time_ms)
                    return
                if commit >= 0:
                    self.offset_store.update_offset(mq, commit, False)

    async def _orderly_retry_exhausted(self, msgs: list[MessageExt]) -> bool:
        """ConsumeMessageOrderlyService.checkReconsumeTimes: messages past max_reconsume_times go to
        the broker (which puts them in the DLQ) so the queue can move on; False to suspend."""
        if not any(m.reconsume_times >= self.max_reconsume_times for m in msgs):
            return False
        for msg in msgs:
            if msg.reconsume_times >= self.max_reconsume_times:
                msg.properties[pm.PROPERTY_RECONSUME_TIME] = str(msg.reconsume_times)
                if not await self.send_back(msg, -1):
                    return False
        return True

    async def _lock_and_consume_later(self, mq: MessageQueue, pq: ProcessQueue) -> None:
        """tryLockLaterAndReconsume: try the broker's lock, then resume soon (or in 3 s without it)."""
        if not await self._sleep(10):
            return
        if await self.lock_queue(mq):
            pq.locked, pq.last_lock_timestamp_ms = True, now_ms()
            self._submit_orderly(mq, pq, 10)
        else:
            pq.locked = False
            self._submit_orderly(mq, pq, limits.PULL_DELAY_MS_WHEN_NOT_LOCKED)


class _RebalanceOwner:
    """The consumer core seen from RebalanceImpl."""

    def __init__(self, core: _ConsumerCore) -> None:
        self.core = core

    async def subscribe_queues(self, topic: str) -> list[MessageQueue]:
        assert self.core.instance is not None
        return list(await self.core.instance.subscribe_queues(topic))

    async def find_consumer_ids(self, topic: str) -> list[str]:
        assert self.core.instance is not None
        return list(await self.core.instance.find_consumer_ids(topic, self.core.group))

    async def compute_pull_from_where(self, mq: MessageQueue) -> int:
        return await self.core.compute_pull_from_where(mq)

    async def remove_unnecessary_queue(self, mq: MessageQueue, pq: ProcessQueue) -> bool:
        return await self.core.remove_unnecessary_queue(mq, pq)

    async def lock_queue(self, mq: MessageQueue) -> bool:
        return await self.core.lock_queue(mq)

    def dispatch_pull(self, mq: MessageQueue, pq: ProcessQueue, next_offset: int) -> None:
        self.core.dispatch_pull(mq, pq, next_offset)


class _OffsetBrokerAdapter:
    """ClientInstance's offset requests in the shape RemoteBrokerOffsetStore wants."""

    def __init__(self, instance: ClientInstance) -> None:
        self.instance = instance
        self.oneway = True     # the final commit at shutdown waits for the broker's answer

    async def query_consumer_offset(self, mq: MessageQueue, group: str) -> int | None:
        return await self.instance.query_consumer_offset(mq, group)

    async def update_consumer_offset(self, mq: MessageQueue, group: str, offset: int) -> None:
        await self.instance.update_consumer_offset(mq, group, offset, oneway=self.oneway)


def _tag_matches(sub: SubscriptionData, msg: MessageExt) -> bool:
    """The client-side re-filter: the broker matched the tag's hash, here the tag itself."""
    if not sub.tags_set or not sub.is_tag_type:
        return True
    tags = msg.tags
    return tags is not None and tags in sub.tags_set


def _make_options(options: PushConsumerOptions | None, kwargs: dict[str, Any]) -> PushConsumerOptions:
    base = options or PushConsumerOptions()
    if "consume_timestamp" in kwargs:
        value = kwargs.pop("consume_timestamp")
        kwargs["consume_timestamp_ms"] = None if value is None else parse_consume_timestamp(value)
    try:
        return dataclasses.replace(base, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{exc}; see PushConsumerOptions for the accepted settings") from None


def _make_config(namesrv_addr: str | Sequence[str] | None, config: ClientConfig | None,
                 settings: dict[str, Any]) -> ClientConfig:
    """The client config: `config`, else one built from namesrv_addr; settings named like a
    ClientConfig field (instance_name, persist_consumer_offset_interval_ms, ...) are taken
    out of `settings` and applied to it."""
    names = {f.name for f in dataclasses.fields(ClientConfig)}
    client_settings = {k: settings.pop(k) for k in list(settings) if k in names}
    if namesrv_addr:
        client_settings["namesrv_addr"] = ClientConfig.make(namesrv_addr).namesrv_addr
    if config is not None:
        return dataclasses.replace(config, **client_settings) if client_settings else config
    return ClientConfig.make(client_settings.pop("namesrv_addr", None), **client_settings)


# --- the asyncio API ---------------------------------------------------------------------------------


async def _await_listener(listener: Callable[..., Any], msgs: list[MessageExt], ctx: Any) -> Any:
    result = listener(msgs, ctx)
    if inspect.isawaitable(result):
        result = await result
    return result


class _Subscriptions:
    """What both push consumers (asyncio and blocking) configure the same way, on their core."""

    _core: _ConsumerCore

    @property
    def group(self) -> str:
        return self._core.group

    @property
    def options(self) -> PushConsumerOptions:
        return self._core.options

    def subscribe(self, topic: str, expression: str = "*") -> None:
        """Consume `topic` messages whose tag matches `expression` ("*", "TagA || TagB")."""
        self._core.subscribe(topic, expression)

    def register_message_listener(self, listener: ConcurrentListener) -> None:
        """A concurrent listener: `(msgs, ctx) -> ConsumeConcurrentlyStatus` (None or raising = later)."""
        self._core.concurrent_listener, self._core.orderly_listener = listener, None

    def register_orderly_listener(self, listener: OrderlyListener) -> None:
        """An orderly listener: `(msgs, ctx) -> ConsumeOrderlyStatus`; a queue's messages in order."""
        self._core.orderly_listener, self._core.concurrent_listener = listener, None


class AsyncPushConsumer(_Subscriptions):
    """The push consumer on the caller's event loop; listeners may be coroutine functions
    (a plain function is called on the loop and must not block).

        async with AsyncPushConsumer("my-group", namesrv_addr="127.0.0.1:9876") as consumer:
            consumer.subscribe("Orders", "*")
            consumer.register_message_listener(on_messages)
            await consumer.start()
            ...
    """

    def __init__(self, group: str, namesrv_addr: str | Sequence[str] | None = None, *,
                 config: ClientConfig | None = None, options: PushConsumerOptions | None = None,
                 **settings: Any) -> None:
        client_config = _make_config(namesrv_addr, config, settings)
        self._core = _ConsumerCore(group, client_config, _make_options(options, settings), _await_listener)

    async def start(self) -> None:
        await self._core.start()

    async def shutdown(self) -> None:
        await self._core.shutdown()

    async def __aenter__(self) -> AsyncPushConsumer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    @property
    def assigned_queues(self) -> list[MessageQueue]:
        """The queues this member holds now."""
        return sorted(self._core.rebalance.process_queue_table) if self._core.rebalance else []

    async def committed_offsets(self) -> dict[MessageQueue, int]:
        """The offsets this member would commit now (in memory)."""
        return self._core.offset_store.offsets() if self._core.offset_store else {}


# --- the blocking API ---------------------------------------------------------------------------------


class PushConsumer(_Subscriptions):
    """The push consumer for programs without asyncio: listeners run on a pool of
    `consume_thread_max` threads (20); the network runs on the SDK's shared loop thread.

        with PushConsumer("my-group", namesrv_addr="127.0.0.1:9876") as consumer:
            consumer.subscribe("Orders", "*")
            consumer.register_message_listener(on_messages)
            consumer.start()
            wait_for_signal()
    """

    def __init__(self, group: str, namesrv_addr: str | Sequence[str] | None = None, *,
                 config: ClientConfig | None = None, options: PushConsumerOptions | None = None,
                 **settings: Any) -> None:
        client_config = _make_config(namesrv_addr, config, settings)
        opts = _make_options(options, settings)
        self._pool = concurrent.futures.ThreadPoolExecutor(opts.consume_thread_max,
                                                           thread_name_prefix=f"ConsumeMessageThread_{group}")
        self._core = _ConsumerCore(group, client_config, opts, self._run_on_thread)
        self._loop: _loop.LoopThread | None = None

    async def _run_on_thread(self, listener: Callable[..., Any], msgs: list[MessageExt], ctx: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(listener, msgs, ctx))

    def start(self) -> None:
        if self._loop is not None:
            raise ClientStateError(f"push consumer of group {self.group} is already started")
        self._loop = _loop.acquire_shared_loop()
        try:
            self._loop.run(self._core.start(), self._core.config.request_timeout_ms / 1000 * 4)
        except BaseException:
            loop, self._loop = self._loop, None
            with contextlib.suppress(Exception):
                loop.run(self._core.shutdown(), 30)
            _loop.release_shared_loop(loop)
            raise

    def shutdown(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            loop.run(self._core.shutdown(), self._core.options.shutdown_await_ms / 1000 + 30)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            _loop.release_shared_loop(loop)

    def __enter__(self) -> PushConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def assigned_queues(self) -> list[MessageQueue]:
        """The queues this member holds now."""
        rb = self._core.rebalance
        if rb is None or self._loop is None:
            return []
        return self._loop.run(_snapshot(lambda: sorted(rb.process_queue_table)), 10)

    def committed_offsets(self) -> dict[MessageQueue, int]:
        """The offsets this member would commit now (in memory)."""
        store = self._core.offset_store
        if store is None or self._loop is None:
            return {}
        return self._loop.run(_snapshot(store.offsets), 10)


async def _snapshot(read: Callable[[], Any]) -> Any:
    return read()
