"""Requests control owns, forwarded over its unix socket; and what control sends the worker.

The worker keeps one connection to control (abstract unix socket
`internal.control_socket_name`). On connect it sends WORKER_HELLO; control
answers with the whole topic and group tables first (TOPICS_CHANGED,
GROUPS_CHANGED), then the hello's response. A client request control owns is
sent on unchanged (code, ext fields, body) plus the X_* fields naming the
client connection; control's response is re-stamped with the client's opaque
and serialization and written to the client. A oneway request goes oneway and
is never answered. When control cannot be reached the client gets SYSTEM_ERROR
at once and the link reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Callable
from typing import Any

from rocketpy import limits
from rocketpy.broker.connection import ClientConnection
from rocketpy.broker.filter.subscriptions import decode_subscriptions
from rocketpy.broker.handlers import WorkerContext
from rocketpy.broker.internal import (
    X_CLIENT_ADDR,
    X_CONN,
    X_LANGUAGE,
    X_VERSION,
    X_WORKER,
    InternalCode,
)
from rocketpy.errors import ProtocolError, RocketpyError
from rocketpy.protocol.bodies import TopicConfigSerializeWrapper, as_map, as_obj, parse_json_lenient
from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.remoting import (
    FLAG_ONEWAY,
    FLAG_RESPONSE,
    FrameDecoder,
    RemotingCommand,
    encode_frame,
)

log = logging.getLogger("rocketpy.broker.worker")

CONTROL_REQUEST_TIMEOUT_MS = limits.CONTROL_REQUEST_TIMEOUT_MS
CONTROL_RECONNECT_MIN_MS = limits.CONTROL_RECONNECT_MIN_MS
CONTROL_RECONNECT_MAX_MS = limits.CONTROL_RECONNECT_MAX_MS
CONTROL_PENDING_MAX = limits.CONTROL_PENDING_MAX

REMARK_CONTROL_DOWN = "the broker's control process is not reachable; retry shortly"


class ControlUnavailable(RocketpyError):
    """Control is not connected, or did not answer in time."""

    retriable = True


class ControlLink(asyncio.Protocol):
    """The worker's connection to control: requests matched by opaque, reconnect with backoff."""

    def __init__(self, socket_name: str, slot: int, on_request: Callable[[RemotingCommand], None],
                 *, request_timeout_ms: int = CONTROL_REQUEST_TIMEOUT_MS) -> None:
        self.socket_name = socket_name
        self.slot = slot
        self.on_request = on_request
        self.request_timeout_ms = request_timeout_ms
        self.transport: asyncio.Transport | None = None
        self.ready = False                    # hello answered: the topic table is loaded
        self.ever_ready: asyncio.Event | None = None
        self._decoder = FrameDecoder()
        self._pending: dict[int, asyncio.Future[RemotingCommand]] = {}
        self._opaques = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None
        self._closing = False

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.ever_ready = asyncio.Event()
        self._lost = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._keep_connected(), name="control-link")

    async def close(self) -> None:
        self._closing = True
        # Wake the task too: a cancel that lands in the turn that completes a request's future is
        # swallowed by asyncio.wait_for on Python 3.11, and the task would then wait on _lost forever.
        if self._lost is not None:
            self._lost.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self.transport is not None:
            self.transport.close()
        self._fail_pending("the worker is stopping")

    async def _keep_connected(self) -> None:
        assert self._lost is not None and self.ever_ready is not None
        backoff_ms = CONTROL_RECONNECT_MIN_MS
        while not self._closing:
            try:
                await self._connect()
                backoff_ms = CONTROL_RECONNECT_MIN_MS
                if self._closing:          # close() ran while we connected (see close)
                    return
                await self._lost.wait()
            except (OSError, ControlUnavailable) as exc:
                log.info("worker slot %d: control not reachable (%s); retrying in %d ms", self.slot, exc,
                         backoff_ms)
                if self.transport is not None:
                    self.transport.close()
            if self._closing:
                return
            await asyncio.sleep(backoff_ms / 1000)
            backoff_ms = min(backoff_ms * 2, CONTROL_RECONNECT_MAX_MS)

    async def _connect(self) -> None:
        assert self._lost is not None and self.ever_ready is not None
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, self.socket_name)
            self._lost.clear()
            await loop.create_unix_connection(lambda: self, sock=sock)
        except BaseException:
            sock.close()
            raise
        hello = RemotingCommand.request(InternalCode.WORKER_HELLO, {X_WORKER: str(self.slot)})
        response = await self.request(hello, require_ready=False)
        if response.code != ResponseCode.SUCCESS:
            raise ControlUnavailable(f"control refused WORKER_HELLO: {response.code} {response.remark}")
        self.ready = True
        self.ever_ready.set()
        log.info("worker slot %d connected to control", self.slot)

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._decoder = FrameDecoder()

    def data_received(self, data: bytes) -> None:
        try:
            commands = self._decoder.feed(data)
        except ProtocolError as exc:
            log.error("closing the link to control: malformed frame: %s", exc)
            if self.transport is not None:
                self.transport.close()
            return
        for cmd in commands:
            if cmd.flag & FLAG_RESPONSE:
                fut = self._pending.pop(cmd.opaque, None)
                if fut is not None and not fut.done():
                    fut.set_result(cmd)
            else:
                try:
                    self.on_request(cmd)
                except Exception:  # noqa: BLE001 - a bad push must not break the link
                    log.exception("request %d from control failed", cmd.code)
        if self._decoder.failed is not None and self.transport is not None:
            log.error("closing the link to control: malformed frame: %s", self._decoder.failed)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        was_ready = self.ready
        self.ready = False
        self._fail_pending("the connection to control closed")
        if was_ready and not self._closing:
            log.warning("worker slot %d lost its connection to control%s; reconnecting", self.slot,
                        f": {exc}" if exc else "")
        if self._lost is not None:
            self._lost.set()

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ControlUnavailable(reason))

    # --- requests ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    async def request(self, cmd: RemotingCommand, *, require_ready: bool = True,
                      timeout_ms: int | None = None) -> RemotingCommand:
        """Send cmd (its opaque is replaced) and wait for control's response."""
        if not self.connected or (require_ready and not self.ready):
            raise ControlUnavailable(REMARK_CONTROL_DOWN)
        if len(self._pending) >= CONTROL_PENDING_MAX:
            raise ControlUnavailable(f"{CONTROL_PENDING_MAX} requests to control are in flight")
        assert self.transport is not None
        opaque = next(self._opaques) & 0x7FFFFFFF
        cmd.opaque = opaque
        fut: asyncio.Future[RemotingCommand] = asyncio.get_running_loop().create_future()
        self._pending[opaque] = fut
        self.transport.write(encode_frame(cmd))
        wait_ms = self.request_timeout_ms if timeout_ms is None else timeout_ms
        try:
            return await asyncio.wait_for(fut, wait_ms / 1000)
        except TimeoutError:
            raise ControlUnavailable(f"control did not answer request code {cmd.code} within {wait_ms} ms"
                                     ) from None
        finally:
            self._pending.pop(opaque, None)

    def send_oneway(self, cmd: RemotingCommand) -> bool:
        """Send without waiting; False when control is not connected."""
        if not self.connected:
            return False
        assert self.transport is not None
        cmd.opaque = next(self._opaques) & 0x7FFFFFFF
        cmd.flag |= FLAG_ONEWAY
        self.transport.write(encode_frame(cmd))
        return True


