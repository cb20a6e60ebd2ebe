"""The server side of one client connection in a worker (RocketMQ's NettyServerHandler).

An asyncio.Protocol with no StreamReader in between: bytes go straight into a
FrameDecoder, each request goes to the handler registered for its code
(`handle_<request_code_lower>`), and responses are queued and written with one
`transport.write` per loop turn, however many requests the turn answered::

    data_received -> FrameDecoder.feed -> dispatch -> handler(request, conn)
        handler returns RemotingCommand  -> respond now (queued, written at turn end)
        handler returns None             -> no answer yet: the handler keeps the request
                                            and calls conn.respond(request, response) later
                                            (sends waiting for the writer, parked pulls)
        handler returns a coroutine      -> run as a task; its result is the response

Rules (remoting-protocol.md §1, §4, §13.2): a malformed or oversized frame closes
this connection only, with one log line naming the peer and the reason (frames
decoded before it are answered first); an unknown code gets
REQUEST_CODE_NOT_SUPPORTED; a bad header field (HeaderError) or any handler
exception gets SYSTEM_ERROR and the connection stays; a oneway request (flag 2)
is never answered; a response uses the request's serialization type; a
connection with no read and no write for `idle_s` is closed by the host's scan.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from rocketpy.errors import ProtocolError, RocketpyError
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.remoting import FrameDecoder, RemotingCommand, encode_frame

log = logging.getLogger("rocketpy.broker.worker")

HandlerResult = RemotingCommand | None | Coroutine[Any, Any, RemotingCommand | None]
Handler = Callable[[RemotingCommand, "ClientConnection"], HandlerResult]


class ConnectionHost(Protocol):
    """What a connection needs from the worker that owns it."""

    handlers: dict[int, Handler]

    def on_connection_made(self, conn: ClientConnection) -> None: ...

    def on_connection_lost(self, conn: ClientConnection) -> None: ...


def build_handler_table(*handler_objects: object) -> dict[int, Handler]:
    """code -> bound method, for every `handle_<request_code_lower>` found on the objects."""
    table: dict[int, Handler] = {}
    for code in RequestCode:
        name = f"handle_{code.name.lower()}"
        for obj in handler_objects:
            method = getattr(obj, name, None)
            if method is not None:
                assert int(code) not in table, f"two handlers for {code.name}"
                table[int(code)] = method
    return table


def split_peer(peername: Any) -> tuple[str, int]:
    """(ip, port) of a transport's peername; ("0.0.0.0", 0) for anything unexpected."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        return str(peername[0]), int(peername[1])
    return "0.0.0.0", 0


class ClientConnection(asyncio.Protocol):
    """One client connection; `conn_id` is its id within this worker (control's X_CONN)."""

    def __init__(self, host: ConnectionHost, conn_id: int) -> None:
        self.host = host
        self.conn_id = conn_id
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder()
        self.peer = "?"
        self.peer_ip = "0.0.0.0"
        self.peer_port = 0
        self.language: str | None = None
        self.version = 0
        self.closed = False
        self.last_active = time.monotonic()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reading_paused = False
        self._writing_paused = False

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self.peer_ip, self.peer_port = split_peer(transport.get_extra_info("peername"))
        self.peer = f"{self.peer_ip}:{self.peer_port}"
        self.host.on_connection_made(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            requests = self.decoder.feed(data)
        except ProtocolError as exc:
            log.warning("closing connection: peer=%s: %s", self.peer, exc)
            self.close()
            return
        for request in requests:
            self.dispatch(request)
        if self.decoder.failed is not None:
            log.warning("closing connection: peer=%s: %s", self.peer, self.decoder.failed)
            self.flush()
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed and self.transport is None:
            return
        self.closed = True
        self.transport = None
        self._out.clear()
        for task in list(self._tasks):
            task.cancel()
        if exc is not None:
            log.info("connection lost: peer=%s: %s", self.peer, exc)
        self.host.on_connection_lost(self)

    def pause_writing(self) -> None:
        # The client does not read its responses: stop reading its requests (a bound on memory).
        self._writing_paused = True
        if self.transport is not None and not self._reading_paused:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self.transport is not None and not self._reading_paused and not self.closed:
            self.transport.resume_reading()

    # --- dispatch --------------------------------------------------------------------------

    def dispatch(self, request: RemotingCommand) -> None:
        if request.is_response:
            log.debug("ignoring a response frame: peer=%s code=%d opaque=%d", self.peer, request.code,
                      request.opaque)
            return
        if self.language is None:
            self.language = request.language
            self.version = request.version
        handler = self.host.handlers.get(request.code)
        if handler is None:
            log.info("request code not supported: peer=%s code=%d", self.peer, request.code)
            self.respond(request, request.response(
                ResponseCode.REQUEST_CODE_NOT_SUPPORTED, f" request type {request.code} not supported"))
            return
        try:
            result = handler(request, self)
        except Exception as exc:  # noqa: BLE001 - a handler's failure must not take the connection down
            self.respond(request, self.error_response(request, exc))
            return
        if result is None:
            return
        if type(result) is RemotingCommand:
            self.respond(request, result)
            return
        assert asyncio.iscoroutine(result), f"handler for code {request.code} returned {type(result)}"
        loop = self._loop or asyncio.get_running_loop()
        task = loop.create_task(result)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(request, t))

    def _task_done(self, request: RemotingCommand, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.respond(request, self.error_response(request, exc))
            return
        result = task.result()
        if result is not None:
            self.respond(request, result)

    def error_response(self, request: RemotingCommand, exc: BaseException) -> RemotingCommand:
        """SYSTEM_ERROR for a handler's exception: the request's fault (RocketpyError) or a bug."""
        if isinstance(exc, RocketpyError):
            log.info("request refused: peer=%s code=%d: %s", self.peer, request.code, exc)
            return request.response(ResponseCode.SYSTEM_ERROR, str(exc))
        log.error("request failed: peer=%s code=%d: %s: %s", self.peer, request.code,
                  type(exc).__name__, exc, exc_info=exc)
        return request.response(ResponseCode.SYSTEM_ERROR, f"{type(exc).__name__}: {exc}")

    # --- writing -----------------------------------------------------------------------------

    def respond(self, request: RemotingCommand, response: RemotingCommand) -> None:
        """Queue the response to request (dropped for a oneway request or a closed connection)."""
        if request.is_oneway or self.closed:
            return
        try:
            frame = encode_frame(response)
        except ProtocolError as exc:  # e.g. a body over the frame limit
            log.error("response cannot be encoded: peer=%s code=%d: %s", self.peer, request.code, exc)
            frame = encode_frame(request.response(ResponseCode.SYSTEM_ERROR, f"response cannot be encoded: {exc}"))
        self.write_frame(frame)

    def write_frame(self, frame: bytes) -> None:
        """Queue an encoded frame (a response, or a server-initiated request from control)."""
        if self.closed:
            return
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything queued in one transport.write."""
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.last_active = time.monotonic()
        transport.write(data)

    @property
    def pending_write_count(self) -> int:
        return len(self._out)

    # --- lifecycle ---------------------------------------------------------------------------

    def pause_reading(self) -> None:
        """Take no more requests from this client (draining)."""
        self._reading_paused = True
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def close(self) -> None:
        """Close after queued data is written (transport.close flushes its buffer)."""
        if self.transport is not None and not self.transport.is_closing():
            self.flush()
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
