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

A message whose property TRAN_MSG is true is stored as a transactional half
message (handlers/transaction.py); a PREPARED or ROLLBACK sysFlag without it is
MESSAGE_ILLEGAL (RocketMQ would store a record no queue ever shows).

TODO(issue 5): `%RETRY%` reconsume limits and the DLQ, DELAY (SCHEDULE_TOPIC_XXXX)
are not implemented yet. Until then a DELAY message is stored as a normal
message of its own topic, visible at once, and each such store is logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import random
import struct
import time
import zlib
from collections import deque
from typing import Any

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
    MESSAGE_MAGIC,
    NAME_VALUE_SEPARATOR,
    PROPERTY_CLUSTER,
    PROPERTY_DELAY_TIME_LEVEL,
    PROPERTY_SEPARATOR,
    PROPERTY_TRANSACTION_PREPARED,
    PROPERTY_WAIT_STORE_MSG_OK,
    TRANSACTION_PREPARED,
    TRANSACTION_ROLLBACK,
    TRANSACTION_TYPE_MASK,
    SysFlag,
    format_properties,
    parse_properties,
)
from rocketpy.protocol.msgid import offset_msg_id
from rocketpy.protocol.remoting import RemotingCommand

log = logging.getLogger("rocketpy.broker.worker")

REMARK_SYSTEM_BUSY = "[REJECTREQUEST]system busy, start flow control for a while"
AUTO_CREATE_TIMEOUT_MS = limits.AUTO_CREATE_TIMEOUT_MS

_RESPONSE = struct.Struct("<QIIqqqq")      # putwire's put response, unpacked without an object
assert _RESPONSE.size == RESPONSE_SIZE
_PROPS_LEN = struct.Struct(">h")
_WAIT_PREFIX = PROPERTY_WAIT_STORE_MSG_OK + NAME_VALUE_SEPARATOR
_CLUSTER_PREFIX = PROPERTY_CLUSTER + NAME_VALUE_SEPARATOR
_DELAY_PREFIX = PROPERTY_DELAY_TIME_LEVEL + NAME_VALUE_SEPARATOR
_TRAN_PREFIX = PROPERTY_TRANSACTION_PREPARED + NAME_VALUE_SEPARATOR
# sysFlag bits as plain ints: IntFlag arithmetic costs microseconds on the hot path.
_MULTI_TAGS = int(SysFlag.MULTI_TAGS)
_BORNHOST_V6 = int(SysFlag.BORNHOST_V6)
_STOREHOST_V6 = int(SysFlag.STOREHOST_V6)
_HOST_V6_BITS = _BORNHOST_V6 | _STOREHOST_V6


def _record_head(born_len: int, store_len: int) -> struct.Struct:
    """Everything of a stored record before its body (protocol.message layout)::

        TOTALSIZE MAGIC BODYCRC QUEUEID FLAG QUEUEOFFSET PHYSOFFSET SYSFLAG BORNTS
        BORNHOST(4|16) BORNPORT STORETS STOREHOST(4|16) STOREPORT RECONSUME PREPARED_TX BODYLEN
    """
    return struct.Struct(f">iIiiiqqiq{born_len}siq{store_len}siiqi")


_HEADS = {(b, s): _record_head(b, s) for b in (4, 16) for s in (4, 16)}
assert _HEADS[(4, 4)].size + 1 + 2 == 91, "record layout drifted from protocol.message"


