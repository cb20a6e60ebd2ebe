"""A worker forwarding to a real ControlServer over an abstract unix socket, in one process:
WORKER_HELLO and the tables, forwarded requests re-stamped with the client's opaque, oneway never
answered, auto-create, pushes to a client connection, connection-closed notices, offsets batched."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from rocketpy.broker.control.server import ControlServer
from rocketpy.broker.internal import InternalCode, control_socket_name
from rocketpy.broker.worker import WorkerServer
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.ipc.ring import RingConsumer, RingProducer
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.remoting import FLAG_ONEWAY, RemotingCommand, encode_frame
from tests.unit.test_worker_rig import Rig, run

HEARTBEAT = (b'{"clientID":"10.0.0.1@1","producerDataSet":[{"groupName":"PG"}],"consumerDataSet":'
             b'[{"groupName":"CG","consumeType":1,"messageModel":1,"consumeFromWhere":0,'
             b'"subscriptionDataSet":[{"topic":"TopicA","subString":"*"}]}]}')


async def wait_for(cond: Any, timeout_s: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def test_forwarding_through_control(tmp_path) -> None:
    async def main() -> None:
        broker = BrokerConfig(broker_ip1="192.168.7.7")
        store = StoreConfig(store_path_root_dir=str(tmp_path))
        control = ControlServer(broker, store)
        name = control_socket_name(broker.broker_name, f"{os.getpid():x}")
        await control.start(name)
        rig = Rig(store, broker, topics={})
        rig.server = WorkerServer(rig.ctx, RingProducer(rig.put_buf), RingConsumer(rig.resp_buf), rig.writer_bell,
                                  rig.response_bell, rig.pull_bell, control_socket=name)
        rig.writer.__init__(rig)
        await rig.start()
        try:
            assert rig.server.link is not None and rig.server.link.ready
            assert "TBW102" in rig.ctx.topics and "TopicA" not in rig.ctx.topics   # the table came with hello
            assert rig.ctx.groups                                                   # and the groups
            c = rig.client(conn_id=7)
            hb = c.request(RequestCode.HEART_BEAT, {"AccessKey": ""}, HEARTBEAT, language="CPP", version=63)
            r = await c.call(hb)
            assert r.code == ResponseCode.SUCCESS and r.opaque == hb.opaque
            await wait_for(lambda: "%RETRY%CG" in rig.ctx.topics)                   # TOPICS_CHANGED
            r = await c.call(c.request(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": "CG"}))
            assert r.code == ResponseCode.SUCCESS and b"10.0.0.1@1" in r.body
            # a send to an unknown topic auto-creates it from TBW102 through control
            send = c.request(RequestCode.SEND_MESSAGE_V2, {
                "a": "PG", "b": "TopicA", "c": "TBW102", "d": 4, "e": 0, "f": 0, "g": "1", "h": 0}, b"x")
            r = await c.call(send)
            assert r.code == ResponseCode.SUCCESS, r.remark
            assert rig.ctx.topics["TopicA"].write_queue_nums == 4
            # offsets: oneway update is never answered; a sync one is; the query sees it
            upd = {"consumerGroup": "CG", "topic": "TopicA", "queueId": "0", "commitOffset": "5"}
            c.send(c.request(RequestCode.UPDATE_CONSUMER_OFFSET, upd, flag=FLAG_ONEWAY))
            await c.nothing(0.05)
            upd["commitOffset"] = "6"
            r = await c.call(c.request(RequestCode.UPDATE_CONSUMER_OFFSET, upd))
            assert r.code == ResponseCode.SUCCESS
            r = await c.call(c.request(RequestCode.QUERY_CONSUMER_OFFSET,
                                       {"consumerGroup": "CG", "topic": "TopicA", "queueId": "0"}))
            assert r.ext_fields == {"offset": "6"}
            # offsets batched from pulls reach control as COMMIT_OFFSETS
            rig.server.offsets.add("CG", "TopicA", 1, 42)
            rig.server.offsets.flush()
            await wait_for(lambda: control.offsets.query_for_client("CG", "TopicA", 1).offset == 42)
            # control pushes a frame to the client connection
            push = RemotingCommand.request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, {"consumerGroup": "CG"},
                                           oneway=True)
            control.push_to_client(rig.ctx.slot, 7, encode_frame(push))
            await wait_for(lambda: c._collect() or len(c.pushed) >= 2)
            got = c.pushed[-1]
            assert c.pushed[0].code == RequestCode.NOTIFY_CONSUMER_IDS_CHANGED    # the group changed
            assert got.code == RequestCode.NOTIFY_CONSUMER_IDS_CHANGED and got.ext_fields == {"consumerGroup": "CG"}
            # the client goes away: control hears of it and drops the consumer
            c.conn.connection_lost(None)
            await wait_for(lambda: not control.consumers.consumer_ids("CG"))
        finally:
            await rig.stop()
            await control.stop(unregister=False)
    run(main())


def test_control_down_answers_system_error_and_oneway_is_dropped(tmp_path) -> None:
    async def main() -> None:
        rig = Rig(StoreConfig(store_path_root_dir=str(tmp_path)))
        rig.server = WorkerServer(rig.ctx, RingProducer(rig.put_buf), RingConsumer(rig.resp_buf), rig.writer_bell,
                                  rig.response_bell, rig.pull_bell, control_socket="\0rocketpy.test.nobody.control")
        import rocketpy.broker.worker as worker_module
        worker_module.CONTROL_HELLO_WAIT_S, saved = 0.05, worker_module.CONTROL_HELLO_WAIT_S
        try:
            await rig.start()
        finally:
            worker_module.CONTROL_HELLO_WAIT_S = saved
        c = rig.client()
        r = await c.call(c.request(RequestCode.HEART_BEAT, None, HEARTBEAT))
        assert r.code == ResponseCode.SYSTEM_ERROR and "control" in r.remark
        c.send(c.request(RequestCode.UPDATE_CONSUMER_OFFSET, {"consumerGroup": "g"}, flag=FLAG_ONEWAY))
        await c.nothing(0.02)
        assert InternalCode.WORKER_HELLO      # the link keeps retrying in the background
        await rig.stop()
    run(main())


def test_link_close_racing_the_hello_answer_returns(tmp_path) -> None:
    """A worker told to stop while control's WORKER_HELLO answer is being read: close() cancels the
    link task in the same loop turn that completes the hello future. asyncio.wait_for (Python 3.11)
    then returns the result and drops the cancellation; close() must still return (found by
    tests/crash/test_broker_kill.py: a restarted worker hung in drain until SIGKILL)."""
    from rocketpy.broker.handlers.forward import ControlLink

    async def main() -> None:
        broker = BrokerConfig()
        store = StoreConfig(store_path_root_dir=str(tmp_path))
        control = ControlServer(broker, store)
        name = control_socket_name(broker.broker_name, f"{os.getpid():x}r")
        await control.start(name)
        link = ControlLink(name, 3, lambda cmd: None)
        closing: list[asyncio.Task[None]] = []
        original = link.data_received

        def data_received(data: bytes) -> None:
            original(data)                          # completes the hello future ...
            if not closing:                         # ... and the worker stops in the same turn
                closing.append(asyncio.ensure_future(link.close()))

        link.data_received = data_received  # type: ignore[method-assign]
        try:
            link.start()
            await wait_for(lambda: bool(closing))
            done, _ = await asyncio.wait(closing, timeout=3)
            assert done, "ControlLink.close() hung after its cancellation was swallowed"
        finally:
            if link._task is not None and not link._task.done():
                link._lost.set()
                link._task.cancel()
            await control.stop(unregister=False)
    run(main())
