"""The NameServer process: an asyncio TCP server in front of the RouteTable.

RocketMQ's NamesrvController + DefaultRequestProcessor in one module. Each
connection has its own FrameDecoder; a malformed or oversized frame closes that
connection only, with one log line naming the peer and the reason. Requests are
answered in the order they arrive on a connection, in the request's own header
serialization, and oneway requests are never answered.

    serve(config)                       run(config) -> exit code
      |                                   (asyncio.run + SIGTERM/SIGINT)
      +-- listener -> Connection x N  -- FrameDecoder -> dispatch -> handle_<code>
      +-- scan task (first after scan_first_delay_ms, then every scan interval)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import signal
import sys
import time
import zlib
from collections.abc import Callable

from rocketpy import sdnotify
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.errors import ProtocolError, RocketpyError
from rocketpy.namesrv.config import NamesrvConfig
from rocketpy.namesrv.metrics import NamesrvMetrics
from rocketpy.namesrv.route_table import (
    NAMESPACE_ORDER_TOPIC_CONFIG,
    KVConfigTable,
    RouteTable,
)
from rocketpy.protocol import bodies, headers
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.remoting import FrameDecoder, RemotingCommand, encode_frame

log = logging.getLogger("rocketpy.namesrv")

READ_CHUNK_SIZE = 256 * 1024
# REGISTER_BROKER bodies are a RegisterBrokerBody from this protocol version (V3_0_11) on.
REGISTER_BODY_VERSION_MIN = 37
# Bound on how long stop() waits for connection tasks to finish.
STOP_TIMEOUT_S = 5.0

Handler = Callable[[RemotingCommand, "Connection"], RemotingCommand]


class Connection:
    """One client or broker connection; its id is the channel the RouteTable remembers."""

    __slots__ = ("conn_id", "peer", "writer", "decoder")

    def __init__(self, conn_id: int, peer: str, writer: asyncio.StreamWriter) -> None:
        self.conn_id = conn_id
        self.peer = peer
        self.writer = writer
        self.decoder = FrameDecoder()


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class NameServer:
    """RocketMQ's NamesrvController: route table, KV table, listener and scan timer."""

    def __init__(self, config: NamesrvConfig, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.routes = RouteTable(broker_expiry_ms=config.broker_channel_expired_time_ms, clock=clock)
        self.kv = KVConfigTable()
        self.listen_host = config.listen_host
        self.listen_port = config.listen_port
        self._server: asyncio.Server | None = None
        self._scan_task: asyncio.Task[None] | None = None
        self._connections: dict[int, tuple[Connection, asyncio.Task[None]]] = {}
        self._conn_ids = itertools.count(1)
        self.metrics = NamesrvMetrics(self)
        self._handlers: dict[int, Handler] = {}
        for code in RequestCode:
            handler = getattr(self, f"handle_{code.name.lower()}", None)
            if handler is not None:
                self._handlers[int(code)] = handler

    @property
    def listen_address(self) -> str:
        return f"{self.listen_host}:{self.listen_port}"

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def metrics_port(self) -> int:
        """The port GET /metrics is served on, 0 when it is not."""
        return self.metrics.http.port if self.metrics.http is not None else 0

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve_connection, host=self.config.listen_host, port=self.config.listen_port,
            reuse_address=True, limit=READ_CHUNK_SIZE)
        sockets = self._server.sockets
        assert sockets, "the listener has a socket"
        sockname = sockets[0].getsockname()
        self.listen_host, self.listen_port = sockname[0], sockname[1]
        self._scan_task = asyncio.create_task(self._scan_loop(), name="namesrv-scan")
        await self.metrics.start(self.listen_host, self.config.metrics_listen_port(self.listen_port))
        log.info("namesrv started: listen=%s scan_interval_ms=%d broker_expiry_ms=%d",
                 self.listen_address, self.config.scan_not_active_broker_interval_ms,
                 self.config.broker_channel_expired_time_ms)

    async def stop(self) -> None:
        """Close the listener, then every connection; returns when all are gone."""
        if self._server is not None:
            self._server.close()
        if self._scan_task is not None:
            self._scan_task.cancel()
        await self.metrics.stop()
        tasks = []
        for conn, task in list(self._connections.values()):
            conn.writer.close()
            task.cancel()
            tasks.append(task)
        if self._scan_task is not None:
            tasks.append(self._scan_task)
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), STOP_TIMEOUT_S)
        log.info("namesrv stopped: listen=%s", self.listen_address)

    async def _scan_loop(self) -> None:
        await asyncio.sleep(self.config.scan_first_delay_ms / 1000)
        while True:
            try:
                self.scan_not_active_broker()
            except Exception:  # a bug must not stop expiry for good
                log.exception("scan for inactive brokers failed")
            await asyncio.sleep(self.config.scan_not_active_broker_interval_ms / 1000)

    def scan_not_active_broker(self) -> None:
        expired = self.routes.scan_not_active()
        self.metrics.scans += 1
        if expired:
            self.metrics.observe_removals("expired", len(expired))
        for item in expired:
            self._close_if_unused(item.channel)

    def _close_if_unused(self, channel: object) -> None:
        """Close a connection whose every registered broker expired (RocketMQ closes the channel)."""
        if not isinstance(channel, int) or channel not in self._connections:
            return
        if self.routes.addresses_of_channel(channel):
            return
        conn, _task = self._connections[channel]
        log.info("closing connection of expired broker: peer=%s", conn.peer)
        conn.writer.close()

    # --- connections ----------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = Connection(next(self._conn_ids), _peer_name(writer), writer)
        if len(self._connections) >= self.config.connection_count_max:
            log.warning("refusing connection: peer=%s, already %d connections (connectionCountMax)",
                        conn.peer, len(self._connections))
            self.metrics.connections_refused += 1
            writer.close()
            return
        self._connections[conn.conn_id] = (conn, task)
        self.metrics.connections_opened += 1
        log.debug("connection opened: peer=%s", conn.peer)
        try:
            await self._read_loop(reader, conn)
        except (ConnectionError, OSError) as exc:
            log.info("connection error: peer=%s: %s", conn.peer, exc)
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug: drop this connection, keep the server
            log.exception("connection failed: peer=%s", conn.peer)
        finally:
            del self._connections[conn.conn_id]
            writer.close()
            for addr in self.routes.addresses_of_channel(conn.conn_id):
                self.routes.on_channel_closed(addr)
                self.metrics.observe_removals("disconnected", 1)
            log.debug("connection closed: peer=%s", conn.peer)

    async def _read_loop(self, reader: asyncio.StreamReader, conn: Connection) -> None:
        idle_s = self.config.server_channel_max_idle_time_ms / 1000
        while True:
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK_SIZE), idle_s)
            except TimeoutError:
                log.info("closing idle connection: peer=%s, no request for %d ms",
                         conn.peer, self.config.server_channel_max_idle_time_ms)
                return
            if not data:
                return
            try:
                requests = conn.decoder.feed(data)
            except ProtocolError as exc:
                log.warning("closing connection: peer=%s: %s", conn.peer, exc)
                self.metrics.frames_refused += 1
                return
            frames = []
            for request in requests:
                response = self.dispatch(request, conn)
                if response is not None:
                    frames.append(self._encode_response(request, response, conn))
            if frames:
                conn.writer.write(b"".join(frames))
                try:
                    await asyncio.wait_for(conn.writer.drain(), idle_s)
                except TimeoutError:
                    log.warning("closing connection: peer=%s does not read its responses for %d ms",
                                conn.peer, self.config.server_channel_max_idle_time_ms)
                    return
            if conn.decoder.failed is not None:
                log.warning("closing connection: peer=%s: %s", conn.peer, conn.decoder.failed)
                self.metrics.frames_refused += 1
                return

    def _encode_response(self, request: RemotingCommand, response: RemotingCommand,
                         conn: Connection) -> bytes:
        try:
            return encode_frame(response)
        except ProtocolError as exc:  # e.g. a body over the frame limit
            log.error("response cannot be encoded: peer=%s code=%d: %s", conn.peer, request.code, exc)
            return encode_frame(request.response(ResponseCode.SYSTEM_ERROR,
                                                 remark=f"response cannot be encoded: {exc}"))

    def dispatch(self, request: RemotingCommand, conn: Connection) -> RemotingCommand | None:
        """Run the handler of one request; the response to send, or None (oneway, stray response)."""
        if request.is_response:
            log.info("ignoring a response frame: peer=%s code=%d opaque=%d",
                     conn.peer, request.code, request.opaque)
            return None
        started = time.perf_counter()
        handler = self._handlers.get(request.code)
        if handler is None:
            log.info("request code not supported: peer=%s code=%d", conn.peer, request.code)
            response = request.response(ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
                                        remark=f" request type {request.code} not supported")
        else:
            try:
                response = handler(request, conn)
            except RocketpyError as exc:  # a bad header or body: the request's fault
                log.warning("request refused: peer=%s code=%d: %s", conn.peer, request.code, exc)
                response = request.response(ResponseCode.SYSTEM_ERROR, remark=str(exc))
            except Exception as exc:  # a bug must not take the connection down
                log.error("request failed: peer=%s code=%d: %s: %s",
                          conn.peer, request.code, type(exc).__name__, exc, exc_info=True)
                response = request.response(ResponseCode.SYSTEM_ERROR,
                                            remark=f"{type(exc).__name__}: {exc}")
        self.metrics.observe_request(request.code, None if request.is_oneway else response.code,
                                     time.perf_counter() - started)
        return None if request.is_oneway else response

    # --- handlers: registration -------------------------------------------------

    def handle_register_broker(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        header = headers.RegisterBrokerRequestHeader.from_ext(request.ext_fields)
        body = request.body or b""
        if header.body_crc32 and (zlib.crc32(body) & 0x7FFFFFFF) != header.body_crc32:
            log.warning("register refused, crc32 not match: peer=%s broker=%s addr=%s",
                        conn.peer, header.broker_name, header.broker_addr)
            return request.response(ResponseCode.SYSTEM_ERROR, remark="crc32 not match")
        if request.version >= REGISTER_BODY_VERSION_MIN:
            register_body = bodies.RegisterBrokerBody.decode(body, compressed=bool(header.compressed))
            wrapper = register_body.topic_config_serialize_wrapper
            filter_servers: tuple[str, ...] = register_body.filter_server_list
        else:
            wrapper = bodies.TopicConfigSerializeWrapper.from_json(body) if body \
                else bodies.TopicConfigSerializeWrapper()
            filter_servers = ()
        new = header.broker_addr not in self.routes.broker_live_table
        result = self.routes.register_broker(
            cluster=header.cluster_name, broker_addr=header.broker_addr,
            broker_name=header.broker_name, broker_id=header.broker_id,
            ha_server_addr=header.ha_server_addr, data_version=wrapper.data_version,
            topic_configs=list(wrapper.topic_config_table.values()),
            filter_server_list=filter_servers, channel=conn.conn_id)
        self.metrics.observe_registration(new)
        response_header = headers.RegisterBrokerResponseHeader(
            ha_server_addr=result.ha_server_addr, master_addr=result.master_addr)
        order_conf = self.kv.list_namespace(NAMESPACE_ORDER_TOPIC_CONFIG)
        body_out = bodies.KVTable(table=dict(order_conf)).to_json() if order_conf is not None else b""
        return request.response(ResponseCode.SUCCESS, ext_fields=response_header.to_ext(), body=body_out)

    def handle_unregister_broker(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        header = headers.UnregisterBrokerRequestHeader.from_ext(request.ext_fields)
        if header.broker_addr in self.routes.broker_live_table:
            self.metrics.observe_removals("unregistered", 1)
        self.routes.unregister_broker(cluster=header.cluster_name, broker_addr=header.broker_addr,
                                      broker_name=header.broker_name, broker_id=header.broker_id)
        return request.response(ResponseCode.SUCCESS)

    def handle_query_data_version(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        header = headers.QueryDataVersionRequestHeader.from_ext(request.ext_fields)
        data_version = bodies.DataVersion.from_json(request.body or b"")
        changed, stored = self.routes.query_data_version(header.broker_addr, data_version)
        return request.response(ResponseCode.SUCCESS,
                                ext_fields=headers.QueryDataVersionResponseHeader(changed=changed).to_ext(),
                                body=stored.to_json() if stored is not None else b"")

    # --- handlers: routes -----------------------------------------------------------

    def handle_get_routeinfo_by_topic(self, request: RemotingCommand, conn: Connection
                                      ) -> RemotingCommand:
        header = headers.GetRouteInfoRequestHeader.from_ext(request.ext_fields)
        route = self.routes.route_for_topic(header.topic)
        if route is None:
            return request.response(
                ResponseCode.TOPIC_NOT_EXIST,
                remark=f"No topic route info in name server for the topic: {header.topic}")
        if self.config.order_message_enable:
            order_conf = self.kv.get(NAMESPACE_ORDER_TOPIC_CONFIG, header.topic)
            if order_conf is not None:
                route = dataclasses.replace(route, order_topic_conf=order_conf)
        return request.response(ResponseCode.SUCCESS, body=route.to_json())

    def handle_get_broker_cluster_info(self, request: RemotingCommand, conn: Connection
                                       ) -> RemotingCommand:
        return request.response(ResponseCode.SUCCESS, body=self.routes.cluster_info().to_json())

    def handle_get_all_topic_list_from_nameserver(self, request: RemotingCommand, conn: Connection
                                                  ) -> RemotingCommand:
        topic_list = bodies.TopicList(topic_list=self.routes.topic_list())
        return request.response(ResponseCode.SUCCESS, body=topic_list.to_json())

    def handle_get_topics_by_cluster(self, request: RemotingCommand, conn: Connection
                                     ) -> RemotingCommand:
        header = headers.GetTopicsByClusterRequestHeader.from_ext(request.ext_fields)
        topic_list = bodies.TopicList(topic_list=self.routes.topics_by_cluster(header.cluster))
        return request.response(ResponseCode.SUCCESS, body=topic_list.to_json())

    def handle_delete_topic_in_namesrv(self, request: RemotingCommand, conn: Connection
                                       ) -> RemotingCommand:
        header = headers.DeleteTopicInNamesrvRequestHeader.from_ext(request.ext_fields)
        self.routes.delete_topic(header.topic, header.cluster_name)
        log.info("topic deleted: topic=%s cluster=%s peer=%s",
                 header.topic, header.cluster_name or "*", conn.peer)
        return request.response(ResponseCode.SUCCESS)

    def handle_wipe_write_perm_of_broker(self, request: RemotingCommand, conn: Connection
                                         ) -> RemotingCommand:
        header = headers.WipeWritePermOfBrokerRequestHeader.from_ext(request.ext_fields)
        count = self.routes.wipe_write_perm(header.broker_name)
        log.info("write perm wiped: broker=%s topics=%d peer=%s", header.broker_name, count, conn.peer)
        return request.response(ResponseCode.SUCCESS,
                                ext_fields=headers.WipeWritePermOfBrokerResponseHeader(
                                    wipe_topic_count=count).to_ext())

    def handle_add_write_perm_of_broker(self, request: RemotingCommand, conn: Connection
                                        ) -> RemotingCommand:
        header = headers.AddWritePermOfBrokerRequestHeader.from_ext(request.ext_fields)
        count = self.routes.add_write_perm(header.broker_name)
        log.info("write perm added: broker=%s topics=%d peer=%s", header.broker_name, count, conn.peer)
        return request.response(ResponseCode.SUCCESS,
                                ext_fields=headers.AddWritePermOfBrokerResponseHeader(
                                    add_topic_count=count).to_ext())

    # --- handlers: KV config ---------------------------------------------------------

    def handle_put_kv_config(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        header = headers.PutKVConfigRequestHeader.from_ext(request.ext_fields)
        self.kv.put(header.namespace, header.key, header.value)
        return request.response(ResponseCode.SUCCESS)

    def handle_get_kv_config(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        header = headers.GetKVConfigRequestHeader.from_ext(request.ext_fields)
        value = self.kv.get(header.namespace, header.key)
        if value is None:
            return request.response(
                ResponseCode.QUERY_NOT_FOUND,
                remark=f"No config item, Namespace: {header.namespace} Key: {header.key}")
        return request.response(ResponseCode.SUCCESS,
                                ext_fields=headers.GetKVConfigResponseHeader(value=value).to_ext())

    def handle_delete_kv_config(self, request: RemotingCommand, conn: Connection) -> RemotingCommand:
        header = headers.DeleteKVConfigRequestHeader.from_ext(request.ext_fields)
        self.kv.delete(header.namespace, header.key)
        return request.response(ResponseCode.SUCCESS)

    def handle_get_kvlist_by_namespace(self, request: RemotingCommand, conn: Connection
                                       ) -> RemotingCommand:
        header = headers.GetKVListByNamespaceRequestHeader.from_ext(request.ext_fields)
        values = self.kv.list_namespace(header.namespace)
        if values is None:
            return request.response(ResponseCode.QUERY_NOT_FOUND,
                                    remark=f"No config item, Namespace: {header.namespace}")
        return request.response(ResponseCode.SUCCESS, body=bodies.KVTable(table=dict(values)).to_json())


async def serve(config: NamesrvConfig, *, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
    """Run a NameServer until `stop` is set (or, without `stop`, until SIGTERM/SIGINT).

    Prints `rocketpy namesrv listening on HOST:PORT` once the port accepts
    connections, then sets `ready`.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    server = NameServer(config, clock=clock)
    try:
        await server.start()
        print(f"rocketpy namesrv listening on {server.listen_address}", flush=True)
        if server.metrics_port:
            print(f"rocketpy namesrv metrics on http://{server.listen_host}:{server.metrics_port}/metrics",
                  flush=True)
        if ready is not None:
            ready.set()
        sdnotify.notify("READY=1")
        watchdog = asyncio.create_task(_watchdog_pings(), name="namesrv-watchdog")
        await stop.wait()
        log.info("namesrv stopping")
        sdnotify.notify("STOPPING=1")
        watchdog.cancel()
    finally:
        await server.stop()
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _watchdog_pings() -> None:
    """WATCHDOG=1 at half of systemd's WatchdogSec, while the event loop is alive."""
    interval = sdnotify.watchdog_interval_s()
    if interval is None:
        return
    while True:
        sdnotify.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def run(config: NamesrvConfig) -> int:
    """Serve in the foreground until SIGTERM/SIGINT; the process exit code."""
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        log.error("namesrv cannot listen on %s: %s", config.listen_address, exc.strerror or exc)
        print(f"rocketpy namesrv: cannot listen on {config.listen_address}: {exc.strerror or exc}; "
              "pick another --listen address", file=sys.stderr, flush=True)
        return 1
    return 0