def host_bytes(ip: str) -> tuple[bytes, bool]:
    """(address bytes, is IPv6) of a host as stored in a record; v4-mapped IPv6 is stored as IPv4."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped.packed, False
        return addr.packed, True
    return addr.packed, False


def wait_and_strip(props: str) -> tuple[str, bool]:
    """(properties without WAIT, whether the client waits): WAIT is honoured, not stored (4.9.1+).

    Java's isWaitStoreMsgOK: absent -> true, else Boolean.parseBoolean.
    """
    at = props.find(_WAIT_PREFIX)
    if at < 0:
        return props, True
    if at == 0 or props[at - 1] == PROPERTY_SEPARATOR:
        end = props.find(PROPERTY_SEPARATOR, at)
        stop = len(props) if end < 0 else end
        if props.find(_WAIT_PREFIX, stop) < 0:      # the usual case: one WAIT item
            value = props[at + len(_WAIT_PREFIX):stop]
            rest = props[:at] + props[stop + 1:] if end >= 0 else props[:max(0, at - 1)]
            return rest, (value.lower() == "true") if value else True
    wait = True
    kept: list[str] = []
    for item in props.split(PROPERTY_SEPARATOR):
        if item.startswith(_WAIT_PREFIX):
            value = item[len(_WAIT_PREFIX):]
            if value:
                wait = value.lower() == "true"
        elif item:
            kept.append(item)
    return PROPERTY_SEPARATOR.join(kept), wait


def with_cluster(props: str, cluster: str) -> str:
    """Add CLUSTER=<cluster> (replacing any value the client sent)."""
    if _CLUSTER_PREFIX in props:
        parsed = parse_properties(props)
        parsed[PROPERTY_CLUSTER] = cluster
        return format_properties(parsed)
    entry = _CLUSTER_PREFIX + cluster
    if not props:
        return entry
    if props.endswith(PROPERTY_SEPARATOR):
        return props + entry
    return props + PROPERTY_SEPARATOR + entry


def _has_true(props: str, prefix: str) -> bool:
    if prefix not in props:
        return False
    value = parse_properties(props).get(prefix[:-1], "")
    return value.lower() == "true"


def _delay_level(props: str) -> int:
    if _DELAY_PREFIX not in props:
        return 0
    value = parse_properties(props).get(PROPERTY_DELAY_TIME_LEVEL, "")
    try:
        return int(value)
    except ValueError:
        return 0


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
        self._warned_deferred: set[tuple[str, str]] = set()

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
        transactional = _TRAN_PREFIX in props and _has_true(props, _TRAN_PREFIX)
        if transactional and self.ctx.broker_config.reject_transaction_message:
            return request.response(ResponseCode.NO_PERMISSION,
                                    f"the broker[{self.ctx.store_host}] sending transaction message is forbidden")
        props = with_cluster(props, self.ctx.cluster_name)
        if header.batch:
            return self._send_batch(request, conn, header, queue_id, sys_flag, props, wait)
        body = request.body
        if len(body) > self.max_message_size:
            return request.response(
                ResponseCode.MESSAGE_ILLEGAL,
                f"message body is {len(body)} bytes; maxMessageSize is {self.max_message_size}")
        if transactional:       # a half message, until END_TRANSACTION (handlers/transaction.py)
            from rocketpy.broker.handlers.transaction import half_message  # imports this module

            topic, queue_id, props, sys_flag = half_message(topic, queue_id, props, sys_flag)
        elif sys_flag & TRANSACTION_TYPE_MASK in (TRANSACTION_PREPARED, TRANSACTION_ROLLBACK):
            return request.response(ResponseCode.MESSAGE_ILLEGAL,
                                    "the sysFlag marks a transactional half message but property TRAN_MSG is not "
                                    "true; send it with a transactional producer")
        else:
            sys_flag = self._deferred_features(topic, props, sys_flag)
        props_b = props.encode()
        if len(props_b) > limits.PROPERTIES_SIZE_MAX:
            return request.response(
                ResponseCode.MESSAGE_ILLEGAL,
                f"stored properties are {len(props_b)} bytes; the limit is {limits.PROPERTIES_SIZE_MAX}")
        topic_b = topic.encode()
        topic_part = bytes((len(topic_b),)) + topic_b
        born_ip, born_v6 = self._born(conn)
        sys_flag = self._host_flags(sys_flag, born_v6)
        parts, size = self._record_parts(body, topic_part, props_b, queue_id, header.flag, sys_flag,
                                         header.born_timestamp, born_ip, conn.peer_port,
                                         header.reconsume_times or 0)
        return self._put(request, conn, topic, queue_id, sys_flag, parts, [size], wait, 0)

    def _send_batch(self, request: RemotingCommand, conn: ClientConnection, header: SendMessageRequestHeader,
                    queue_id: int, sys_flag: int, header_props: str, wait: bool) -> RemotingCommand | None:
        topic = header.topic
        if sys_flag & TRANSACTION_TYPE_MASK:
            return request.response(ResponseCode.MESSAGE_ILLEGAL, "a batch cannot hold transactional messages")
        if _delay_level(header_props) > 0:
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

    def _deferred_features(self, topic: str, props: str, sys_flag: int) -> int:
        """TODO(issue 5): delay and retry limits. Store such messages as normal ones."""
        kind = None
        if _DELAY_PREFIX in props and _delay_level(props) > 0:
            kind = "DELAY"
        if kind is not None and (kind, topic) not in self._warned_deferred:
            self._warned_deferred.add((kind, topic))
            log.warning("%s messages are not supported yet (issue 5): storing them in topic %s as normal "
                        "messages, deliverable at once", kind, topic)
        return sys_flag

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
        sys_flag &= ~_HOST_V6_BITS
        if born_v6:
            sys_flag |= _BORNHOST_V6
        if self.store_v6:
            sys_flag |= _STOREHOST_V6
        return sys_flag

    def _record_parts(self, body: bytes, topic_part: bytes, props_b: bytes, queue_id: int, flag: int,
                      sys_flag: int, born_ts: int, born_ip: bytes, born_port: int, reconsume: int,
                      prepared_tx_offset: int = 0) -> tuple[list[bytes], int]:
        """One stored record as parts: fixed head, body, topic, properties (queue offset, phys offset
        and store time are left 0 for the writer to patch)."""
        head = _HEADS[(len(born_ip), len(self.store_ip))]
        size = head.size + len(body) + len(topic_part) + 2 + len(props_b)
        head_b = head.pack(size, MESSAGE_MAGIC, zlib.crc32(body) & 0x7FFFFFFF, queue_id, flag, 0, 0, sys_flag,
                           born_ts, born_ip, born_port, 0, self.store_ip, self.ctx.store_port, reconsume,
                           prepared_tx_offset, len(body))
        return [head_b, body, topic_part, _PROPS_LEN.pack(len(props_b)) + props_b], size

    # --- the ring -------------------------------------------------------------------------------------

    def _generation(self) -> int:
        return int(self.ctx.control_block.writer_fields()[3])

    def put_record(self, topic: str, queue_id: int, body: bytes, props: str, *, flag: int = 0, sys_flag: int = 0,
                   born_timestamp_ms: int, born_ip: bytes, born_port: int, reconsume_times: int = 0,
                   wait: bool = True, prepared_transaction_offset: int = 0) -> asyncio.Future[RemotingCommand]:
        """Put one message the broker itself makes (send-back, transaction commit, ...) through this
        worker's ring. The future resolves to the response a client would get for the same send:
        SUCCESS (ext msgId, queueId, queueOffset) once stored — and flushed under SYNC_FLUSH when
        `wait` — or an error code with a remark. `props` is stored as given (add CLUSTER yourself)."""
        future: asyncio.Future[RemotingCommand] = asyncio.get_running_loop().create_future()
        request = RemotingCommand.request(RequestCode.SEND_MESSAGE, {})
        refused: RemotingCommand | None = None
        props_b = props.encode()
        if len(body) > self.max_message_size:
            refused = request.response(ResponseCode.MESSAGE_ILLEGAL,
                                       f"message body is {len(body)} bytes; maxMessageSize is {self.max_message_size}")
        elif len(props_b) > limits.PROPERTIES_SIZE_MAX:
            refused = request.response(ResponseCode.MESSAGE_ILLEGAL,
                                       f"stored properties are {len(props_b)} bytes; the limit is "
                                       f"{limits.PROPERTIES_SIZE_MAX}")
        else:
            topic_b = topic.encode()
            sys_flag = self._host_flags(sys_flag, len(born_ip) == 16)
            parts, size = self._record_parts(body, bytes((len(topic_b),)) + topic_b, props_b, queue_id, flag,
                                             sys_flag, born_timestamp_ms, born_ip, born_port, reconsume_times,
                                             prepared_transaction_offset)
            refused = self._put(request, FutureSink(future), topic, queue_id, sys_flag, parts, [size], wait, 0)
        if refused is not None:
            future.set_result(refused)
        return future

    def _put(self, request: RemotingCommand, conn: ClientConnection | FutureSink, topic: str, queue_id: int, sys_flag: int,
             parts: list[bytes], sizes: list[int], wait: bool, flags: int) -> RemotingCommand | None:
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
        self.pending[request_id] = PendingPut(conn, request, queue_id, sizes, wait, generation, time.monotonic())
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
