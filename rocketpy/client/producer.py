"""Producers: `AsyncProducer` (asyncio) and `Producer` (blocking), over one core.

    with Producer("OrderProducers", namesrv_addr="127.0.0.1:9876") as producer:
        result = producer.send(Message("Orders", b"...", tags="paid", keys="order-42"))

    async with AsyncProducer("OrderProducers", namesrv_addr="127.0.0.1:9876") as producer:
        result = await producer.send(Message("Orders", b"..."))

What a send does (RocketMQ's DefaultMQProducerImpl.sendDefaultImpl):

- checks the message (topic name, non-empty body within max_message_size);
- stamps a UNIQ_KEY (the id consumers see) once, so a retried message keeps its id;
- compresses bodies of 4 KiB and more (zlib, sysFlag COMPRESSED);
- picks a queue round-robin, avoiding brokers that failed or were slow (`fault.py`);
- sends SEND_MESSAGE_V2 and retries a failed attempt, on another broker when there is one,
  up to retry_times_when_send_failed more times, all within send_timeout_ms.

A send with a selector or an explicit queue is never retried elsewhere (that would break
per-queue order). `send_batch` splits its messages into batches within max_message_size.
Transactional sends are in `transaction.py`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from rocketpy import limits
from rocketpy.client._loop import LoopThread, acquire_shared_loop, release_shared_loop
from rocketpy.client.config import ClientConfig
from rocketpy.client.fault import MQFaultStrategy
from rocketpy.client.instance import ClientInstance
from rocketpy.client.message import Message, MessageQueue, SendResult, SendStatus
from rocketpy.client.selector import MessageQueueSelector
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.errors import (
    BrokerNotFoundError,
    ClientStateError,
    MessageIllegalError,
    NoRouteError,
    ProtocolError,
    RemotingConnectError,
    RemotingError,
    RemotingTimeoutError,
    SendFailedError,
    client_error_for_code,
)
from rocketpy.protocol import headers as h
from rocketpy.protocol import message as pm
from rocketpy.protocol.batch import ITEM_FIXED_SIZE, BatchItem, encode_batch_body
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.msgid import UniqKeyGenerator
from rocketpy.protocol.topics import (
    AUTO_CREATE_TOPIC_KEY_TOPIC,
    RETRY_GROUP_TOPIC_PREFIX,
    is_not_allowed_send_topic,
    validate_group,
    validate_topic,
)

log = logging.getLogger("rocketpy.client.producer")

SendCallback = Callable[[SendResult | None, BaseException | None], None]
"""Called once with (result, None) or (None, error)."""

_STATUS_BY_CODE = {
    ResponseCode.SUCCESS: SendStatus.SEND_OK,
    ResponseCode.FLUSH_DISK_TIMEOUT: SendStatus.FLUSH_DISK_TIMEOUT,
    ResponseCode.FLUSH_SLAVE_TIMEOUT: SendStatus.FLUSH_SLAVE_TIMEOUT,
    ResponseCode.SLAVE_NOT_AVAILABLE: SendStatus.SLAVE_NOT_AVAILABLE,
}
_RETRY_ERRORS = (RemotingConnectError, RemotingTimeoutError, BrokerNotFoundError)

_uniq_keys: UniqKeyGenerator | None = None


def _new_uniq_key(client_ip: str) -> str:
    global _uniq_keys
    if _uniq_keys is None:
        try:
            _uniq_keys = UniqKeyGenerator(client_ip)
        except ProtocolError:
            _uniq_keys = UniqKeyGenerator()
    return _uniq_keys.next()


@dataclasses.dataclass(frozen=True, slots=True)
class _Outgoing:
    """One request's worth: a single message or an encoded batch."""

    topic: str
    body: bytes
    properties: str
    sys_flag: int
    flag: int
    msg_id: str
    batch: bool = False
    reconsume_times: int | None = None
    max_reconsume_times: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ProducerOptions:
    """Producer settings, with DefaultMQProducer's defaults."""

    send_timeout_ms: int = limits.PRODUCER_SEND_TIMEOUT_MS_DEFAULT
    retry_times_when_send_failed: int = limits.PRODUCER_RETRY_TIMES_WHEN_SEND_FAILED_DEFAULT
    retry_times_when_send_async_failed: int = limits.PRODUCER_RETRY_TIMES_WHEN_SEND_ASYNC_FAILED_DEFAULT
    retry_another_broker_when_not_store_ok: bool = False
    compress_msg_body_over_bytes: int = limits.BODY_COMPRESS_THRESHOLD_SIZE
    compress_level: int = limits.BODY_COMPRESS_LEVEL
    max_message_size: int = limits.MESSAGE_SIZE_MAX_DEFAULT
    send_latency_fault_enable: bool = True
    create_topic_key: str = AUTO_CREATE_TOPIC_KEY_TOPIC
    default_topic_queue_nums: int = limits.PRODUCER_DEFAULT_TOPIC_QUEUE_NUMS

    def __post_init__(self) -> None:
        if self.send_timeout_ms <= 0 or self.retry_times_when_send_failed < 0 \
                or self.retry_times_when_send_async_failed < 0:
            raise ValueError("send_timeout_ms must be positive and retry counts >= 0")
        if not 0 < self.max_message_size <= limits.MESSAGE_SIZE_MAX_DEFAULT * 4:
            raise ValueError(f"max_message_size must be in 1..{limits.MESSAGE_SIZE_MAX_DEFAULT * 4}")