def forwarded_command(request: RemotingCommand, conn: ClientConnection, slot: int) -> RemotingCommand:
    """The request as control receives it: same code, ext and body, plus the X_* fields."""
    ext: dict[str, Any] = dict(request.ext_fields)
    ext[X_WORKER] = str(slot)
    ext[X_CONN] = str(conn.conn_id)
    ext[X_CLIENT_ADDR] = conn.peer
    ext[X_LANGUAGE] = conn.language or request.language
    ext[X_VERSION] = str(conn.version or request.version)
    return RemotingCommand(code=request.code, opaque=0, flag=request.flag & FLAG_ONEWAY, ext_fields=ext,
                           body=request.body)


def restamp(response: RemotingCommand, request: RemotingCommand) -> RemotingCommand:
    """Control's response, as the response to the client's request."""
    response.opaque = request.opaque
    response.flag = FLAG_RESPONSE
    response.serialize_type = request.serialize_type
    response.language = "JAVA"
    response.serialize_type_current_rpc = None
    response.json_newline = False
    return response


class ForwardHandlers:
    """The codes control answers; and control's own requests to this worker."""

    def __init__(self, ctx: WorkerContext, link: ControlLink | None,
                 connections: dict[int, ClientConnection]) -> None:
        self.ctx = ctx
        self.link = link
        self.connections = connections
        # Called before an UPDATE_CONSUMER_OFFSET goes out, so an older batched pull commit of the
        # same queue cannot land after it.
        self.before_offset_update: Callable[[str, str, int], None] | None = None

    # --- client -> control ---------------------------------------------------------------

    def forward(self, request: RemotingCommand, conn: ClientConnection) -> Any:
        link = self.link
        if link is None or not link.ready:
            if request.is_oneway:
                log.info("dropping oneway code %d from %s: control not reachable", request.code, conn.peer)
                return None
            return request.response(ResponseCode.SYSTEM_ERROR, REMARK_CONTROL_DOWN)
        cmd = forwarded_command(request, conn, self.ctx.slot)
        if request.is_oneway:
            link.send_oneway(cmd)
            return None
        return self._forward(link, cmd, request)

    async def _forward(self, link: ControlLink, cmd: RemotingCommand, request: RemotingCommand
                       ) -> RemotingCommand:
        try:
            response = await link.request(cmd)
        except ControlUnavailable as exc:
            return request.response(ResponseCode.SYSTEM_ERROR, str(exc))
        return restamp(response, request)

    handle_heart_beat = forward
    handle_unregister_client = forward
    handle_get_consumer_list_by_group = forward
    handle_query_consumer_offset = forward
    handle_update_and_create_topic = forward
    handle_delete_topic_in_broker = forward
    handle_get_all_topic_config = forward
    handle_get_all_consumer_offset = forward
    handle_get_all_subscriptiongroup_config = forward
    handle_update_and_create_subscriptiongroup = forward
    handle_get_broker_runtime_info = forward
    handle_lock_batch_mq = forward
    handle_unlock_batch_mq = forward
    handle_check_client_config = forward
    handle_invoke_broker_to_reset_offset = forward

    def handle_update_consumer_offset(self, request: RemotingCommand, conn: ClientConnection) -> Any:
        if self.before_offset_update is not None:
            ext = request.ext_fields
            try:
                self.before_offset_update(str(ext.get("consumerGroup")), str(ext.get("topic")),
                                          int(ext.get("queueId", -1)))
            except (TypeError, ValueError):
                pass                      # control parses and refuses the header
        return self.forward(request, conn)

    # --- control -> worker ---------------------------------------------------------------

    def on_control_request(self, cmd: RemotingCommand) -> None:
        code = cmd.code
        if code == InternalCode.TOPICS_CHANGED:
            wrapper = TopicConfigSerializeWrapper.from_json(cmd.body)
            self.ctx.set_topics(dict(wrapper.topic_config_table))
        elif code == InternalCode.GROUPS_CHANGED:
            self.ctx.set_groups(parse_groups(cmd.body))
        elif code == InternalCode.SUBSCRIPTIONS_CHANGED:
            self.ctx.set_consumer_groups(decode_subscriptions(cmd.body))
        elif code == InternalCode.PUSH_TO_CLIENT:
            conn_id = cmd.ext_str(X_CONN)
            conn = self.connections.get(int(conn_id)) if conn_id and conn_id.isdigit() else None
            if conn is not None and not conn.closed:
                conn.write_frame(cmd.body)
            else:
                log.debug("push to closed client connection %s dropped", conn_id)
        else:
            log.info("ignoring request code %d from control", code)
        if not cmd.is_oneway and self.link is not None and self.link.transport is not None:
            self.link.transport.write(encode_frame(cmd.response(ResponseCode.SUCCESS)))


def parse_groups(body: bytes) -> dict[str, Any]:
    from rocketpy.broker.control.groups import SubscriptionGroupConfig

    doc = as_obj(parse_json_lenient(body), "GROUPS_CHANGED")
    table = as_map(doc.get("subscriptionGroupTable"), "GROUPS_CHANGED.subscriptionGroupTable")
    return {name: SubscriptionGroupConfig.from_obj(obj, f"group {name}", default_name=name)
            for name, obj in table.items()}
