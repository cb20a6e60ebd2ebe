"""The asyncio remoting client: one connection per address, replies matched by opaque.

Both ends of a RocketMQ connection may issue requests, so a connection also
serves requests the broker sends to the client (NOTIFY_CONSUMER_IDS_CHANGED,
CHECK_TRANSACTION_STATE, ...) through a handler. Responses can come back in any
order (long-polled pulls return seconds later); each request has its own timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable

from rocketpy.errors import ProtocolError, RemotingConnectError, RemotingTimeoutError
from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.remoting import (
    FLAG_ONEWAY,
    FLAG_RESPONSE,
    FrameDecoder,
    RemotingCommand,
    encode_frame,
)

log = logging.getLogger("rocketpy.client.remoting")

RequestHandler = Callable[["RemotingConnection", RemotingCommand], Awaitable[RemotingCommand | None]]

_OPAQUES = itertools.count(1)


def next_opaque() -> int:
    return next(_OPAQUES) & 0x7FFFFFFF


def parse_address(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {addr!r} is not host:port")
    return host.strip("[]"), int(port)


class RemotingConnection(asyncio.Protocol):
    """One TCP connection speaking the remoting protocol."""

    def __init__(self, addr: str, handler: RequestHandler | None = None) -> None:
        self.addr = addr
        self._handler = handler
        self._transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder()
        self._pending: dict[int, asyncio.Future[RemotingCommand]] = {}
        self._closed: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.close_reason: str | None = None

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        try:
            commands = self._decoder.feed(data)
        except ProtocolError as exc:
            log.warning("closing connection to %s: %s", self.addr, exc)
            self.close(f"malformed frame from {self.addr}: {exc}")
            return
        for cmd in commands:
            if cmd.flag & FLAG_RESPONSE:
                fut = self._pending.pop(cmd.opaque, None)
                if fut is not None and not fut.done():
                    fut.set_result(cmd)
            else:
                task = asyncio.get_running_loop().create_task(self._serve(cmd))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        if self._decoder.failed is not None:
            log.warning("closing connection to %s: %s", self.addr, self._decoder.failed)
            self.close(f"malformed frame from {self.addr}: {self._decoder.failed}")

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self.close_reason or (f"connection to {self.addr} lost: {exc}" if exc
                                       else f"connection to {self.addr} closed by peer")
        self.close_reason = reason
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RemotingConnectError(reason))
        self._pending.clear()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        self._transport = None

    # --- requests ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def request(self, cmd: RemotingCommand, timeout_ms: int) -> RemotingCommand:
        """Send a request and wait for its response."""
        if not self.is_open:
            raise RemotingConnectError(self.close_reason or f"connection to {self.addr} is closed")
        assert self._transport is not None
        cmd.opaque = next_opaque()
        fut: asyncio.Future[RemotingCommand] = asyncio.get_running_loop().create_future()
        self._pending[cmd.opaque] = fut
        self._transport.write(encode_frame(cmd))
        try:
            return await asyncio.wait_for(fut, timeout_ms / 1000)
        except TimeoutError:
            raise RemotingTimeoutError(
                f"no response from {self.addr} to request code {cmd.code} within {timeout_ms} ms") from None
        finally:
            self._pending.pop(cmd.opaque, None)

    def oneway(self, cmd: RemotingCommand) -> None:
        """Send a request that gets no response."""
        if not self.is_open:
            raise RemotingConnectError(self.close_reason or f"connection to {self.addr} is closed")
        assert self._transport is not None
        cmd.opaque = next_opaque()
        cmd.flag |= FLAG_ONEWAY
        self._transport.write(encode_frame(cmd))

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests of malformed input)."""
        assert self._transport is not None
        self._transport.write(data)

    async def _serve(self, cmd: RemotingCommand) -> None:
        if self._handler is None:
            response: RemotingCommand | None = None
            if not cmd.flag & FLAG_ONEWAY:
                response = cmd.response(ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
                                        f" request type {cmd.code} not supported")
        else:
            try:
                response = await self._handler(self, cmd)
            except Exception as exc:  # noqa: BLE001 - answer, never drop the connection
                log.exception("handler for request code %d from %s failed", cmd.code, self.addr)
                response = cmd.response(ResponseCode.SYSTEM_ERROR, f"{type(exc).__name__}: {exc}")
        if response is not None and not cmd.flag & FLAG_ONEWAY and self.is_open:
            assert self._transport is not None
            self._transport.write(encode_frame(response))

    def close(self, reason: str | None = None) -> None:
        if reason and not self.close_reason:
            self.close_reason = reason
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await self._closed


async def connect(addr: str, *, timeout_ms: int = 3000, handler: RequestHandler | None = None
                  ) -> RemotingConnection:
    host, port = parse_address(addr)
    loop = asyncio.get_running_loop()
    try:
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: RemotingConnection(addr, handler), host, port),
            timeout_ms / 1000)
    except TimeoutError:
        raise RemotingConnectError(f"connect to {addr} timed out after {timeout_ms} ms") from None
    except OSError as exc:
        raise RemotingConnectError(f"cannot connect to {addr}: {exc.strerror or exc}") from None
    return proto


class RemotingClient:
    """A pool of connections, one per address, re-opened on demand."""

    def __init__(self, *, connect_timeout_ms: int = 3000, handler: RequestHandler | None = None) -> None:
        self._connect_timeout_ms = connect_timeout_ms
        self._handler = handler
        self._conns: dict[str, RemotingConnection] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def connection(self, addr: str) -> RemotingConnection:
        conn = self._conns.get(addr)
        if conn is not None and conn.is_open:
            return conn
        lock = self._locks.setdefault(addr, asyncio.Lock())
        async with lock:
            conn = self._conns.get(addr)
            if conn is None or not conn.is_open:
                conn = await connect(addr, timeout_ms=self._connect_timeout_ms, handler=self._handler)
                self._conns[addr] = conn
            return conn

    async def invoke(self, addr: str, cmd: RemotingCommand, timeout_ms: int = 3000) -> RemotingCommand:
        conn = await self.connection(addr)
        return await conn.request(cmd, timeout_ms)

    async def invoke_oneway(self, addr: str, cmd: RemotingCommand) -> None:
        conn = await self.connection(addr)
        conn.oneway(cmd)

    def close_connection(self, addr: str) -> None:
        conn = self._conns.pop(addr, None)
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        conns = list(self._conns.values())
        self._conns.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            try:
                await asyncio.wait_for(conn.wait_closed(), 1.0)
            except TimeoutError:
                pass
