"""The SDK core without a broker: config, messages, the loop thread, broker-request dispatch."""

from __future__ import annotations

import asyncio
import os
import zlib

import pytest

from rocketpy.client._loop import LoopThread, acquire_shared_loop, release_shared_loop
from rocketpy.client.config import ClientConfig, parse_namesrv_addr
from rocketpy.client.instance import ClientInstance, format_offset_table, parse_offset_table
from rocketpy.client.message import Message, MessageExt, MessageQueue, decode_messages
from rocketpy.client.remoting import RemotingConnection
from rocketpy.errors import ClientStateError, ConfigError, MessageIllegalError, RemotingTimeoutError
from rocketpy.protocol import headers as h
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.message import MessageRecord, SysFlag, encode_record, format_properties
from rocketpy.protocol.msgid import offset_msg_id
from rocketpy.protocol.remoting import RemotingCommand


def test_namesrv_addr_forms_and_errors(monkeypatch):
    assert parse_namesrv_addr("a:1; b:2;") == ("a:1", "b:2")
    assert parse_namesrv_addr(["a:1", "b:2"]) == ("a:1", "b:2")
    with pytest.raises(ConfigError, match="host:port"):
        parse_namesrv_addr("nohost")
    monkeypatch.setenv("NAMESRV_ADDR", "env:9876")
    assert ClientConfig().namesrv_addr == ("env:9876",)
    monkeypatch.delenv("NAMESRV_ADDR")
    with pytest.raises(ConfigError, match="NAMESRV_ADDR"):
        ClientConfig()


def test_client_id_uses_pid_for_the_default_instance_name():
    cfg = ClientConfig.make("h:1", client_ip="10.0.0.1")
    assert cfg.client_id() == f"10.0.0.1@{os.getpid()}"
    assert ClientConfig.make("h:1", client_ip="10.0.0.1", instance_name="x", unit_name="u").client_id() == "10.0.0.1@x@u"
    assert cfg.poll_name_server_interval_ms == 30_000 and cfg.heartbeat_broker_interval_ms == 30_000
    assert cfg.persist_consumer_offset_interval_ms == 5_000


def test_message_properties():
    m = Message("T", b"x", tags="A", keys=["k1", "k2"], delay_level=3).with_property("color", "red")
    assert (m.tags, m.keys, m.delay_level, m.user_properties) == ("A", ["k1", "k2"], 3, {"color": "red"})
    assert m.properties_text().endswith("WAIT\x01true")
    m.delay_level = 0
    assert "DELAY" not in m.properties
    with pytest.raises(MessageIllegalError, match="reserved"):
        m.with_property("UNIQ_KEY", "x")
    with pytest.raises(MessageIllegalError, match="bytes"):
        Message("T", "text")  # type: ignore[arg-type]


def test_message_queue_is_ordered_and_hashable():
    a, b = MessageQueue("T", "b", 1), MessageQueue("T", "a", 2)
    assert sorted([a, b]) == [b, a]
    assert {a: 1}[MessageQueue("T", "b", 1)] == 1


def _record(body: bytes, sys_flag: int = 0, props: dict[str, str] | None = None) -> bytes:
    return bytes(encode_record(MessageRecord(
        topic="T", body=body, queue_id=2, queue_offset=7, phys_offset=1234, sys_flag=sys_flag,
        store_host="127.0.0.1", store_port=10911, properties=format_properties(props or {}))))


def test_pull_body_decoding_inflates_and_names_ids():
    raw = b"y" * 10_000
    body = _record(zlib.compress(raw), SysFlag.COMPRESSED, {"UNIQ_KEY": "AB" * 16, "TAGS": "t"}) + _record(b"plain")
    first, second = decode_messages(body, "broker-a")
    assert first.body == raw and first.msg_id == "AB" * 16 and first.tags == "t"
    assert first.offset_msg_id == offset_msg_id("127.0.0.1", 10911, 1234)
    assert second.msg_id == second.offset_msg_id and second.body == b"plain"
    assert first.message_queue == MessageQueue("T", "broker-a", 2) and first.queue_offset == 7