def _split_kwargs(kwargs: dict[str, Any]) -> tuple[ProducerOptions, dict[str, Any]]:
    names = {f.name for f in dataclasses.fields(ProducerOptions)}
    opts = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
    return ProducerOptions(**opts), kwargs


class AsyncProducer:
    """A producer on the caller's asyncio loop. Options are ProducerOptions fields; the rest
    go to ClientConfig (instance_name, request_timeout_ms, ...)."""

    def __init__(self, group: str, *, namesrv_addr: str | Sequence[str] | None = None,
                 config: ClientConfig | None = None, clock: Clock = SYSTEM_CLOCK, **options: Any) -> None:
        validate_group(group)
        self.group = group
        self.options, rest = _split_kwargs(dict(options))
        if config is None:
            config = ClientConfig.make(namesrv_addr, **rest)
        elif rest or namesrv_addr is not None:
            raise TypeError("pass either config or namesrv_addr/ClientConfig keywords, not both")
        self.config = config
        self._clock = clock
        self.fault_strategy = MQFaultStrategy(self.options.send_latency_fault_enable, clock)
        self._instance: ClientInstance | None = None
        self._pending: set[asyncio.Future[Any]] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Join (or start) the client instance of this config and register the group."""
        if self._instance is not None:
            return
        inst = await ClientInstance.get(self.config)
        try:
            inst.register_producer(self.group, self)
        except BaseException:
            await inst.release(self)
            raise
        self._instance = inst

    async def close(self) -> None:
        """Wait for sends in flight (bounded), unregister the group, release the instance."""
        inst, self._instance = self._instance, None
        if inst is None:
            return
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=self.options.send_timeout_ms / 1000)
        await inst.release(self)

    async def __aenter__(self) -> AsyncProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def instance(self) -> ClientInstance:
        if self._instance is None or self._instance.closed:
            raise ClientStateError(f"producer {self.group} is not started; call start() or use it as a context manager")
        return self._instance

    # --- public sends -------------------------------------------------------------------------

    async def send(self, msg: Message, *, selector: MessageQueueSelector | None = None, arg: Any = None,
                   queue: MessageQueue | None = None, timeout_ms: int | None = None) -> SendResult:
        """Send and wait for the broker's answer. With a selector or a queue: that queue only,
        one attempt; otherwise up to 1 + retry_times_when_send_failed attempts."""
        out = self._prepare(msg)
        timeout = timeout_ms or self.options.send_timeout_ms
        if selector is not None or queue is not None:
            return await self._send_to_chosen(out, msg, selector, arg, queue, timeout)
        return await self._send_default(out, 1 + self.options.retry_times_when_send_failed, timeout)

    def send_async(self, msg: Message, callback: SendCallback | None = None, *,
                   selector: MessageQueueSelector | None = None, arg: Any = None,
                   queue: MessageQueue | None = None, timeout_ms: int | None = None) -> asyncio.Task[SendResult]:
        """Start a send and return its task (await it, or pass a callback): retried up to
        retry_times_when_send_async_failed times. Must be called inside the running loop."""
        out = self._prepare(msg)
        timeout = timeout_ms or self.options.send_timeout_ms
        if selector is not None or queue is not None:
            coro = self._send_to_chosen(out, msg, selector, arg, queue, timeout)
        else:
            coro = self._send_default(out, 1 + self.options.retry_times_when_send_async_failed, timeout)
        task = asyncio.get_running_loop().create_task(coro)
        self._track(task, callback)
        return task

    async def send_oneway(self, msg: Message, *, selector: MessageQueueSelector | None = None,
                          arg: Any = None, queue: MessageQueue | None = None) -> None:
        """Send without waiting for an answer (no result, no retry, no delivery guarantee)."""
        out = self._prepare(msg)
        inst = self.instance
        if selector is not None or queue is not None:
            mq = await self._chosen_queue(msg, selector, arg, queue)
        else:
            mq = self.fault_strategy.select(await self._publish_queues(out.topic))
        addr = await self._master_addr(mq)
        await inst.invoke_oneway(addr, self._command(out, mq))

    async def send_batch(self, msgs: Sequence[Message], *, queue: MessageQueue | None = None,
                         timeout_ms: int | None = None) -> list[SendResult]:
        """Send messages of one topic as batches (SEND_BATCH_MESSAGE), split so each batch
        stays within max_message_size; one SendResult per batch, in order. No delayed or
        transactional messages; each batch is retried like `send`."""
        batches = self._prepare_batches(msgs)
        timeout = timeout_ms or self.options.send_timeout_ms
        results = []
        for out in batches:
            if queue is not None:
                results.append(await self._send_to_chosen(out, None, None, None, queue, timeout))
            else:
                results.append(await self._send_default(out, 1 + self.options.retry_times_when_send_failed,
                                                        timeout))
        return results

    # --- preparing ----------------------------------------------------------------------------------

    def _check_message(self, msg: Message) -> None:
        if not isinstance(msg, Message):
            raise MessageIllegalError(f"expected a Message, got {type(msg).__name__}")
        try:
            validate_topic(msg.topic)
        except Exception as exc:  # noqa: BLE001 - re-raised with the user's wording
            raise MessageIllegalError(f"{exc}") from None
        if is_not_allowed_send_topic(msg.topic):
            raise MessageIllegalError(f"topic {msg.topic!r} is a system topic; producers may not send to it")
        if not msg.body:
            raise MessageIllegalError("the message body is empty; RocketMQ does not store empty messages")
        if len(msg.body) > self.options.max_message_size:
            raise MessageIllegalError(
                f"the message body is {len(msg.body)} bytes, over max_message_size "
                f"{self.options.max_message_size}; split it or raise maxMessageSize on broker and producer")

    def _stamp(self, msg: Message) -> str:
        key = msg.properties.get(pm.PROPERTY_UNIQ_KEY)
        if not key:
            key = _new_uniq_key(self.config.client_ip)
            msg.properties[pm.PROPERTY_UNIQ_KEY] = key
        return key

    def _prepare(self, msg: Message) -> _Outgoing:
        self._check_message(msg)
        key = self._stamp(msg)
        body, sys_flag = msg.body, 0
        if len(body) >= self.options.compress_msg_body_over_bytes:
            body = zlib.compress(body, self.options.compress_level)
            sys_flag |= pm.SysFlag.COMPRESSED
        if msg.properties.get(pm.PROPERTY_TRANSACTION_PREPARED) == "true":
            sys_flag |= pm.TRANSACTION_PREPARED
        reconsume = max_reconsume = None
        if msg.topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
            reconsume = _int_prop(msg, pm.PROPERTY_RECONSUME_TIME)
            max_reconsume = _int_prop(msg, pm.PROPERTY_MAX_RECONSUME_TIMES)
        return _Outgoing(msg.topic, body, msg.properties_text(), sys_flag, msg.flag, key,
                         reconsume_times=reconsume, max_reconsume_times=max_reconsume)

    def _prepare_batches(self, msgs: Sequence[Message]) -> list[_Outgoing]:
        if not msgs:
            raise MessageIllegalError("send_batch needs at least one message")
        topic = msgs[0].topic
        limit = self.options.max_message_size
        topic_size = len(topic.encode())
        batches: list[_Outgoing] = []
        items: list[BatchItem] = []
        ids: list[str] = []
        size = 0
        wait = "WAIT\x01true" if msgs[0].wait_store_msg_ok else ""

        def flush() -> None:
            nonlocal items, ids, size
            if items:
                batches.append(_Outgoing(topic, encode_batch_body(items), wait, 0, 0, ",".join(ids), batch=True))
            items, ids, size = [], [], 0

        for msg in msgs:
            self._check_message(msg)
            if msg.topic != topic:
                raise MessageIllegalError(
                    f"a batch holds one topic; got {topic!r} and {msg.topic!r}: send them in separate batches")
            if msg.delay_level:
                raise MessageIllegalError("a batch cannot hold delayed messages; send them one by one")
            if msg.properties.get(pm.PROPERTY_TRANSACTION_PREPARED) == "true":
                raise MessageIllegalError("a batch cannot hold transactional messages")
            if topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
                raise MessageIllegalError("a batch cannot be sent to a retry topic")
            key = self._stamp(msg)
            props = msg.properties_text()
            # What the broker will store for this item: the record, with the header's properties.
            item_size = pm.record_size(len(msg.body), topic_size, len(props.encode()) + len(wait) + 32)
            if item_size > limit:
                raise MessageIllegalError(
                    f"message {key} is {item_size} bytes stored, over max_message_size {limit}; send it alone")
            if items and (size + item_size > limit or len(items) >= limits.BATCH_MESSAGES_MAX):
                flush()
            items.append(BatchItem(msg.flag, msg.body, props))
            ids.append(key)
            size += max(item_size, ITEM_FIXED_SIZE)
        flush()
        return batches

    # --- sending --------------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return self._clock.monotonic_ms()

    async def _publish_queues(self, topic: str) -> list[MessageQueue]:
        queues = await self.instance.publish_queues(
            topic, default_topic=self.options.create_topic_key,
            default_queue_nums=self.options.default_topic_queue_nums)
        if not queues:
            raise NoRouteError(f"topic {topic!r} has no writable queue on a broker with a master; "
                               "check the topic's permissions and that its brokers run")
        return queues

    async def _master_addr(self, mq: MessageQueue) -> str:
        inst = self.instance
        addr = inst.broker_addr(mq.broker_name)
        if addr is None:
            await self._publish_queues(mq.topic)          # the topic's route, or TBW102's for a new topic
            addr = inst.broker_addr(mq.broker_name)
        if addr is None:
            raise BrokerNotFoundError(f"broker {mq.broker_name!r} of topic {mq.topic!r} has no master address; "
                                      "it may be down")
        return addr

    def _command(self, out: _Outgoing, mq: MessageQueue) -> Any:
        header = h.SendMessageRequestHeader(
            producer_group=self.group, topic=out.topic, default_topic=self.options.create_topic_key,
            default_topic_queue_nums=self.options.default_topic_queue_nums, queue_id=mq.queue_id,
            sys_flag=out.sys_flag, born_timestamp=time.time_ns() // 1_000_000, flag=out.flag,
            properties=out.properties, reconsume_times=out.reconsume_times or 0,
            unit_mode=self.config.unit_mode, max_reconsume_times=out.max_reconsume_times, batch=out.batch)
        code = RequestCode.SEND_BATCH_MESSAGE if out.batch else RequestCode.SEND_MESSAGE_V2
        return self.instance.command(code, header.to_ext_v2(), out.body)

    async def _send_kernel(self, out: _Outgoing, mq: MessageQueue, timeout_ms: int) -> SendResult:
        addr = await self._master_addr(mq)
        resp = await self.instance.invoke(addr, self._command(out, mq), timeout_ms)
        status = _STATUS_BY_CODE.get(resp.code)  # type: ignore[call-overload]
        if status is None:
            raise client_error_for_code(resp.code, resp.remark, f"send to {mq} ({addr})")
        rh = h.SendMessageResponseHeader.from_command(resp)
        trace_on = rh.trace_on if rh.trace_on is not None else True
        return SendResult(status, out.msg_id, rh.msg_id, MessageQueue(out.topic, mq.broker_name, rh.queue_id),
                          rh.queue_offset, rh.transaction_id, rh.msg_region, trace_on)

    async def _send_default(self, out: _Outgoing, attempts: int, timeout_ms: int) -> SendResult:
        begin = self._now_ms()
        last_broker: str | None = None
        errors: list[BaseException] = []
        result: SendResult | None = None
        for attempt in range(attempts):
            remaining = timeout_ms - (self._now_ms() - begin)
            if remaining <= 0:
                errors.append(RemotingTimeoutError(f"send timeout of {timeout_ms} ms spent"))
                break
            mq = self.fault_strategy.select(await self._publish_queues(out.topic), last_broker)
            last_broker = mq.broker_name
            started = self._now_ms()
            try:
                result = await self._send_kernel(out, mq, remaining)
            except _RETRY_ERRORS as exc:
                self.fault_strategy.update(mq.broker_name, self._now_ms() - started, True)
                self.instance.schedule_route_refresh(out.topic)
                errors.append(exc)
                log.info("send of %s to %s failed (attempt %d of %d): %s", out.msg_id, mq, attempt + 1,
                         attempts, exc)
                continue
            except RemotingError as exc:
                self.fault_strategy.update(mq.broker_name, self._now_ms() - started, True)
                errors.append(exc)
                if not exc.retriable:
                    raise
                log.info("send of %s to %s refused (attempt %d of %d): %s", out.msg_id, mq, attempt + 1,
                         attempts, exc)
                continue
            self.fault_strategy.update(mq.broker_name, self._now_ms() - started, False)
            if result.status is not SendStatus.SEND_OK and self.options.retry_another_broker_when_not_store_ok \
                    and attempt + 1 < attempts:
                continue
            return result
        if result is not None:
            return result
        last = errors[-1] if errors else None
        raise SendFailedError(
            f"send to topic {out.topic!r} failed after {len(errors)} attempt(s) in "
            f"{self._now_ms() - begin} ms: {last}; check that its brokers run and are reachable", errors)

    async def _chosen_queue(self, msg: Message | None, selector: MessageQueueSelector | None, arg: Any,
                            queue: MessageQueue | None) -> MessageQueue:
        if queue is not None:
            return queue
        assert selector is not None and msg is not None
        queues = await self._publish_queues(msg.topic)
        mq = selector(queues, msg, arg)
        if not isinstance(mq, MessageQueue):
            raise TypeError(f"the queue selector returned {mq!r}, not a MessageQueue")
        return mq

    async def _send_to_chosen(self, out: _Outgoing, msg: Message | None, selector: MessageQueueSelector | None,
                              arg: Any, queue: MessageQueue | None, timeout_ms: int) -> SendResult:
        if queue is not None and queue.topic != out.topic:
            raise MessageIllegalError(f"queue {queue} belongs to another topic than the message ({out.topic})")
        mq = await self._chosen_queue(msg, selector, arg, queue)
        started = self._now_ms()
        try:
            result = await self._send_kernel(out, mq, timeout_ms)
        except (RemotingError, *_RETRY_ERRORS):
            self.fault_strategy.update(mq.broker_name, self._now_ms() - started, True)
            self.instance.schedule_route_refresh(out.topic)
            raise
        self.fault_strategy.update(mq.broker_name, self._now_ms() - started, False)
        return result

    def _track(self, fut: asyncio.Future[Any], callback: SendCallback | None) -> None:
        self._pending.add(fut)

        def done(f: asyncio.Future[Any]) -> None:
            self._pending.discard(f)
            if f.cancelled():
                error: BaseException | None = asyncio.CancelledError()
                result = None
            else:
                error = f.exception()
                result = None if error is not None else f.result()
            if callback is not None:
                try:
                    callback(result, error)
                except Exception:  # noqa: BLE001 - a user's callback must not break the loop
                    log.exception("send callback raised")
            elif error is not None and not isinstance(error, asyncio.CancelledError):
                log.debug("async send failed: %s", error)

        fut.add_done_callback(done)


def _int_prop(msg: Message, name: str) -> int | None:
    value = msg.properties.get(name)
    return int(value) if value and value.lstrip("-").isdigit() else None


class Producer:
    """The blocking producer: an AsyncProducer run on the process's shared client loop.

    Callbacks of send_async run on that loop's thread: keep them short and never call a
    blocking client method from them.
    """

    _async_class: type[AsyncProducer] = AsyncProducer

    def __init__(self, group: str, *, namesrv_addr: str | Sequence[str] | None = None,
                 config: ClientConfig | None = None, **options: Any) -> None:
        self._impl = self._make_impl(group, namesrv_addr, config, options)
        self._lt: LoopThread | None = None

    def _make_impl(self, group: str, namesrv_addr: str | Sequence[str] | None, config: ClientConfig | None,
                   options: dict[str, Any]) -> AsyncProducer:
        return self._async_class(group, namesrv_addr=namesrv_addr, config=config, **options)

    @property
    def group(self) -> str:
        return self._impl.group

    @property
    def options(self) -> ProducerOptions:
        return self._impl.options

    @property
    def async_producer(self) -> AsyncProducer:
        return self._impl

    def _call_timeout_s(self, timeout_ms: int | None = None) -> float:
        cfg = self._impl.config
        return ((timeout_ms or self._impl.options.send_timeout_ms) + cfg.connect_timeout_ms
                + cfg.request_timeout_ms) / 1000

    @property
    def _loop(self) -> LoopThread:
        if self._lt is None:
            raise ClientStateError(f"producer {self.group} is not started; call start() or use `with`")
        return self._lt

    def start(self) -> None:
        if self._lt is not None:
            return
        lt = acquire_shared_loop()
        try:
            lt.run(self._impl.start(), limits.CLIENT_SHUTDOWN_TIMEOUT_S)
        except BaseException:
            release_shared_loop(lt)
            raise
        self._lt = lt

    def close(self) -> None:
        lt, self._lt = self._lt, None
        if lt is None:
            return
        try:
            lt.run(self._impl.close(), limits.CLIENT_SHUTDOWN_TIMEOUT_S + self._impl.options.send_timeout_ms / 1000)
        finally:
            release_shared_loop(lt)

    shutdown = close

    def __enter__(self) -> Producer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, msg: Message, *, selector: MessageQueueSelector | None = None, arg: Any = None,
             queue: MessageQueue | None = None, timeout_ms: int | None = None) -> SendResult:
        """Send and wait for the result (see AsyncProducer.send)."""
        return self._loop.run(self._impl.send(msg, selector=selector, arg=arg, queue=queue, timeout_ms=timeout_ms),
                              self._call_timeout_s(timeout_ms) * (1 + self._impl.options.retry_times_when_send_failed))

    def send_async(self, msg: Message, callback: SendCallback | None = None, *,
                   selector: MessageQueueSelector | None = None, arg: Any = None,
                   queue: MessageQueue | None = None,
                   timeout_ms: int | None = None) -> concurrent.futures.Future[SendResult]:
        """Start a send; the callback gets (result, None) or (None, error) on the client loop's
        thread, and the returned future holds the same outcome."""
        impl = self._impl

        async def start() -> SendResult:
            return await impl.send_async(msg, callback, selector=selector, arg=arg, queue=queue,
                                         timeout_ms=timeout_ms)

        return self._loop.spawn(start())

    def send_oneway(self, msg: Message, *, selector: MessageQueueSelector | None = None, arg: Any = None,
                    queue: MessageQueue | None = None) -> None:
        """Send without an answer (see AsyncProducer.send_oneway)."""
        self._loop.run(self._impl.send_oneway(msg, selector=selector, arg=arg, queue=queue),
                       self._call_timeout_s())

    def send_batch(self, msgs: Sequence[Message], *, queue: MessageQueue | None = None,
                   timeout_ms: int | None = None) -> list[SendResult]:
        """Send messages of one topic in batches (see AsyncProducer.send_batch)."""
        bound_s = self._call_timeout_s(timeout_ms) * (1 + self._impl.options.retry_times_when_send_failed)
        return self._loop.run(self._impl.send_batch(msgs, queue=queue, timeout_ms=timeout_ms),
                              bound_s * (1 + len(msgs) // 64))
