"""Control's server: the unix socket the workers connect to, and the handlers of what they forward.

One abstract-namespace unix socket (`internal.control_socket_name`); each
worker connects, sends WORKER_HELLO (ext X_WORKER = its slot) and receives the
whole topic table (TOPICS_CHANGED), group table (GROUPS_CHANGED) and consumer
subscriptions (SUBSCRIPTIONS_CHANGED) before the hello's response, so a worker whose hello returned already knows every topic.
From then on the worker forwards the client requests control owns, unchanged
plus the X_* ext fields; control answers each with an ordinary response (same
opaque, response flag, string ext values) and never answers a oneway request.
Control also sends requests of its own, oneway: TOPICS_CHANGED and
GROUPS_CHANGED to every worker after each change, PUSH_TO_CLIENT to the worker
that holds a client connection.

    handle_<request_code_lower>(request, worker) -> RemotingCommand | None

An unknown code gets REQUEST_CODE_NOT_SUPPORTED; a handler that raises gets
SYSTEM_ERROR with the reason as remark, and the connection stays; a malformed
frame closes that worker's connection with one log line (the worker
reconnects). When a worker's connection goes away, every client connection it
held is unregistered (a respawned worker reuses connection ids).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from typing import Any

from rocketpy import limits
from rocketpy.broker.control.clients import (
    CLIENT_SCAN_INTERVAL_MS_DEFAULT,
    ClientChannel,
    ConsumerManager,
    ProducerManager,
    RebalanceLockManager,
)
from rocketpy.broker.control.groups import SubscriptionGroupConfig, SubscriptionGroupManager
from rocketpy.broker.control.offsets import ConsumerOffsetManager
from rocketpy.broker.control.registration import Registrar
from rocketpy.broker.control.rewind import reset_offset
from rocketpy.broker.control.topics import TopicConfigManager, TopicRefused
from rocketpy.broker.control.transaction import HALF_TOPIC, StoreQueueSource, TransactionService
from rocketpy.broker.filter.subscriptions import (
    SelectorCache,
    encode_subscriptions,
    subscription_problem,
)
from rocketpy.broker.internal import (
    X_CLIENT_ADDR,
    X_CONN,
    X_LANGUAGE,
    X_VERSION,
    X_WORKER,
    InternalCode,
    connection_key,
)
from rocketpy.broker.metrics import BrokerMetrics
from rocketpy.broker.reading import FollowingReader
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.config import BrokerConfig, BrokerRole, StoreConfig
from rocketpy.errors import ProtocolError, RocketpyError
from rocketpy.ipc.control_block import ControlBlock
from rocketpy.ipc.queue_table import QueueTable
from rocketpy.protocol import headers
from rocketpy.protocol import topics as t
from rocketpy.protocol.bodies import (
    ConsumerIdList,
    HeartbeatData,
    KVTable,
    LockBatchRequestBody,
    LockBatchResponseBody,
    SubscriptionData,
    TopicConfig,
    TopicFilterType,
    UnlockBatchRequestBody,
    as_int,
    as_list,
    as_obj,
    as_str,
    dumps,
    parse_json_lenient,
)
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.remoting import FrameDecoder, RemotingCommand, encode_frame

log = logging.getLogger("rocketpy.broker.control")

CONFIG_DIR = "config"
BROKER_VERSION_DESC = "V4_9_8"
SOCKET_BACKLOG = 64
TOPIC_NOT_EXIST_FAQ = "See http://rocketmq.apache.org/docs/faq/ for further details."
COMMIT_OFFSETS_BATCH_MAX = limits.CONTROL_COMMIT_OFFSETS_ENTRIES_MAX
# A worker that leaves this much of control's output unread is stuck: drop its connection
# (it reconnects and gets fresh tables) rather than let control's memory grow without bound.
WORKER_WRITE_BUFFER_MAX = limits.CONTROL_WORKER_WRITE_BUFFER_MAX

Handler = Callable[[RemotingCommand, "WorkerConnection"], RemotingCommand | None]


def _mono_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class WorkerConnection(asyncio.Protocol):
    """One worker's connection to control."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.slot: int | None = None
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder()
        self.name = "worker ?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            requests = self.decoder.feed(data)
        except ProtocolError as exc:
            log.warning("closing connection of %s: malformed frame: %s", self.name, exc)
            self.close()
            return
        out: list[bytes] = []
        for request in requests:
            response = self.server.dispatch(request, self)
            if response is not None:
                out.append(self.server.encode_response(request, response))
        if out:
            self.write(b"".join(out))
        if self.decoder.failed is not None:
            log.warning("closing connection of %s: malformed frame: %s", self.name, self.decoder.failed)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server.on_connection_lost(self, exc)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > WORKER_WRITE_BUFFER_MAX:
            log.error("closing connection of %s: it left more than %d bytes unread", self.name,
                      WORKER_WRITE_BUFFER_MAX)
            transport.close()
            return
        transport.write(data)

    def send(self, cmd: RemotingCommand) -> None:
        self.write(encode_frame(cmd))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ControlServer:
    """All of control's state and its request handlers; `start` binds the socket and the timers."""

    def __init__(self, broker: BrokerConfig, store: StoreConfig, *, boot_id: str = "0",
                 control_block: ControlBlock | None = None, queue_table: QueueTable | None = None,
                 clock: Clock = SYSTEM_CLOCK, client_scan_interval_ms: int | None = None,
                 registrar: Registrar | None = None, store_reader: FollowingReader | None = None) -> None:
        self.broker = broker
        self.store = store
        self.boot_id = boot_id
        self.control_block = control_block
        self.queue_table = queue_table
        # Read-only maps of CommitLog and ConsumeQueue, for the services that read the store
        # (delay scheduler, transaction check, offsets by timestamp); None in unit tests without a store.
        self.store_reader = store_reader
        self.clock = clock
        self.config_dir = os.path.join(store.store_path_root_dir, CONFIG_DIR)
        self.boot_timestamp_ms = clock.now_ms()
        self.topics = TopicConfigManager(self.config_dir, broker, store, clock=clock,
                                         on_change=self._topics_changed)
        self.groups = SubscriptionGroupManager(self.config_dir, auto_create=broker.auto_create_subscription_group,
                                               clock=clock, on_change=self._groups_changed)
        self.offsets = ConsumerOffsetManager(self.config_dir, queue_table)
        self.consumers = ConsumerManager(self.push_to_client, notify_enabled=self._notify_enabled, clock=clock,
                                         expiry_ms=broker.client_expiry_ms,
                                         on_subscriptions_changed=self._subscriptions_changed)
        self.producers = ProducerManager(clock=clock, expiry_ms=broker.client_expiry_ms)
        self.locks = RebalanceLockManager(clock=clock)
        tx_source = (StoreQueueSource(store_reader, queue_table, control_block)
                     if store_reader is not None and queue_table is not None and control_block is not None else None)
        self.transactions = TransactionService(self.config_dir, broker, store, source=tx_source,
                                               producers=self.producers, push=self.push_to_client, clock=clock,
                                               on_progress=self._transaction_progress)
        self.selectors = SelectorCache()       # SQL92 subscriptions checked at heartbeat time
        self.registrar = registrar if registrar is not None else Registrar(broker, self.topics.wrapper)
        self.metrics = BrokerMetrics(self)
        self.client_scan_interval_ms = client_scan_interval_ms or min(
            CLIENT_SCAN_INTERVAL_MS_DEFAULT, max(100, broker.client_expiry_ms // 4))
        self.connections: set[WorkerConnection] = set()
        self.workers: dict[int, WorkerConnection] = {}
        self.socket_name = ""
        self._opaques = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loaded = False
        self._handlers: dict[int, Handler] = {}
        for code in (*RequestCode, *InternalCode):
            handler = getattr(self, f"handle_{code.name.lower()}", None)
            if handler is not None:
                self._handlers[int(code)] = handler

    # --- lifecycle ------------------------------------------------------------------

    def load(self) -> None:
        """Read the metadata files (topics, groups, offsets); ConfigError-free, OSError on a bad disk."""
        os.makedirs(self.config_dir, exist_ok=True)
        self._loaded = False       # no broadcasts while loading
        self.topics.load()
        self.groups.load()
        self.offsets.load()
        self.transactions.load()
        self._loaded = True

    async def start(self, socket_name: str) -> None:
        """Bind the unix socket (abstract when it starts with NUL), serve, start the timers."""
        if not self._loaded:
            self.load()
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(socket_name)
            sock.listen(SOCKET_BACKLOG)
            sock.setblocking(False)
            self._server = await loop.create_unix_server(lambda: WorkerConnection(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self.socket_name = socket_name
        self.registrar.start()
        await self.metrics.start()
        self._tasks.append(loop.create_task(self._every(max(100, self.broker.flush_consumer_offset_interval_ms),
                                                        self.persist_offsets), name="control-offsets"))
        self._tasks.append(loop.create_task(self._every(self.client_scan_interval_ms, self.scan_clients),
                                            name="control-client-scan"))
        self._tasks.append(loop.create_task(self._every(
            max(limits.TRANSACTION_CHECK_INTERVAL_MS_MIN, self.broker.transaction_check_interval_ms),
            self.check_transactions), name="control-transaction-check"))
        log.info("control serving workers on %r; %d topics, %d groups, namesrv %s",
                 socket_name, len(self.topics.table), len(self.groups.table),
                 ",".join(self.broker.namesrv_addrs) or "(none)")

    async def stop(self, *, unregister: bool = True) -> None:
        """Persist offsets, unregister from the NameServers, close the socket and every connection."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._tasks.clear()
        try:
            self.persist_offsets()
        except OSError as exc:
            log.error("cannot persist consumer offsets at shutdown: %s", exc)
        await self.metrics.stop()
        try:
            self.transactions.persist_if_changed()
        except OSError as exc:
            log.error("cannot persist the transaction check state at shutdown: %s", exc)
        await self.registrar.stop()
        if unregister:
            await self.registrar.unregister_all()
        await self.registrar.close()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except TimeoutError:
                pass
        log.info("control stopped")

    async def _every(self, interval_ms: int, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                fn()
            except Exception:  # noqa: BLE001 - a failing timer must not stop for good
                log.exception("control timer %s failed", getattr(fn, "__name__", fn))

    def persist_offsets(self) -> None:
        self.offsets.persist()

    def check_transactions(self) -> None:
        """One transaction check-back pass (transactionCheckInterval)."""
        self.transactions.check_pass()

    def _transaction_progress(self, half_progress: int) -> None:
        # RocketMQ keeps this progress as the consumer offset of CID_RMQ_SYS_TRANS; operators look there.
        self.offsets.commit(t.CID_RMQ_SYS_TRANS, HALF_TOPIC, 0, half_progress)

    def scan_clients(self) -> None:
        self.consumers.scan_expired()
        self.producers.scan_expired()

    # --- connections and pushes ---------------------------------------------------------

    def on_connection_lost(self, conn: WorkerConnection, exc: Exception | None) -> None:
        self.connections.discard(conn)
        if conn.slot is not None and self.workers.get(conn.slot) is conn:
            del self.workers[conn.slot]
            dropped = self.consumers.worker_gone(conn.slot)
            self.producers.worker_gone(conn.slot)
            self.transactions.worker_gone(conn.slot)
            log.info("worker slot %d disconnected from control%s; %d consumer connections dropped",
                     conn.slot, f" ({exc})" if exc else "", dropped)

    def _oneway(self, code: int, ext: dict[str, str] | None = None, body: bytes = b"") -> RemotingCommand:
        return RemotingCommand.request(code, ext, body, opaque=next(self._opaques) & 0x7FFFFFFF, oneway=True)

    def push_to_client(self, worker_slot: int, conn_id: int, frame: bytes) -> None:
        conn = self.workers.get(worker_slot)
        if conn is None:
            log.debug("push to client conn %s dropped: worker slot %d not connected",
                     connection_key(worker_slot, conn_id), worker_slot)
            return
        conn.send(self._oneway(InternalCode.PUSH_TO_CLIENT, {X_CONN: str(conn_id)}, frame))

    def topics_changed_command(self) -> RemotingCommand:
        return self._oneway(InternalCode.TOPICS_CHANGED, body=self.topics.wrapper().to_json())

    def groups_changed_command(self) -> RemotingCommand:
        return self._oneway(InternalCode.GROUPS_CHANGED, body=self.groups.wrapper().to_json())

    def subscriptions_changed_command(self) -> RemotingCommand:
        body = encode_subscriptions((group, info.message_model, info.subscriptions.values())
                                    for group, info in self.consumers.groups.items())
        return self._oneway(InternalCode.SUBSCRIPTIONS_CHANGED, body=body)

    def _subscriptions_changed(self) -> None:
        # Sent at once, not deferred: a heartbeat's response then follows the new table on the
        # worker's socket, so the client's first pull after it finds its subscription.
        self._broadcast(self.subscriptions_changed_command)

    def _broadcast(self, make: Callable[[], RemotingCommand]) -> None:
        if not self.workers:
            return
        frame = encode_frame(make())
        for conn in list(self.workers.values()):
            conn.write(frame)

    def _topics_changed(self) -> None:
        if not self._loaded:
            return
        self._broadcast(self.topics_changed_command)
        self.registrar.request_soon()

    def _groups_changed(self) -> None:
        if self._loaded:
            self._broadcast(self.groups_changed_command)

    def _notify_enabled(self, group: str) -> bool:
        config = self.groups.get(group)
        return config is None or config.notify_consumer_ids_changed_enable

    # --- dispatch ---------------------------------------------------------------------------

    def dispatch(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand | None:
        if request.is_response:
            log.debug("ignoring a response frame from %s: code %d", conn.name, request.code)
            return None
        handler = self._handlers.get(request.code)
        if handler is None:
            log.info("request code not supported: %s code=%d", conn.name, request.code)
            response: RemotingCommand | None = request.response(
                ResponseCode.REQUEST_CODE_NOT_SUPPORTED, f" request type {request.code} not supported")
        else:
            try:
                response = handler(request, conn)
            except RocketpyError as exc:   # bad header or body: the request's fault
                log.info("request refused: %s code=%d: %s", conn.name, request.code, exc)
                response = request.response(ResponseCode.SYSTEM_ERROR, str(exc))
            except Exception as exc:  # noqa: BLE001 - a bug must not take the connection down
                log.error("request failed: %s code=%d: %s: %s", conn.name, request.code,
                          type(exc).__name__, exc, exc_info=True)
                response = request.response(ResponseCode.SYSTEM_ERROR, f"{type(exc).__name__}: {exc}")
        return None if request.is_oneway else response

    def encode_response(self, request: RemotingCommand, response: RemotingCommand) -> bytes:
        try:
            return encode_frame(response)
        except ProtocolError as exc:
            log.error("response to code %d cannot be encoded: %s", request.code, exc)
            return encode_frame(request.response(ResponseCode.SYSTEM_ERROR, f"response cannot be encoded: {exc}"))

    # --- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _ext_int(request: RemotingCommand, key: str) -> int:
        value = request.ext_str(key)
        if value is None:
            raise ProtocolError(f"forwarded request code {request.code} lacks ext field {key}")
        return as_int(value, key)

    def _channel(self, request: RemotingCommand, conn: WorkerConnection, client_id: str) -> ClientChannel:
        slot = conn.slot if conn.slot is not None else self._ext_int(request, X_WORKER)
        version = request.ext_str(X_VERSION)
        return ClientChannel(
            worker_slot=slot, conn_id=self._ext_int(request, X_CONN), client_id=client_id,
            language=request.ext_str(X_LANGUAGE) or "JAVA",
            version=int(version) if version and version.lstrip("-").isdigit() else 0,
            client_addr=request.ext_str(X_CLIENT_ADDR) or "")

    def _conn_key(self, request: RemotingCommand, conn: WorkerConnection) -> str:
        slot = conn.slot if conn.slot is not None else self._ext_int(request, X_WORKER)
        return connection_key(slot, self._ext_int(request, X_CONN))

    # --- private codes ------------------------------------------------------------------------

    def handle_worker_hello(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        slot = self._ext_int(request, X_WORKER)
        old = self.workers.get(slot)
        if old is not None and old is not conn:
            log.info("worker slot %d connected again; dropping its previous connection", slot)
            self.workers.pop(slot)
            self.consumers.worker_gone(slot)
            self.producers.worker_gone(slot)
            self.transactions.worker_gone(slot)
            old.close()
        conn.slot = slot
        conn.name = f"worker slot {slot}"
        self.workers[slot] = conn
        conn.send(self.topics_changed_command())
        conn.send(self.groups_changed_command())
        conn.send(self.subscriptions_changed_command())
        log.info("worker slot %d connected to control", slot)
        return request.response(ResponseCode.SUCCESS)

    def handle_client_connection_closed(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        key = self._conn_key(request, conn)
        self.consumers.connection_closed(key)
        self.producers.connection_closed(key)
        return request.response(ResponseCode.SUCCESS)

    def handle_auto_create_topic(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        topic = request.ext_str("topic")
        if not topic:
            raise ProtocolError("AUTO_CREATE_TOPIC lacks ext field topic")
        config: TopicConfig | None
        group = t.group_of_retry_topic(topic)
        if group is not None and t.is_retry_topic(topic):
            group_config = self.groups.find_or_create(group)
            config = None if group_config is None else self.topics.create_retry_topic(
                group, group_config.retry_queue_nums)
        elif group is not None:
            config = self.topics.create_dlq_topic(group) if self.groups.find_or_create(group) else None
        else:
            default_topic = request.ext_str("defaultTopic") or t.AUTO_CREATE_TOPIC_KEY_TOPIC
            queue_nums_text = request.ext_str("defaultTopicQueueNums")
            queue_nums = (as_int(queue_nums_text, "defaultTopicQueueNums") if queue_nums_text
                          else self.broker.default_topic_queue_nums)
            config = self.topics.create_from_template(topic, default_topic, queue_nums)
        if config is None:
            return request.response(ResponseCode.TOPIC_NOT_EXIST,
                                    f"topic[{topic}] not exist, apply first please! {TOPIC_NOT_EXIST_FAQ}")
        return request.response(ResponseCode.SUCCESS, body=config.to_json())

    def handle_commit_offsets(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        doc = as_obj(parse_json_lenient(request.body), "COMMIT_OFFSETS")
        entries = as_list(doc.get("offsets"), "COMMIT_OFFSETS.offsets")
        if len(entries) > COMMIT_OFFSETS_BATCH_MAX:
            raise ProtocolError(f"COMMIT_OFFSETS of {len(entries)} entries exceeds {COMMIT_OFFSETS_BATCH_MAX}")
        for i, entry in enumerate(entries):
            what = f"COMMIT_OFFSETS.offsets[{i}]"
            item = as_list(entry, what)
            if len(item) != 4:
                raise ProtocolError(f"{what}: expected [group, topic, queueId, offset]")
            self.offsets.commit(as_str(item[0], what), as_str(item[1], what),
                                as_int(item[2], what, -(1 << 31), (1 << 31) - 1), as_int(item[3], what))
        return request.response(ResponseCode.SUCCESS)

    def handle_transaction_claim(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        """May this END_TRANSACTION end the half message? (control/transaction.py)"""
        half_offset = self._ext_int(request, "halfOffset")
        slot = conn.slot if conn.slot is not None else self._ext_int(request, X_WORKER)
        refusal = self.transactions.claim(half_offset, self._ext_int(request, "commitLogOffset"), slot)
        if refusal is not None:
            return request.response(ResponseCode.SYSTEM_ERROR, refusal)
        return request.response(ResponseCode.SUCCESS)

    def handle_transaction_done(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        op_offset = request.ext_str("opOffset")
        self.transactions.done(self._ext_int(request, "halfOffset"),
                               None if op_offset is None else as_int(op_offset, "opOffset"))
        return request.response(ResponseCode.SUCCESS)

    # --- clients --------------------------------------------------------------------------------

    def handle_heart_beat(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        data = HeartbeatData.from_json(request.body)
        channel = self._channel(request, conn, data.client_id)
        for consumer in data.consumer_data_set:
            group_config = self.groups.find_or_create(consumer.group_name)
            if group_config is not None:
                sys_flag = t.TOPIC_SYS_FLAG_UNIT_SUB if consumer.unit_mode else 0
                self.topics.create_retry_topic(consumer.group_name, group_config.retry_queue_nums, sys_flag)
            self.consumers.register(channel, consumer)
        for producer in data.producer_data_set:
            self.producers.register(producer.group_name, channel)
        # RocketMQ registers a bad SQL92 subscription silently and then filters nothing; we register
        # it all the same (the group's other topics keep working) but say so in the answer.
        for consumer in data.consumer_data_set:
            for sub in consumer.subscription_data_set:
                problem = subscription_problem(sub, self.broker.enable_property_filter, self.selectors)
                if problem is not None:
                    parse_failed, remark = problem
                    log.warning("heartbeat of client %s: group %s: %s", data.client_id, consumer.group_name, remark)
                    code = ResponseCode.SUBSCRIPTION_PARSE_FAILED if parse_failed else ResponseCode.SYSTEM_ERROR
                    return request.response(code, f"group {consumer.group_name}: {remark}")
        return request.response(ResponseCode.SUCCESS)

    def handle_check_client_config(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        """CHECK_CLIENT_CONFIG: a Java push consumer asks at start whether its SQL92 expressions work."""
        doc = as_obj(parse_json_lenient(request.body), "CheckClientRequestBody") if request.body else {}
        raw = doc.get("subscriptionData")
        if raw is None:
            return request.response(ResponseCode.SUCCESS)
        sub = SubscriptionData.from_obj(raw, "CheckClientRequestBody.subscriptionData")
        problem = subscription_problem(sub, self.broker.enable_property_filter, self.selectors)
        if problem is None:
            return request.response(ResponseCode.SUCCESS)
        parse_failed, remark = problem
        return request.response(ResponseCode.SUBSCRIPTION_PARSE_FAILED if parse_failed else ResponseCode.SYSTEM_ERROR,
                                remark)

    def handle_unregister_client(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        header = headers.UnregisterClientRequestHeader.from_ext(request.ext_fields)
        key = self._conn_key(request, conn)
        if header.producer_group:
            self.producers.unregister(header.producer_group, key)
        if header.consumer_group:
            self._unlock_unregistering(header.consumer_group, key)
            self.consumers.unregister(header.consumer_group, key)
        return request.response(ResponseCode.SUCCESS)

    def _unlock_unregistering(self, group: str, conn_key: str) -> None:
        """Free the orderly-queue locks of a member leaving `group` (RebalanceLockManager.unlock_client),
        so the members told to rebalance can lock its queues at once. The client id is the one
        the connection registered with, and only if no other connection of the group carries it."""
        info = self.consumers.get(group)
        channel = info.channels.get(conn_key) if info is not None else None
        if info is None or channel is None:
            return
        if any(ch.client_id == channel.client_id for k, ch in info.channels.items() if k != conn_key):
            return
        self.locks.unlock_client(group, channel.client_id)

    def handle_get_consumer_list_by_group(self, request: RemotingCommand, conn: WorkerConnection
                                          ) -> RemotingCommand:
        header = headers.GetConsumerListByGroupRequestHeader.from_ext(request.ext_fields)
        ids = self.consumers.consumer_ids(header.consumer_group)
        if not ids:
            return request.response(ResponseCode.SYSTEM_ERROR,
                                    f"no consumer for this group, {header.consumer_group}")
        return request.response(ResponseCode.SUCCESS, body=ConsumerIdList(tuple(ids)).to_json())

    def handle_get_consumer_connection_list(self, request: RemotingCommand, conn: WorkerConnection
                                            ) -> RemotingCommand:
        """ConsumerConnection of a group (mqadmin consumerConnection); CONSUMER_NOT_ONLINE if none."""
        header = headers.GetConsumerConnectionListRequestHeader.from_ext(request.ext_fields)
        info = self.consumers.get(header.consumer_group)
        if info is None or not info.channels:
            return request.response(ResponseCode.CONSUMER_NOT_ONLINE,
                                    f"the consumer group[{header.consumer_group}] not online")
        body = {
            "connectionSet": [_connection_obj(ch) for ch in info.channels.values()],
            "subscriptionTable": {topic: sub.to_obj() for topic, sub in info.subscriptions.items()},
            "consumeType": info.consume_type.name, "messageModel": info.message_model.name,
            "consumeFromWhere": info.consume_from_where.name,
        }
        return request.response(ResponseCode.SUCCESS, body=dumps(body))

    def handle_get_producer_connection_list(self, request: RemotingCommand, conn: WorkerConnection
                                            ) -> RemotingCommand:
        """ProducerConnection of a group (mqadmin producerConnection)."""
        header = headers.GetProducerConnectionListRequestHeader.from_ext(request.ext_fields)
        channels = self.producers.channels(header.producer_group)
        if not channels:
            return request.response(ResponseCode.SYSTEM_ERROR,
                                    f"the producer group[{header.producer_group}] not exist")
        return request.response(ResponseCode.SUCCESS,
                                body=dumps({"connectionSet": [_connection_obj(ch) for ch in channels]}))

    def handle_lock_batch_mq(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        body = LockBatchRequestBody.from_json(request.body)
        held = self.locks.try_lock_batch(body.consumer_group, body.mq_set, body.client_id)
        return request.response(ResponseCode.SUCCESS, body=LockBatchResponseBody(tuple(held)).to_json())

    def handle_unlock_batch_mq(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        body = UnlockBatchRequestBody.from_json(request.body)
        self.locks.unlock_batch(body.consumer_group, body.mq_set, body.client_id)
        return request.response(ResponseCode.SUCCESS)

    # --- offsets ------------------------------------------------------------------------------------

    def handle_query_consumer_offset(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        header = headers.QueryConsumerOffsetRequestHeader.from_ext(request.ext_fields)
        result = self.offsets.query_for_client(header.consumer_group, header.topic, header.queue_id)
        if result.offset is None:
            return request.response(ResponseCode.QUERY_NOT_FOUND, result.remark)
        return request.response(ResponseCode.SUCCESS, ext_fields=headers.QueryConsumerOffsetResponseHeader(
            offset=result.offset).to_ext())

    def handle_update_consumer_offset(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        header = headers.UpdateConsumerOffsetRequestHeader.from_ext(request.ext_fields)
        self.offsets.commit(header.consumer_group, header.topic, header.queue_id, header.commit_offset)
        return request.response(ResponseCode.SUCCESS)

    def handle_invoke_broker_to_reset_offset(self, request: RemotingCommand, conn: WorkerConnection
                                             ) -> RemotingCommand:
        """Rewind a group to a timestamp (control/rewind.py)."""
        return reset_offset(self, request)

    def handle_get_all_consumer_offset(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        return request.response(ResponseCode.SUCCESS, body=self.offsets.wrapper().to_json())

    # --- topics and groups (admin) -------------------------------------------------------------------

    def handle_update_and_create_topic(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        header = headers.CreateTopicRequestHeader.from_ext(request.ext_fields)
        if self.broker.broker_role is BrokerRole.SLAVE:
            return request.response(ResponseCode.SYSTEM_ERROR,
                                    "this broker is a slave; create topics on its master")
        try:
            filter_type = TopicFilterType[header.topic_filter_type.strip().upper()]
        except KeyError:
            return request.response(ResponseCode.SYSTEM_ERROR,
                                    f"topicFilterType {header.topic_filter_type!r} is not SINGLE_TAG or MULTI_TAG")
        config = TopicConfig(header.topic, header.read_queue_nums, header.write_queue_nums, header.perm,
                             filter_type, header.topic_sys_flag or 0, header.order)
        try:
            self.topics.update_and_create(config)
        except TopicRefused as exc:
            return request.response(ResponseCode.SYSTEM_ERROR, str(exc))
        return request.response(ResponseCode.SUCCESS)

    def handle_delete_topic_in_broker(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        header = headers.DeleteTopicRequestHeader.from_ext(request.ext_fields)
        try:
            self.topics.delete(header.topic)
        except TopicRefused as exc:
            return request.response(ResponseCode.SYSTEM_ERROR, str(exc))
        return request.response(ResponseCode.SUCCESS)

    def handle_get_all_topic_config(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        return request.response(ResponseCode.SUCCESS, body=self.topics.wrapper().to_json())

    def handle_get_all_subscriptiongroup_config(self, request: RemotingCommand, conn: WorkerConnection
                                                ) -> RemotingCommand:
        return request.response(ResponseCode.SUCCESS, body=self.groups.wrapper().to_json())

    def handle_update_and_create_subscriptiongroup(self, request: RemotingCommand, conn: WorkerConnection
                                                   ) -> RemotingCommand:
        config = SubscriptionGroupConfig.from_json(request.body)
        self.groups.update(config)
        return request.response(ResponseCode.SUCCESS)

    # --- runtime info ---------------------------------------------------------------------------------

    def runtime_info(self) -> dict[str, str]:
        committed = flushed = dispatched = min_phys = boot_ms = 0
        cb = self.control_block
        if cb is not None:
            committed, flushed, _, _, min_phys, _ = cb.writer_fields()
            dispatched = cb.dispatched_offset
            boot_ms = cb.supervisor_fields()[3]
        boot_ms = boot_ms or self.boot_timestamp_ms
        uptime_s = max(0, (self.clock.now_ms() - boot_ms) // 1000)
        days, rest = divmod(uptime_s, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        info: dict[str, str] = {
            "brokerVersionDesc": BROKER_VERSION_DESC,
            "brokerVersion": str(limits.REMOTING_VERSION),
            "bootTimestamp": str(boot_ms),
            "runtime": f"[ {days} days, {hours} hours, {minutes} minutes, {seconds} seconds ]",
            "commitLogMaxOffset": str(committed),
            "commitLogMinOffset": str(min_phys),
            "dispatchBehindBytes": str(max(0, committed - dispatched)),
            "remainHowManyDataToFlush": str(max(0, committed - flushed)),
            "putTps": "0.0 0.0 0.0",
            "getFoundTps": "0.0 0.0 0.0",
            "getMissTps": "0.0 0.0 0.0",
            "getTotalTps": "0.0 0.0 0.0",
            "getTransferedTps": "0.0 0.0 0.0",
            "msgPutTotalTodayNow": "0",
            "msgGetTotalTodayNow": "0",
            "msgPutTotalTodayMorning": "0",
            "msgGetTotalTodayMorning": "0",
            "msgPutTotalYesterdayMorning": "0",
            "msgGetTotalYesterdayMorning": "0",
            "sendThreadPoolQueueSize": "0",
            "pullThreadPoolQueueSize": "0",
            "pageCacheLockTimeMills": "0",
            "earliestMessageTimeStamp": "0",
            "brokerRole": self.broker.broker_role.value,
        }
        info.update(self.metrics.runtime_fields())
        try:
            usage = shutil.disk_usage(self.store.store_path_root_dir)
        except OSError:
            pass
        else:
            gib = 1 << 30
            info["commitLogDiskRatio"] = f"{usage.used / usage.total:.4f}" if usage.total else "0.0"
            info["commitLogDirCapacity"] = (f"Total : {usage.total / gib:.2f} GiB, "
                                            f"Free : {usage.free / gib:.2f} GiB.")
        return info

    def handle_get_broker_runtime_info(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        return request.response(ResponseCode.SUCCESS, body=KVTable(self.runtime_info()).to_json())

    # --- admin statistics (mqadmin topicStatus / consumerProgress) --------------------------------

    def handle_get_topic_stats_info(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        from rocketpy.broker.control.consume_stats import topic_stats

        header = headers.GetTopicStatsInfoRequestHeader.from_ext(request.ext_fields)
        stats = topic_stats(self, header.topic)
        if stats is None:
            return request.response(ResponseCode.TOPIC_NOT_EXIST, f"topic[{header.topic}] not exist")
        return request.response(ResponseCode.SUCCESS, body=stats.to_json())

    def handle_stats(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        self.metrics.add(request.body)
        return request.response(ResponseCode.SUCCESS)

    def handle_get_consume_stats(self, request: RemotingCommand, conn: WorkerConnection) -> RemotingCommand:
        from rocketpy.broker.control.consume_stats import consume_stats

        header = headers.GetConsumeStatsRequestHeader.from_ext(request.ext_fields)
        stats = consume_stats(self, header.consumer_group, header.topic or None, self.metrics.group_get_tps)
        return request.response(ResponseCode.SUCCESS, body=stats.to_json())


def _connection_obj(ch: ClientChannel) -> dict[str, Any]:
    """RocketMQ's Connection: what admin tools show for one client connection."""
    return {"clientId": ch.client_id, "clientAddr": ch.client_addr, "language": ch.language,
            "version": ch.version}


def encode_commit_offsets(entries: list[tuple[str, str, int, int]]) -> bytes:
    """The COMMIT_OFFSETS body a worker sends (here for tests and the worker's convenience)."""
    return dumps({"offsets": [list(e) for e in entries]})
