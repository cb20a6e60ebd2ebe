"""Control's unix socket, spoken to as a worker would, with a real NameServer process.

The control server runs in-process on a real abstract unix socket; the fake
worker is the client library's RemotingConnection over that socket. A real
`rocketpy namesrv` subprocess receives the registration. The last test forks
the `Control` child itself and stops it with SIGTERM. Every wait polls with a
deadline; every process is killed in teardown.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from rocketpy.broker.control.process import Control
from rocketpy.broker.control.server import ControlServer, encode_commit_offsets
from rocketpy.broker.internal import (
    X_CLIENT_ADDR,
    X_CONN,
    X_WORKER,
    InternalCode,
    control_socket_name,
)
from rocketpy.client.remoting import RemotingClient, RemotingConnection
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.ipc.control_block import ControlBlock, Role, control_block_size
from rocketpy.ipc.queue_table import init_queue_table, queue_table_size
from rocketpy.ipc.shm import new_boot_id
from rocketpy.protocol.bodies import TopicConfigSerializeWrapper, TopicRouteData
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.remoting import FrameDecoder, RemotingCommand

START_TIMEOUT_S = 15.0
WAIT_TIMEOUT_S = 10.0
TEST_TIMEOUT_S = 60.0
HEARTBEAT = (b'{"clientID":"127.0.0.1@77","consumerDataSet":[{"groupName":"CG1","consumeType":1,'
             b'"messageModel":1,"consumeFromWhere":0,"subscriptionDataSet":[{"topic":"TopicX","subString":"*"}]}]}')


# --- a NameServer subprocess ------------------------------------------------------------


@pytest.fixture
def namesrv(tmp_path: Path) -> Iterator[str]:
    out = tmp_path / "namesrv.out"
    err = tmp_path / "namesrv.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "rocketpy.cli.namesrv", "--listen", "127.0.0.1:0",
                                 "--metrics-port", "0"],
                                stdout=fo, stderr=fe)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        prefix = "rocketpy namesrv listening on "
        addr = None
        while addr is None:
            assert proc.poll() is None, f"namesrv exited: {err.read_text()}"
            assert time.monotonic() < deadline, f"namesrv not listening: {err.read_text()}"
            for line in out.read_text().splitlines():
                if line.startswith(prefix):
                    addr = line[len(prefix):].strip()
            time.sleep(0.02)
        yield addr
    finally:
        proc.kill()
        proc.wait(10)


def _run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro_fn(), TEST_TIMEOUT_S)
    asyncio.run(bounded())


async def _poll(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = WAIT_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --- a fake worker ---------------------------------------------------------------------------


class FakeWorker:
    """A worker's end of the control socket; requests from control are collected in `pushed`."""

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.pushed: list[RemotingCommand] = []
        self.conn: RemotingConnection | None = None

    async def _on_request(self, conn: RemotingConnection, cmd: RemotingCommand) -> RemotingCommand | None:
        self.pushed.append(cmd)
        return None

    async def connect(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_unix_connection(lambda: RemotingConnection("control", self._on_request),
                                                     path=name)
        self.conn = proto

    async def call(self, code: int, ext: dict[str, str] | None = None, body: bytes = b"", conn_id: int = 1
                   ) -> RemotingCommand:
        assert self.conn is not None
        fields = {X_WORKER: str(self.slot), X_CONN: str(conn_id), X_CLIENT_ADDR: "127.0.0.1:40000", **(ext or {})}
        return await self.conn.request(RemotingCommand.request(code, fields, body), 5000)

    def oneway(self, code: int, ext: dict[str, str] | None = None, body: bytes = b"", conn_id: int = 1) -> None:
        assert self.conn is not None
        self.conn.oneway(RemotingCommand.request(code, {X_WORKER: str(self.slot), X_CONN: str(conn_id),
                                                        **(ext or {})}, body))

    def codes(self) -> list[int]:
        return [c.code for c in self.pushed]


async def _route(client: RemotingClient, addr: str, topic: str) -> TopicRouteData | None:
    resp = await client.invoke(addr, RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC,
                                                            {"topic": topic}), 3000)
    if resp.code != ResponseCode.SUCCESS:
        return None
    return TopicRouteData.from_json(resp.body)


def _configs(tmp_path: Path, namesrv: str) -> tuple[BrokerConfig, StoreConfig]:
    broker = BrokerConfig(broker_name="broker-ctl", broker_cluster_name="CtlCluster", namesrv_addr=namesrv,
                          listen_port=10999, register_name_server_period_ms=1000,
                          register_broker_timeout_ms=3000, flush_consumer_offset_interval_ms=100)
    return broker, StoreConfig(store_path_root_dir=str(tmp_path / "store"))


