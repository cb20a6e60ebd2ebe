"""A broker worker: client connections, protocol decoding, sends through the writer, pulls from maps.

N workers share the broker port (SO_REUSEPORT, one listening socket each). A
worker is built in the supervisor before the fork with the inherited shared
maps and doorbells, and set up after it::

    Worker(slot, index, broker_config, store_config, boot_id, control_buf, queue_table_buf,
           put_ring_buf, response_ring_buf, writer_bell, response_bell, pull_bell)

    setup()  bind the listener (port in use -> EXIT_CONFIG), map the store read-only
    run()    asyncio loop:
               listener -> ClientConnection x N -> handlers (send, pull, lookup, forward)
               response doorbell -> SendHandlers.drain_responses (writer answers, flushes)
               pull doorbell     -> LongPolling.on_new_messages (dispatcher published offsets)
               ControlLink       -> control's unix socket (forwarded requests, topic tables, pushes)
               tick (100 ms)     -> heartbeat, orphan check, flush timeouts, writer restarts,
                                    parked-pull timeouts, batched offset commits, idle connections

SIGTERM only sets a flag and rings the pull doorbell; the loop then stops
accepting, answers parked pulls and waits (bounded) for in-flight puts and
forwards, closes the connections and returns 0.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from rocketpy import limits
from rocketpy.broker.child import EXIT_CONFIG, EXIT_OK, Child
from rocketpy.broker.connection import ClientConnection, Handler, build_handler_table
from rocketpy.broker.handlers import WorkerContext
from rocketpy.broker.handlers.admin_stats import AdminStatsHandlers
from rocketpy.broker.handlers.forward import ControlLink, ForwardHandlers
from rocketpy.broker.handlers.lookup import LookupHandlers
from rocketpy.broker.handlers.pull import PullHandlers
from rocketpy.broker.handlers.send import SendHandlers
from rocketpy.broker.handlers.sendback import SendBackHandlers
from rocketpy.broker.handlers.transaction import TransactionHandlers
from rocketpy.broker.internal import X_CONN, X_WORKER, InternalCode, control_socket_name
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.ipc.control_block import ControlBlock, Role
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.ipc.queue_table import QueueTable
from rocketpy.ipc.ring import RingConsumer, RingProducer
from rocketpy.protocol.bodies import dumps
from rocketpy.protocol.remoting import RemotingCommand

log = logging.getLogger("rocketpy.broker.worker")

TICK_MS = 100
SLOW_TICK_MS = 1000                   # lost-wakeup re-checks and the idle scan
LISTEN_BACKLOG = 1024
CONTROL_HELLO_WAIT_S = limits.CONTROL_HELLO_WAIT_S
COMMIT_OFFSETS_FLUSH_MS = limits.COMMIT_OFFSETS_FLUSH_MS
COMMIT_OFFSETS_BATCH_MAX = limits.WORKER_COMMIT_OFFSETS_BATCH_MAX
DRAIN_WAIT_MIN_S = limits.WORKER_DRAIN_WAIT_MIN_S
DRAIN_WAIT_MAX_S = limits.WORKER_DRAIN_WAIT_MAX_S


def bind_listener(host: str, port: int, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A listening socket of this worker alone, sharing the port with its siblings (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class OffsetCommitBatch:
    """Consumer offsets from pulls, batched on their way to control (COMMIT_OFFSETS)."""

    def __init__(self, send: Callable[[bytes], bool], *, batch_max: int = COMMIT_OFFSETS_BATCH_MAX) -> None:
        self.send = send
        self.batch_max = batch_max
        self.entries: dict[tuple[str, str, int], int] = {}
        self.last_flush = time.monotonic()

    def add(self, group: str, topic: str, queue_id: int, offset: int) -> None:
        self.entries[(group, topic, queue_id)] = offset
        if len(self.entries) >= self.batch_max:
            self.flush()

    def discard(self, group: str, topic: str, queue_id: int) -> None:
        self.entries.pop((group, topic, queue_id), None)

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.entries:
            return
        body = dumps({"offsets": [[g, t, q, o] for (g, t, q), o in self.entries.items()]})
        if self.send(body):
            self.entries.clear()


class WorkerServer:
    """One worker's serving state in one process (the Worker child runs it; tests drive it directly)."""

    def __init__(self, ctx: WorkerContext, put_ring: RingProducer, response_ring: RingConsumer,
                 writer_bell: Doorbell, response_bell: Doorbell, pull_bell: Doorbell, *,
                 control_socket: str | None = None,
                 stop_requested: Callable[[], bool] = lambda: False,
                 on_tick: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.response_bell = response_bell
        self.pull_bell = pull_bell
        self.stop_requested = stop_requested
        self.on_tick = on_tick
        self.connections: dict[int, ClientConnection] = {}
        self._conn_ids = itertools.count(1)
        self.link = ControlLink(control_socket, ctx.slot, self._on_control_request) if control_socket else None
        self.send = SendHandlers(ctx, put_ring, response_ring, writer_bell, control=self.link)
        self.pull = PullHandlers(ctx)
        self.lookup = LookupHandlers(ctx)
        self.forward = ForwardHandlers(ctx, self.link, self.connections)
        self.offsets = OffsetCommitBatch(self._send_offsets)
        ctx.commit_offset = self.offsets.add
        self.forward.before_offset_update = self.offsets.discard
        self.admin_stats = AdminStatsHandlers(ctx, self.forward)
        self.transaction = TransactionHandlers(ctx, self.send, self.link)
        self.send_back = SendBackHandlers(ctx, self.send)
        self.handlers: dict[int, Handler] = build_handler_table(self.send, self.pull, self.lookup, self.forward,
                                                                self.admin_stats, self.transaction, self.send_back)
        self.idle_s = float(ctx.broker_config.client_channel_max_idle_time_s)
        self.stopped = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._last_slow = time.monotonic()
        self._last_stats = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, listener: socket.socket | None = None) -> None:
        """Watch the doorbells, connect to control, then (once control answered or the wait ran
        out) accept clients on listener."""
        loop = self._loop = asyncio.get_running_loop()
        loop.add_reader(self.response_bell.fd, self._on_response_bell)
        loop.add_reader(self.pull_bell.fd, self._on_pull_bell)
        self._tick_task = loop.create_task(self._tick_loop(), name="worker-tick")
        if self.link is not None:
            self.link.start()
            assert self.link.ever_ready is not None
            ready = loop.create_task(self.link.ever_ready.wait())
            stopped = loop.create_task(self.stopped.wait())
            done, _ = await asyncio.wait((ready, stopped), timeout=CONTROL_HELLO_WAIT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            stopped.cancel()
            if not done:
                log.warning("worker slot %d: control did not answer within %.0f s; serving without the "
                            "topic table for now", self.ctx.slot, CONTROL_HELLO_WAIT_S)
        if listener is not None and not self.stopped.is_set():
            self._server = await loop.create_server(lambda: ClientConnection(self, next(self._conn_ids)),
                                                    sock=listener)

    async def serve_until_stopped(self) -> None:
        await self.stopped.wait()

    async def drain(self) -> None:
        """Stop accepting, answer what is in flight (bounded), close every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections.values()):
            conn.pause_reading()
        woken = self.pull.long_polling.wake_all()
        bound_s = min(max(self.send.sync_flush_timeout_s + 1.0, DRAIN_WAIT_MIN_S), DRAIN_WAIT_MAX_S)
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline and (self.send.in_flight or self._forwards_in_flight()):
            self.send.drain_responses()
            await asyncio.sleep(0.01)
        left = self.send.in_flight
        if left:
            self.send.fail_all("the broker is shutting down; send again")
        self.offsets.flush()
        log.info("worker slot %d drained: %d parked pulls answered, %d puts failed at the bound, %d connections",
                 self.ctx.slot, woken, left, len(self.connections))
        for conn in list(self.connections.values()):
            conn.close()
        for _ in range(50):              # let the transports write what they hold
            if not self.connections:
                break
            await asyncio.sleep(0.01)
        for conn in list(self.connections.values()):
            conn.abort()

    async def close(self) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            try:
                await self._tick_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self._loop is not None:
            self._loop.remove_reader(self.response_bell.fd)
            self._loop.remove_reader(self.pull_bell.fd)
        if self.link is not None:
            await self.link.close()
        if self._server is not None:
            self._server.close()

    def _forwards_in_flight(self) -> bool:
        return any(conn._tasks for conn in self.connections.values())

    # --- connections (ConnectionHost) -------------------------------------------------------

    def on_connection_made(self, conn: ClientConnection) -> None:
        self.connections[conn.conn_id] = conn

    def on_connection_lost(self, conn: ClientConnection) -> None:
        self.connections.pop(conn.conn_id, None)
        if self.link is not None:
            self.link.send_oneway(RemotingCommand.request(InternalCode.CLIENT_CONNECTION_CLOSED, {
                X_WORKER: str(self.ctx.slot), X_CONN: str(conn.conn_id)}))

    # --- doorbells, control, timers -----------------------------------------------------------

    def _on_response_bell(self) -> None:
        self.response_bell.clear()
        self.send.drain_responses()

    def _on_pull_bell(self) -> None:
        self.pull_bell.clear()
        if self.stop_requested():
            self.stopped.set()
        self.pull.long_polling.on_new_messages()

    def _on_control_request(self, cmd: RemotingCommand) -> None:
        self.forward.on_control_request(cmd)

    def _send_offsets(self, body: bytes) -> bool:
        if self.link is None:
            return True
        return self.link.send_oneway(RemotingCommand.request(InternalCode.COMMIT_OFFSETS, None, body))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_MS / 1000)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a failing timer must not stop for good
                log.exception("worker tick failed")

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.on_tick is not None:
            self.on_tick()
        if self.stop_requested():
            self.stopped.set()
        self.send.drain_responses()          # a lost response doorbell costs one tick
        self.send.check_timeouts(now)
        self.pull.long_polling.check_timeouts(now)
        if now - self.offsets.last_flush >= COMMIT_OFFSETS_FLUSH_MS / 1000:
            self.offsets.flush()
        if now - self._last_stats >= limits.METRICS_SHIP_INTERVAL_MS / 1000:
            self._last_stats = now
            body = self.ctx.stats.take()
            if body is not None and self.link is not None:
                self.link.send_oneway(RemotingCommand.request(InternalCode.STATS, None, body))
        if now - self._last_slow >= SLOW_TICK_MS / 1000:
            self._last_slow = now
            self.pull.long_polling.on_new_messages()   # a lost pull doorbell costs one second
            self._close_idle(now)

    def _close_idle(self, now: float) -> None:
        for conn in list(self.connections.values()):
            if now - conn.last_active > self.idle_s:
                log.info("closing idle connection: peer=%s, no read or write for %.0f s", conn.peer, self.idle_s)
                conn.close()


class Worker(Child):
    """The worker child process (see the module docstring)."""

    name = "worker"

    def __init__(self, slot: int, index: int, broker_config: BrokerConfig, store_config: StoreConfig,
                 boot_id: str, control_buf: Any, queue_table_buf: Any, put_ring_buf: Any, response_ring_buf: Any,
                 writer_bell: Doorbell, response_bell: Doorbell, pull_bell: Doorbell) -> None:
        super().__init__(slot)
        self.index = index
        self.broker_config = broker_config
        self.store_config = store_config
        self.boot_id = boot_id
        self._control_buf = control_buf
        self._queue_table_buf = queue_table_buf
        self._put_ring_buf = put_ring_buf
        self._response_ring_buf = response_ring_buf
        self.writer_bell = writer_bell
        self.response_bell = response_bell
        self.pull_bell = pull_bell
        self.listener: socket.socket | None = None
        self.server: WorkerServer | None = None

    def setup(self) -> None:
        from rocketpy.store.file_store import StoreReader

        cfg = self.broker_config
        self.control_block = ControlBlock(self._control_buf, Role.WORKER, slot=self.slot)
        try:
            self.listener = bind_listener(cfg.listen_host, cfg.listen_port)
        except OSError as exc:
            why = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            log.error("worker %d cannot listen on %s:%d: %s; pick another listenPort", self.index,
                      cfg.listen_host, cfg.listen_port, why)
            raise SystemExit(EXIT_CONFIG) from None
        reader = StoreReader(self.store_config)
        ctx = WorkerContext(cfg, self.store_config, slot=self.slot, control_block=self.control_block,
                            queue_table=QueueTable(self._queue_table_buf), store_reader=reader)
        self.server = WorkerServer(
            ctx, RingProducer(self._put_ring_buf), RingConsumer(self._response_ring_buf), self.writer_bell,
            self.response_bell, self.pull_bell, control_socket=control_socket_name(cfg.broker_name, self.boot_id),
            stop_requested=lambda: self.stopping, on_tick=self._on_tick)

    def on_stop_requested(self) -> None:
        self.pull_bell.ring()       # wakes the loop, which sees `stopping`

    def _on_tick(self) -> None:
        self.beat()
        if self.orphaned():
            log.warning("supervisor gone; worker %d stops", self.index)
            self.stopping = True

    def run(self) -> int:
        return asyncio.run(self._main())

    async def _main(self) -> int:
        server = self.server
        assert server is not None, "setup() runs before run()"
        try:
            await server.start(self.listener)
            log.info("worker %d (slot %d) serving on %s:%d", self.index, self.slot, self.broker_config.listen_host,
                     self.broker_config.listen_port)
            if not self.stopping:
                await server.serve_until_stopped()
            await server.drain()
        finally:
            await server.close()
            if server.ctx.store_reader is not None:
                server.ctx.store_reader.close()
        log.info("worker %d stopped", self.index)
        return EXIT_OK