def test_offset_table_reads_fastjson_object_keys():
    table = {MessageQueue("T", "b", 0): 42, MessageQueue("T", "b", 3): -1}
    assert parse_offset_table(format_offset_table(table)) == table
    java = b'{"offsetTable":{{"brokerName":"broker-a","queueId":1,"topic":"TopicTest"}:100}}'
    assert parse_offset_table(java) == {MessageQueue("TopicTest", "broker-a", 1): 100}


def test_loop_thread_runs_and_refuses_reentry():
    lt = LoopThread()
    try:
        assert lt.run(asyncio.sleep(0, "done"), 5) == "done"
        with pytest.raises(RemotingTimeoutError):
            lt.run(asyncio.sleep(30), 0.05)

        async def inner() -> None:
            lt.run(asyncio.sleep(0), 1)
        with pytest.raises(ClientStateError, match="inside its own event loop"):
            lt.run(inner(), 5)
    finally:
        lt.stop()
    with pytest.raises(ClientStateError):
        lt.spawn(asyncio.sleep(0))


def test_shared_loop_is_reference_counted():
    a = acquire_shared_loop()
    b = acquire_shared_loop()
    assert a is b
    release_shared_loop(a)
    assert a.is_running
    release_shared_loop(b)
    assert not a.is_running
    c = acquire_shared_loop()
    assert c is not a and c.is_running
    release_shared_loop(c)


class _Consumer:
    def __init__(self) -> None:
        self.changed = 0
        self.reset: tuple[str, dict[MessageQueue, int]] | None = None

    def consumer_data(self) -> dict[str, object]:
        return {"groupName": "CG", "subscriptionDataSet": [{"topic": "T"}]}

    async def on_consumer_ids_changed(self) -> None:
        self.changed += 1

    def on_reset_offset(self, topic: str, table: dict[MessageQueue, int]) -> None:
        self.reset = (topic, table)

    def running_info(self) -> dict[str, object]:
        return {"properties": {"x": "1"}}


def test_broker_requests_reach_the_registered_hooks():
    async def main() -> None:
        inst = await ClientInstance.get(ClientConfig.make("127.0.0.1:1", instance_name="hooks"))
        hooks = _Consumer()
        inst.register_consumer("CG", hooks)
        with pytest.raises(ClientStateError, match="already registered"):
            inst.register_consumer("CG", _Consumer())
        conn = RemotingConnection("127.0.0.1:10911")

        async def serve(_: object, cmd: RemotingCommand) -> RemotingCommand | None:
            return await inst._serve(conn, cmd)
        notify = RemotingCommand.request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED,
                                         h.NotifyConsumerIdsChangedRequestHeader("CG").to_ext(), oneway=True)
        assert await serve(None, notify) is None  # type: ignore[arg-type]
        assert hooks.changed == 1
        table = {MessageQueue("T", "b", 1): 5}
        reset = RemotingCommand.request(RequestCode.RESET_CONSUMER_CLIENT_OFFSET,
                                        h.ResetOffsetRequestHeader("T", "CG", 0, True).to_ext(),
                                        format_offset_table(table))
        assert (await serve(None, reset)).code == ResponseCode.SUCCESS  # type: ignore[arg-type,union-attr]
        assert hooks.reset == ("T", table)
        info = RemotingCommand.request(RequestCode.GET_CONSUMER_RUNNING_INFO,
                                       h.GetConsumerRunningInfoRequestHeader("CG", inst.client_id).to_ext())
        resp = await serve(None, info)  # type: ignore[arg-type]
        assert resp is not None and resp.code == ResponseCode.SUCCESS and b'"x":"1"' in resp.body
        other = await serve(None, RemotingCommand.request(9999))  # type: ignore[arg-type]
        assert other is not None and other.code == ResponseCode.REQUEST_CODE_NOT_SUPPORTED
        assert inst.heartbeat_data()["consumerDataSet"] == [hooks.consumer_data()]
        await inst.release(hooks)
        assert inst.closed
        with pytest.raises(ClientStateError):
            await inst.topic_route("T")

    asyncio.run(main())


def test_from_record_keeps_a_bad_store_host_readable():
    rec = MessageRecord(topic="T", body=b"b", store_host="127.0.0.1", store_port=1)
    assert MessageExt.from_record(rec).offset_msg_id == offset_msg_id("127.0.0.1", 1, 0)