def test_worker_protocol_and_registration(tmp_path: Path, namesrv: str) -> None:
    broker, store = _configs(tmp_path, namesrv)
    name = control_socket_name(broker.broker_name, new_boot_id())

    async def main() -> None:
        server = ControlServer(broker, store, boot_id="t")
        await server.start(name)
        ns = RemotingClient()
        w = FakeWorker(3)
        try:
            await w.connect(name)
            hello = await w.call(InternalCode.WORKER_HELLO)
            assert hello.code == ResponseCode.SUCCESS and hello.is_response
            # the tables arrive before the hello's response
            assert w.codes() == [InternalCode.TOPICS_CHANGED, InternalCode.GROUPS_CHANGED,
                                 InternalCode.SUBSCRIPTIONS_CHANGED]
            table = TopicConfigSerializeWrapper.from_json(w.pushed[0].body).topic_config_table
            assert {"TBW102", "SCHEDULE_TOPIC_XXXX", "CtlCluster", "broker-ctl"} <= set(table)

            # registered at start: TBW102 routes to this broker
            async def tbw_routed() -> bool:
                return await _route(ns, namesrv, "TBW102") is not None
            await _poll(tbw_routed, "TBW102 route")
            route = await _route(ns, namesrv, "TBW102")
            assert route is not None
            assert route.broker_datas[0].broker_addrs == {0: "127.0.0.1:10999"}
            assert route.broker_datas[0].cluster == "CtlCluster"
            assert route.queue_datas[0].perm == 7

            # a created topic is registered at once (well before the 1 s period... or any period)
            w.pushed.clear()
            resp = await w.call(RequestCode.UPDATE_AND_CREATE_TOPIC, {
                "topic": "TopicX", "defaultTopic": "TBW102", "readQueueNums": "4", "writeQueueNums": "4",
                "perm": "6", "topicFilterType": "SINGLE_TAG"})
            assert resp.code == ResponseCode.SUCCESS, resp.remark
            assert w.codes() == [InternalCode.TOPICS_CHANGED]

            async def topic_routed() -> bool:
                r = await _route(ns, namesrv, "TopicX")
                return r is not None and r.queue_datas[0].write_queue_nums == 4
            await _poll(topic_routed, "TopicX route")

            # heartbeat: retry topic created and registered, notify pushed to the client's connection
            w.pushed.clear()
            resp = await w.call(RequestCode.HEART_BEAT, body=HEARTBEAT, conn_id=11)
            assert resp.code == ResponseCode.SUCCESS
            pushes = [c for c in w.pushed if c.code == InternalCode.PUSH_TO_CLIENT]
            assert len(pushes) == 1 and pushes[0].ext_fields[X_CONN] == "11"
            inner = FrameDecoder().feed(pushes[0].body)[0]
            assert inner.code == RequestCode.NOTIFY_CONSUMER_IDS_CHANGED and inner.is_oneway
            assert inner.ext_fields == {"consumerGroup": "CG1"}

            async def retry_routed() -> bool:
                return await _route(ns, namesrv, "%RETRY%CG1") is not None
            await _poll(retry_routed, "%RETRY%CG1 route")
            resp = await w.call(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": "CG1"})
            assert orjson.loads(resp.body) == {"consumerIdList": ["127.0.0.1@77"]}

            # offsets: batched commits (oneway), then a query
            w.oneway(InternalCode.COMMIT_OFFSETS, body=encode_commit_offsets([("CG1", "TopicX", 2, 99)]))
            resp = await w.call(RequestCode.QUERY_CONSUMER_OFFSET,
                                {"consumerGroup": "CG1", "topic": "TopicX", "queueId": "2"})
            assert (resp.code, resp.ext_fields) == (ResponseCode.SUCCESS, {"offset": "99"})
            offsets_file = Path(store.store_path_root_dir) / "config" / "consumerOffset.json"

            async def offsets_persisted() -> bool:
                return offsets_file.exists() and b"99" in offsets_file.read_bytes()
            await _poll(offsets_persisted, "consumerOffset.json")

            # unknown code and bad input answered; the connection stays
            resp = await w.call(4242)
            assert resp.code == ResponseCode.REQUEST_CODE_NOT_SUPPORTED
            resp = await w.call(RequestCode.HEART_BEAT, body=b"not json")
            assert resp.code == ResponseCode.SYSTEM_ERROR

            # a second worker sends garbage: only its connection closes
            w2 = FakeWorker(4)
            await w2.connect(name)
            assert (await w2.call(InternalCode.WORKER_HELLO)).code == ResponseCode.SUCCESS
            assert w2.conn is not None
            w2.conn.send_raw(b"\x7f\xff\xff\xff garbage")
            await asyncio.wait_for(w2.conn.wait_closed(), 5)
            resp = await w.call(RequestCode.GET_ALL_TOPIC_CONFIG)
            assert "TopicX" in TopicConfigSerializeWrapper.from_json(resp.body).topic_config_table

            # the client's connection closes: the group empties
            w.oneway(InternalCode.CLIENT_CONNECTION_CLOSED, conn_id=11)
            resp = await w.call(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": "CG1"})
            assert resp.code == ResponseCode.SYSTEM_ERROR
        finally:
            if w.conn is not None:
                w.conn.close()
            await server.stop()
        # unregistered at stop: the broker's routes are gone from the NameServer
        assert await _route(ns, namesrv, "TopicX") is None
        await ns.close()

    _run(main)


def test_namesrv_down_is_not_fatal(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"   # nothing listens once closed
    broker, store = _configs(tmp_path, dead)
    name = control_socket_name(broker.broker_name, new_boot_id())

    async def main() -> None:
        server = ControlServer(broker, store)
        await server.start(name)
        try:
            async def a_round() -> bool:
                return server.registrar.rounds >= 1
            await _poll(a_round, "a registration round")
            w = FakeWorker(3)
            await w.connect(name)
            assert (await w.call(InternalCode.WORKER_HELLO)).code == ResponseCode.SUCCESS
            assert w.conn is not None
            w.conn.close()
        finally:
            await server.stop()

    _run(main)


# --- the Control child, forked -------------------------------------------------------------------


def _wait_pid(pid: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"control pid {pid} did not exit within {timeout_s} s")


def test_control_child_serves_and_stops_on_sigterm(tmp_path: Path, namesrv: str) -> None:
    broker, store = _configs(tmp_path, namesrv)
    boot_id = new_boot_id()
    control_buf = mmap.mmap(-1, control_block_size(4))
    supervisor_view = ControlBlock(control_buf, Role.SUPERVISOR, initialize=True, slot_count=4)
    qt_buf = mmap.mmap(-1, queue_table_size(64))
    init_queue_table(qt_buf, 64)
    child = Control(2, broker, store, control_buf, qt_buf, boot_id)
    child.supervisor_pid = os.getpid()
    name = control_socket_name(broker.broker_name, boot_id)
    pid = os.fork()
    if pid == 0:   # the child: never return into pytest
        code = 1
        try:
            code = child.bootstrap()
        finally:
            os._exit(code)
    try:
        async def main() -> None:
            w = FakeWorker(3)

            async def connected() -> bool:
                try:
                    await w.connect(name)
                    return True
                except OSError:
                    return False
            await _poll(connected, "control socket")
            assert (await w.call(InternalCode.WORKER_HELLO)).code == ResponseCode.SUCCESS
            w.oneway(InternalCode.COMMIT_OFFSETS, body=encode_commit_offsets([("G", "T", 0, 5)]))
            resp = await w.call(RequestCode.QUERY_CONSUMER_OFFSET, {"consumerGroup": "G", "topic": "T",
                                                                   "queueId": "0"})
            assert resp.ext_fields == {"offset": "5"}
            beat_pid, _, _ = supervisor_view.heartbeat(2)
            assert beat_pid == pid
            assert w.conn is not None
            w.conn.close()
        _run(main)
        os.kill(pid, signal.SIGTERM)
        assert _wait_pid(pid, 20) == 0
    except BaseException:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    doc: dict[str, Any] = orjson.loads((Path(store.store_path_root_dir) / "config" / "consumerOffset.json")
                                       .read_bytes())
    assert doc == {"offsetTable": {"T@G": {"0": 5}}}


def test_control_child_refuses_bad_config(tmp_path: Path) -> None:
    broker = BrokerConfig(namesrv_addr="no-port-here")
    store = StoreConfig(store_path_root_dir=str(tmp_path / "store"))
    control_buf = mmap.mmap(-1, control_block_size(4))
    ControlBlock(control_buf, Role.SUPERVISOR, initialize=True, slot_count=4)
    qt_buf = mmap.mmap(-1, queue_table_size(8))
    init_queue_table(qt_buf, 8)
    child = Control(2, broker, store, control_buf, qt_buf, new_boot_id())
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = child.bootstrap()
        finally:
            os._exit(code)
    assert _wait_pid(pid, 20) == 78
