"""SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320) — RocketMQ's SendMessageProcessor.

The worker does the costly part of a send: decode the header once, run the
checks of remoting-protocol.md §9.2.1 in order, encode the stored records (so
the writer only patches offsets and a timestamp), and put them through its put
ring to the writer as one request: the putwire header and topic, then each
record as separate parts (no concatenation copy). The writer's doorbell is rung
once per loop turn however many puts the turn made. The writer answers on this
worker's response ring; the response doorbell wakes `drain_responses`, which
answers each client:

| writer status | client code |
|---|---|
| PUT_OK | SUCCESS — at once under ASYNC_FLUSH or WAIT=false; under SYNC_FLUSH once the control block's flushed offset covers the request, else FLUSH_DISK_TIMEOUT (10) after syncFlushTimeout, with the full header (the message is stored) |
| MESSAGE_ILLEGAL | MESSAGE_ILLEGAL |
| SERVICE_NOT_AVAILABLE | SERVICE_NOT_AVAILABLE (disk full / store not writable) |
| STALE_GENERATION, STORE_ERROR | SYSTEM_ERROR (the client retries) |

A full ring is SYSTEM_BUSY `[REJECTREQUEST]system busy…`. When the writer
restarts (generation changes) every put it had not answered is failed with
SYSTEM_ERROR so the client retries; a put waiting for its flush succeeds if the
recovered, flushed log covers it.

Routing is on the header's `batch` field, never on the code ("1" is true: the
C++ client's batch, §13.2.5). Hosts: born host = the client's address (an
IPv4-mapped IPv6 peer is stored as IPv4; a real IPv6 peer is stored as 16
bytes with the BORNHOST_V6 sysFlag bit — the C++ and ali-ons clients cannot
decode that, so serve them over IPv4); store host = brokerIP1:listenPort, the
address clients reach the broker at (VIEW_MESSAGE_BY_ID and send-back rely on it).

A message with a DELAY level (not a half message) is stored in
SCHEDULE_TOPIC_XXXX queue level-1 with REAL_TOPIC / REAL_QID (`records.schedule_rewrite`);
control's delay scheduler delivers it when due. A send to `%RETRY%<group>` past the
group's reconsume limit goes to `%DLQ%<group>` (SendMessageProcessor.handleRetryAndDLQ).
A message whose property TRAN_MSG is true is stored as a transactional half
message (handlers/transaction.py); a PREPARED or ROLLBACK sysFlag without it is
MESSAGE_ILLEGAL (RocketMQ would store a record no queue ever shows).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import struct
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from rocketpy import limits
from rocketpy.broker.connection import ClientConnection
from rocketpy.broker.handlers import WorkerContext
from rocketpy.broker.handlers.forward import ControlLink, ControlUnavailable, restamp
from rocketpy.broker.internal import InternalCode
from rocketpy.broker.putwire import (
    FLAG_BATCH,
    FLAG_WAIT,
    REQUEST_HEADER_SIZE,
    RESPONSE_SIZE,
    PutStatus,
    encode_put_request_parts,
)
from rocketpy.broker.records import (
    DELAY_PREFIX,
    delay_level,
    has_true,
    host_bytes,
    host_flags,
    record_parts,
    schedule_rewrite,
    topic_part,
    wait_and_strip,
    with_cluster,
    without_property,
)
from rocketpy.config import FlushDiskType
from rocketpy.errors import ProtocolError
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.ipc.ring import RingConsumer, RingMessageTooLarge, RingProducer
from rocketpy.protocol import topics as t
from rocketpy.protocol.batch import decode_batch_body, merge_batch_properties
from rocketpy.protocol.bodies import TopicConfig, TopicFilterType
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.headers import SendMessageRequestHeader
from rocketpy.protocol.message import (
    NAME_VALUE_SEPARATOR,
    PROPERTY_DELAY_TIME_LEVEL,
    PROPERTY_TRANSACTION_PREPARED,
    TRANSACTION_COMMIT,
    TRANSACTION_NOT,
    TRANSACTION_PREPARED,
    TRANSACTION_ROLLBACK,
    TRANSACTION_TYPE_MASK,
    SysFlag,
)
from rocketpy.protocol.msgid import offset_msg_id
from rocketpy.protocol.remoting import RemotingCommand

if TYPE_CHECKING:
    from rocketpy.broker.control.groups import SubscriptionGroupConfig

log = logging.getLogger("rocketpy.broker.worker")

REMARK_SYSTEM_BUSY = "[REJECTREQUEST]system busy, start flow control for a while"
AUTO_CREATE_TIMEOUT_MS = limits.AUTO_CREATE_TIMEOUT_MS

_RESPONSE = struct.Struct("<QIIqqqq")      # putwire's put response, unpacked without an object
assert _RESPONSE.size == RESPONSE_SIZE
_TRAN_PREFIX = PROPERTY_TRANSACTION_PREPARED + NAME_VALUE_SEPARATOR
# sysFlag bits as plain ints: IntFlag arithmetic costs microseconds on the hot path.
_MULTI_TAGS = int(SysFlag.MULTI_TAGS)
# Kept importable from here: the record-encoding helpers moved to broker/records.py.
__all__ = ["FutureSink", "PendingPut", "SendHandlers", "host_bytes", "wait_and_strip", "with_cluster"]


class FutureSink:
    """Stands in for a client connection when the broker puts a message of its own (a send-back,
    a transaction commit, ...): the answer a client would get resolves a future instead."""

    closed = False
    peer = "broker-internal"

    def __init__(self, future: asyncio.Future[RemotingCommand]) -> None:
        self.future = future

    def respond(self, request: RemotingCommand, response: RemotingCommand) -> None:
        if not self.future.done():
            self.future.set_result(response)


class PendingPut:
    """One send request between the ring and its answer."""

    __slots__ = ("conn", "request", "queue_id", "sizes", "wait", "generation", "sent_at", "end_phys",
                 "first_phys", "first_queue_offset")

    def __init__(self, conn: ClientConnection | FutureSink, request: RemotingCommand, queue_id: int,
                 sizes: list[int],
                 wait: bool, generation: int, sent_at: float) -> None:
        self.conn = conn
        self.request = request
        self.queue_id = queue_id
        self.sizes = sizes
        self.wait = wait
        self.generation = generation
        self.sent_at = sent_at
        self.end_phys = 0
        self.first_phys = 0
        self.first_queue_offset = 0


class SendHandlers:
    """The send codes, the put ring to the writer and this worker's response ring."""

    def __init__(self, ctx: WorkerContext, put_ring: RingProducer, response_ring: RingConsumer,
                 writer_bell: Doorbell, *, control: ControlLink | None = None) -> None:
        self.ctx = ctx
        self.put_ring = put_ring
        self.response_ring = response_ring
        self.writer_bell = writer_bell
        self.control = control
        cfg = ctx.store_config
        self.sync_flush = cfg.flush_disk_type is FlushDiskType.SYNC_FLUSH
        self.sync_flush_timeout_s = cfg.sync_flush_timeout_ms / 1000
        self.max_message_size = cfg.max_message_size
        self.pending: dict[int, PendingPut] = {}
        self.flush_waiters: deque[PendingPut] = deque()
        # Ids continue across worker restarts, so a stale response of an earlier incarnation never
        # matches a new put.
        self._ids = itertools.count(time.time_ns())
        self._bell_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._host_cache: dict[str, tuple[bytes, bool]] = {}
        self.store_ip, self.store_v6 = host_bytes(ctx.store_host)
        self.last_generation = self._generation()
        self.delay_level_count = len(cfg.delay_levels_ms)

    # --- checks (§9.2.1) --------------------------------------------------------------------

    def handle_send_message(self, request: RemotingCommand, conn: ClientConnection) -> Any:
        header = SendMessageRequestHeader.from_command(request)
        refused = self._precheck(request, header)
        if refused is not None:
            return refused
        config = self.ctx.topics.get(header.topic)
        if config is None:
            return self._send_after_auto_create(request, conn, header)
        return self._send(request, conn, header, config)

    handle_send_message_v2 = handle_send_message
    handle_send_batch_message = handle_send_message

    def _precheck(self, request: RemotingCommand, header: SendMessageRequestHeader) -> RemotingCommand | None:
        ctx = self.ctx
        if not ctx.broker_writable:
            return request.response(ResponseCode.NO_PERMISSION,
                                    f"the broker[{ctx.store_host}] sending message is forbidden "
                                    f"(brokerPermission {ctx.broker_config.broker_permission})")
        if not ctx.is_master:
            return request.response(ResponseCode.SERVICE_NOT_AVAILABLE,
                                    "this broker is a slave and does not accept messages; send to its master")
        if header.topic not in ctx.topics:           # known topics were validated when created
            try:
                t.validate_topic(header.topic)
            except ProtocolError as exc:
                return request.response(ResponseCode.SYSTEM_ERROR, str(exc))
        if t.is_not_allowed_send_topic(header.topic):
            return request.response(ResponseCode.NO_PERMISSION,
                                    f"Sending message to topic[{header.topic}] is forbidden.")
        return None

    async def _send_after_auto_create(self, request: RemotingCommand, conn: ClientConnection,
                                      header: SendMessageRequestHeader) -> RemotingCommand | None:
        link = self.control
        if link is None or not link.ready:
            return request.response(ResponseCode.SYSTEM_ERROR,
                                    f"topic[{header.topic}] is unknown and the broker's control process is "
                                    "not reachable to create it; retry shortly")
        ask = RemotingCommand.request(InternalCode.AUTO_CREATE_TOPIC, {
            "topic": header.topic, "defaultTopic": header.default_topic,
            "defaultTopicQueueNums": str(header.default_topic_queue_nums)})
        try:
            answer = await link.request(ask, timeout_ms=AUTO_CREATE_TIMEOUT_MS)
        except ControlUnavailable as exc:
            return request.response(ResponseCode.SYSTEM_ERROR, str(exc))
        if answer.code != ResponseCode.SUCCESS:
            return restamp(answer, request)
        config = TopicConfig.from_json(answer.body)
        self.ctx.put_topic(config)
        if conn.closed:
            return None
        return self._send(request, conn, header, config)

    def _send(self, request: RemotingCommand, conn: ClientConnection, header: SendMessageRequestHeader,
              config: TopicConfig) -> RemotingCommand | None:
        topic = header.topic
        if not t.is_writeable(config.perm):
            return request.response(ResponseCode.NO_PERMISSION,
                                    f"the topic[{topic}] sending message is forbidden (perm {config.perm})")
        queue_id = header.queue_id
        queue_count = max(config.read_queue_nums, config.write_queue_nums)
        if queue_id >= queue_count:
            return request.response(
                ResponseCode.SYSTEM_ERROR,
                f"request queueId[{queue_id}] is illegal: topic {topic} has {config.read_queue_nums} read and "
                f"{config.write_queue_nums} write queues; producer {conn.peer}")
        if queue_id < 0:
            if config.write_queue_nums <= 0:
                return request.response(ResponseCode.NO_PERMISSION, f"topic[{topic}] has no writable queue")
            queue_id = random.randrange(config.write_queue_nums)
        sys_flag = header.sys_flag
        if config.topic_filter_type is TopicFilterType.MULTI_TAG:
            sys_flag |= _MULTI_TAGS
        props, wait = wait_and_strip(header.properties or "")
        transactional = _TRAN_PREFIX in props and has_true(props, _TRAN_PREFIX)
        if transactional and self.ctx.broker_config.reject_transaction_message:
            return request.response(ResponseCode.NO_PERMISSION,
                                    f"the broker[{self.ctx.store_host}] sending transaction message is forbidden")
        props = with_cluster(props, self.ctx.cluster_name)
        if header.batch:
            return self._send_batch(request, conn, header, queue_id, sys_flag, props, wait)
        if t.is_retry_topic(topic):
            return self._send_retry(request, conn, header, queue_id, sys_flag, props, wait)
        return self._send_single(request, conn, header, topic, queue_id, sys_flag, props, wait)

    def _send_single(self, request: RemotingCommand, conn: ClientConnection,
                     header: SendMessageRequestHeader, topic: str, queue_id: int, sys_flag: int, props: str,
                     wait: bool) -> RemotingCommand | None:
        body = request.body
        if len(body) > self.max_message_size:
            return request.response(
                ResponseCode.MESSAGE_ILLEGAL,
                f"message body is {len(body)} bytes; maxMessageSize is {self.max_message_size}")
        answer_queue_id = queue_id
        transactional = _TRAN_PREFIX in props and has_true(props, _TRAN_PREFIX)
        if transactional:       # a half message, until END_TRANSACTION (handlers/transaction.py)
            from rocketpy.broker.handlers.transaction import half_message  # imports this module

            topic, queue_id, props, sys_flag = half_message(topic, queue_id, props, sys_flag)
        elif sys_flag & TRANSACTION_TYPE_MASK in (TRANSACTION_PREPARED, TRANSACTION_ROLLBACK):
            return request.response(ResponseCode.MESSAGE_ILLEGAL,
                                    "the sysFlag marks a transactional half message but property TRAN_MSG is not "
                                    "true; send it with a transactional producer")
        elif DELAY_PREFIX in props:
            dest = schedule_rewrite(topic, queue_id, props, self.delay_level_count)
            topic, queue_id, props = dest.topic, dest.queue_id, dest.props
        props_b = props.encode()
        if len(props_b) > limits.PROPERTIES_SIZE_MAX:
            return request.response(
                ResponseCode.MESSAGE_ILLEGAL,
                f"stored properties are {len(props_b)} bytes; the limit is {limits.PROPERTIES_SIZE_MAX}")
        born_ip, born_v6 = self._born(conn)
        sys_flag = self._host_flags(sys_flag, born_v6)
        parts, size = self._record_parts(body, topic_part(topic), props_b, queue_id, header.flag, sys_flag,
                                         header.born_timestamp, born_ip, conn.peer_port,
                                         header.reconsume_times or 0)
        return self._put(request, conn, topic, queue_id, sys_flag, parts, [size], wait, 0,
                         answer_queue_id=answer_queue_id)

    def _send_retry(self, request: RemotingCommand, conn: ClientConnection, header: SendMessageRequestHeader,
                    queue_id: int, sys_flag: int, props: str, wait: bool) -> Any:
        """A message a client sends to %RETRY%<group> itself (the C++ client does when its send-back
        failed): past the group's reconsume limit it goes to %DLQ%<group> queue 0 with no delay
        (SendMessageProcessor.handleRetryAndDLQ)."""
        group = header.topic[len(t.RETRY_GROUP_TOPIC_PREFIX):]
        group_config = self.group_config(group)
        if group_config is None:
            return request.response(ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST,
                                    f"subscription group not exist, {group}; create it first "
                                    "(autoCreateSubscriptionGroup is off)")
        max_times = (header.max_reconsume_times if header.max_reconsume_times is not None
                     else group_config.retry_max_times)
        if (header.reconsume_times or 0) < max_times:
            return self._send_single(request, conn, header, header.topic, queue_id, sys_flag, props, wait)
        dlq = t.dlq_topic(group)
        props = without_property(props, PROPERTY_DELAY_TIME_LEVEL)
        log.info("message of group %s reconsumed %d times (max %d): stored in %s", group,
                 header.reconsume_times or 0, max_times, dlq)
        if dlq in self.ctx.topics:
            return self._send_single(request, conn, header, dlq, 0, sys_flag, props, wait)

        async def after_create() -> RemotingCommand | None:
            created = await self.ensure_topic(dlq, request)
            if isinstance(created, RemotingCommand):
                return created
            if conn.closed:
                return None
            return self._send_single(request, conn, header, dlq, 0, sys_flag, props, wait)
        return after_create()

    def group_config(self, group: str) -> SubscriptionGroupConfig | None:
        """The group's subscription config from control's table, or the defaults when the group is
        unknown and autoCreateSubscriptionGroup is on (control creates it when it makes the group's
        retry or DLQ topic); None when it is unknown and may not be created."""
        config = self.ctx.groups.get(group)
        if config is not None:
            return config
        if not self.ctx.broker_config.auto_create_subscription_group:
            return None
        from rocketpy.broker.control.groups import SubscriptionGroupConfig

        return SubscriptionGroupConfig(group_name=group)

    async def ensure_topic(self, topic: str, request: RemotingCommand) -> TopicConfig | RemotingCommand:
        """A topic's config, created through control when unknown (control's AUTO_CREATE_TOPIC applies
        the %RETRY% / %DLQ% rules); an error response when it cannot be had."""
        config = self.ctx.topics.get(topic)
        if config is not None:
            return config
        link = self.control
        if link is None or not link.ready:
            return request.response(ResponseCode.SYSTEM_ERROR,
                                    f"topic[{topic}] is unknown and the broker's control process is not "
                                    "reachable to create it; retry shortly")
        ask = RemotingCommand.request(InternalCode.AUTO_CREATE_TOPIC, {"topic": topic})
        try:
            answer = await link.request(ask, timeout_ms=AUTO_CREATE_TIMEOUT_MS)
        except ControlUnavailable as exc:
            return request.response(ResponseCode.SYSTEM_ERROR, str(exc))
        if answer.code != ResponseCode.SUCCESS:
            return restamp(answer, request)
        config = TopicConfig.from_json(answer.body)
        self.ctx.put_topic(config)
        return config

    def _send_batch(self, request: RemotingCommand, conn: ClientConnection, header: SendMessageRequestHeader,
                    queue_id: int, sys_flag: int, header_props: str, wait: bool) -> RemotingCommand | None:
        topic = header.topic
        if sys_flag & TRANSACTION_TYPE_MASK:
            return request.response(ResponseCode.MESSAGE_ILLEGAL, "a batch cannot hold transactional messages")
        if delay_level(header_props) > 0:
            return request.response(ResponseCode.MESSAGE_ILLEGAL, "a batch cannot hold delayed messages")
        try:
            items = decode_batch_body(request.body)
        except ProtocolError as exc:
            return request.response(ResponseCode.MESSAGE_ILLEGAL, f"malformed batch body: {exc}")
        topic_b = topic.encode()
        topic_part = bytes((len(topic_b),)) + topic_b
        born_ip, born_v6 = self._born(conn)
        sys_flag = self._host_flags(sys_flag, born_v6)
        reconsume = header.reconsume_times or 0
        parts: list[bytes] = []
        sizes: list[int] = []
        total = 0
        for index, item in enumerate(items):
            if len(item.body) > self.max_message_size:
                return request.response(
                    ResponseCode.MESSAGE_ILLEGAL,
                    f"batch message {index} body is {len(item.body)} bytes; maxMessageSize is "
                    f"{self.max_message_size}")
            props_b = merge_batch_properties(item.properties, header_props).encode()
            if len(props_b) > limits.PROPERTIES_SIZE_MAX:
                return request.response(
                    ResponseCode.MESSAGE_ILLEGAL,
                    f"batch message {index} properties are {len(props_b)} bytes; the limit is "
                    f"{limits.PROPERTIES_SIZE_MAX}")
            item_parts, size = self._record_parts(item.body, topic_part, props_b, queue_id, item.flag, sys_flag,
                                                  header.born_timestamp, born_ip, conn.peer_port, reconsume)
            parts += item_parts
            sizes.append(size)
            total += size
        limit = self.max_message_size + limits.MESSAGE_RECORD_OVERHEAD_MAX
        if total > limit:
            return request.response(
                ResponseCode.MESSAGE_ILLEGAL,
                f"batch of {len(items)} messages is {total} bytes stored; the limit is {limit} "
                "(maxMessageSize + 64 KiB); send smaller batches")
        return self._put(request, conn, topic, queue_id, sys_flag, parts, sizes, wait, FLAG_BATCH)

    # --- records ------------------------------------------------------------------------------------

    def _born(self, conn: ClientConnection) -> tuple[bytes, bool]:
        ip = conn.peer_ip
        cached = self._host_cache.get(ip)
        if cached is None:
            try:
                cached = host_bytes(ip)
            except ValueError:
                cached = (bytes(4), False)
            if len(self._host_cache) > 4096:
                self._host_cache.clear()
            self._host_cache[ip] = cached
        return cached

    def _host_flags(self, sys_flag: int, born_v6: bool) -> int:
        return host_flags(sys_flag, born_v6, self.store_v6)

    def _record_parts(self, body: bytes, topic_part_b: bytes, props_b: bytes, queue_id: int, flag: int,
                      sys_flag: int, born_ts: int, born_ip: bytes, born_port: int, reconsume: int,
                      prepared_tx_offset: int = 0) -> tuple[list[bytes], int]:
        return record_parts(body, topic_part_b, props_b, queue_id, flag, sys_flag, born_ts, born_ip, born_port,
                            self.store_ip, self.ctx.store_port, reconsume, prepared_tx_offset)

    # --- the ring -------------------------------------------------------------------------------------

    def _generation(self) -> int:
        return int(self.ctx.control_block.writer_fields()[3])

    def put_record(self, topic: str, queue_id: int, body: bytes, props: str, *, flag: int = 0, sys_flag: int = 0,
                   born_timestamp_ms: int, born_ip: bytes, born_port: int, reconsume_times: int = 0,
                   wait: bool = True, prepared_transaction_offset: int = 0) -> asyncio.Future[RemotingCommand]:
        """Put one message the broker itself makes (send-back, transaction commit, ...) through this
        worker's ring. The future resolves to the response a client would get for the same send:
        SUCCESS (ext msgId, queueId, queueOffset) once stored — and flushed under SYNC_FLUSH when
        `wait` — or an error code with a remark. `props` is stored as given (add CLUSTER yourself),
        except that a DELAY level parks a non-half message in SCHEDULE_TOPIC_XXXX, as for a client's
        send (`records.schedule_rewrite`); the answer's queueId is then still `queue_id`."""
        future: asyncio.Future[RemotingCommand] = asyncio.get_running_loop().create_future()
        request = RemotingCommand.request(RequestCode.SEND_MESSAGE, {})
        refused: RemotingCommand | None = None
        answer_queue_id = queue_id
        if DELAY_PREFIX in props and sys_flag & TRANSACTION_TYPE_MASK in (TRANSACTION_NOT, TRANSACTION_COMMIT):
            dest = schedule_rewrite(topic, queue_id, props, self.delay_level_count)
            topic, queue_id, props = dest.topic, dest.queue_id, dest.props
        props_b = props.encode()
        if len(body) > self.max_message_size:
            refused = request.response(ResponseCode.MESSAGE_ILLEGAL,
                                       f"message body is {len(body)} bytes; maxMessageSize is {self.max_message_size}")
        elif len(props_b) > limits.PROPERTIES_SIZE_MAX:
            refused = request.response(ResponseCode.MESSAGE_ILLEGAL,
                                       f"stored properties are {len(props_b)} bytes; the limit is "
                                       f"{limits.PROPERTIES_SIZE_MAX}")
        else:
            sys_flag = self._host_flags(sys_flag, len(born_ip) == 16)
            parts, size = self._record_parts(body, topic_part(topic), props_b, queue_id, flag,
                                             sys_flag, born_timestamp_ms, born_ip, born_port, reconsume_times,
                                             prepared_transaction_offset)
            refused = self._put(request, FutureSink(future), topic, queue_id, sys_flag, parts, [size], wait, 0,
                                answer_queue_id=answer_queue_id)
        if refused is not None:
            future.set_result(refused)
        return future

    def _put(self, request: RemotingCommand, conn: ClientConnection | FutureSink, topic: str, queue_id: int, sys_flag: int,
             parts: list[bytes], sizes: list[int], wait: bool, flags: int, *,
             answer_queue_id: int | None = None) -> RemotingCommand | None:
        """answer_queue_id: the queue the client is told (its own, when a delay parked the message
        in the schedule topic's queue instead, as RocketMQ answers)."""
        wait = wait and self.sync_flush
        if wait:
            flags |= FLAG_WAIT
        request_id = next(self._ids)
        generation = self._generation()
        records_len = sum(sizes)
        head = encode_put_request_parts(request_id, generation, flags, len(sizes), queue_id, sys_flag,
                                        topic.encode(), records_len)
        assert len(head) == REQUEST_HEADER_SIZE + len(topic.encode())
        try:
            accepted = self.put_ring.put_parts([head, *parts])
        except RingMessageTooLarge as exc:
            return request.response(ResponseCode.MESSAGE_ILLEGAL, str(exc))
        if not accepted:
            self._ring_writer_soon()
            return request.response(ResponseCode.SYSTEM_BUSY, REMARK_SYSTEM_BUSY)
        self.pending[request_id] = PendingPut(conn, request, queue_id if answer_queue_id is None else answer_queue_id,
                                              sizes, wait, generation, time.monotonic())
        self._ring_writer_soon()
        return None

    def _ring_writer_soon(self) -> None:
        if self._bell_scheduled:
            return
        self._bell_scheduled = True
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        loop.call_soon(self._ring_writer)

    def _ring_writer(self) -> None:
        self._bell_scheduled = False
        self.writer_bell.ring()

    # --- answers --------------------------------------------------------------------------------------

    def on_response_bell(self) -> None:
        """loop.add_reader callback of this worker's response doorbell."""
        self.drain_responses()

    def drain_responses(self) -> int:
        """Answer everything on the response ring and every put its flush now covers."""
        msgs = self.response_ring.peek()
        handled = len(msgs)
        if msgs:
            pending = self.pending
            unpack = _RESPONSE.unpack
            answered: list[tuple[PendingPut, int]] = []
            for msg in msgs:
                if len(msg) != RESPONSE_SIZE:
                    log.error("skipping a put response of %d bytes on the response ring", len(msg))
                    continue
                rid, status, _count, first_phys, first_q, _ts, end_phys = unpack(msg)
                put = pending.pop(rid, None)
                if put is None:
                    continue                 # failed already (writer restart)
                put.first_phys = first_phys
                put.first_queue_offset = first_q
                put.end_phys = end_phys
                answered.append((put, status))
            self.response_ring.release()
            for put, status in answered:
                self._answer(put, status)
        self.check_flushed()
        return handled

    def _answer(self, put: PendingPut, status: int) -> None:
        request = put.request
        if status == PutStatus.PUT_OK:
            if put.wait:
                self.flush_waiters.append(put)
                return
            put.conn.respond(request, self._ok(put, ResponseCode.SUCCESS))
            return
        if status == PutStatus.MESSAGE_ILLEGAL:
            response = request.response(ResponseCode.MESSAGE_ILLEGAL,
                                        "the store refused the message as illegal (size or format)")
        elif status == PutStatus.SERVICE_NOT_AVAILABLE:
            response = request.response(ResponseCode.SERVICE_NOT_AVAILABLE,
                                        "service not available now: the disk is full or the store is not "
                                        "writable; retry later or on another broker")
        elif status == PutStatus.STALE_GENERATION:
            response = request.response(ResponseCode.SYSTEM_ERROR, "the writer restarted; send again")
        else:
            response = request.response(ResponseCode.SYSTEM_ERROR,
                                        f"the store failed to write the message (status {status}); send again")
        put.conn.respond(request, response)

    def _ok(self, put: PendingPut, code: int) -> RemotingCommand:
        ctx = self.ctx
        if code == ResponseCode.SUCCESS:
            ext = put.request.ext_fields
            ctx.stats.observe_put(str(ext.get("topic") or ext.get("b") or ""), len(put.sizes), sum(put.sizes),
                                  time.monotonic() - put.sent_at)
        if len(put.sizes) == 1:
            msg_id = offset_msg_id(ctx.store_host, ctx.store_port, put.first_phys)
        else:
            ids = []
            phys = put.first_phys
            for size in put.sizes:
                ids.append(offset_msg_id(ctx.store_host, ctx.store_port, phys))
                phys += size
            msg_id = ",".join(ids)
        return put.request.response(code, None, {
            "msgId": msg_id, "queueId": str(put.queue_id), "queueOffset": str(put.first_queue_offset),
            "MSG_REGION": ctx.region_id, "TRACE_ON": "true"})

    def check_flushed(self) -> None:
        """Answer the SYNC_FLUSH puts the published flushed offset now covers."""
        waiters = self.flush_waiters
        if not waiters:
            return
        flushed = self.ctx.control_block.flushed_offset
        while waiters and waiters[0].end_phys <= flushed:
            put = waiters.popleft()
            put.conn.respond(put.request, self._ok(put, ResponseCode.SUCCESS))

    def check_timeouts(self, now: float | None = None) -> None:
        """FLUSH_DISK_TIMEOUT for puts not flushed within syncFlushTimeout; fail old-generation puts."""
        now = time.monotonic() if now is None else now
        generation = self._generation()
        if generation != self.last_generation:
            self._writer_restarted(generation)
        waiters = self.flush_waiters
        deadline = now - self.sync_flush_timeout_s
        while waiters and waiters[0].sent_at <= deadline:
            put = waiters.popleft()
            log.warning("flush of put to queue %d not done within %d ms: FLUSH_DISK_TIMEOUT to %s",
                        put.queue_id, int(self.sync_flush_timeout_s * 1000), put.conn.peer)
            put.conn.respond(put.request, self._ok(put, ResponseCode.FLUSH_DISK_TIMEOUT))

    def _writer_restarted(self, generation: int) -> None:
        log.warning("writer generation changed %d -> %d: failing %d unanswered puts so clients retry",
                    self.last_generation, generation, len(self.pending))
        self.last_generation = generation
        failed = [put for put in self.pending.values() if put.generation != generation]
        self.pending = {rid: put for rid, put in self.pending.items() if put.generation == generation}
        for put in failed:
            put.conn.respond(put.request, put.request.response(
                ResponseCode.SYSTEM_ERROR, "the writer restarted before storing the message; send again"))
        # Waiters were appended by the old writer: the recovered log keeps them when it covers them.
        self.check_flushed()
        flushed = self.ctx.control_block.flushed_offset
        waiters = self.flush_waiters
        while waiters and waiters[0].generation != generation and waiters[0].end_phys > flushed:
            put = waiters.popleft()
            put.conn.respond(put.request, put.request.response(
                ResponseCode.SYSTEM_ERROR, "the writer restarted before the message was flushed; send again"))

    @property
    def in_flight(self) -> int:
        return len(self.pending) + len(self.flush_waiters)

    def fail_all(self, remark: str) -> None:
        """Answer every unanswered put with SYSTEM_ERROR (worker stopping)."""
        for put in list(self.pending.values()) + list(self.flush_waiters):
            put.conn.respond(put.request, put.request.response(ResponseCode.SYSTEM_ERROR, remark))
        self.pending.clear()
        self.flush_waiters.clear()
