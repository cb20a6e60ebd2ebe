"""Sends through a worker: checks and remarks, records as stored, batches, the put ring, the writer's
answers, SYNC_FLUSH waiting on the flushed offset, FLUSH_DISK_TIMEOUT, SYSTEM_BUSY, writer restarts.
The writer is faked (tests/unit/test_worker_rig.py): it drains the put ring and answers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rocketpy.broker.putwire import FLAG_BATCH, FLAG_WAIT, PutStatus
from rocketpy.config import BrokerConfig, FlushDiskType, StoreConfig
from rocketpy.protocol.batch import BatchItem, encode_batch_body
from rocketpy.protocol.bodies import TopicConfig
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.message import SysFlag, decode_record, format_properties, parse_properties
from rocketpy.protocol.msgid import decode_offset_msg_id, offset_msg_id
from rocketpy.protocol.remoting import RemotingCommand
from tests.unit.test_worker_rig import Client, Rig, run

PROPS = format_properties({"TAGS": "TagA", "KEYS": "k1 k2", "UNIQ_KEY": "ABC", "WAIT": "true"}) + "\x02"


def v2(client: Client, topic: str = "TopicA", body: bytes = b"hello", *, queue_id: Any = "1",
       props: str | None = PROPS, code: int = RequestCode.SEND_MESSAGE_V2, **extra: Any) -> RemotingCommand:
    ext: dict[str, Any] = {"a": "PG", "b": topic, "c": "TBW102", "d": "4", "e": queue_id, "f": "0",
                           "g": "1700000000000", "h": "7", "j": "0", "k": "false", "m": "false"}
    if props is not None:
        ext["i"] = props
    ext.update(extra)
    return client.request(code, ext, body)


def cpp_send(client: Client, body: bytes, *, batch: str = "0", props: str = "WAIT\x01true\x02",
             queue_id: Any = 2) -> RemotingCommand:
    """What the C++ wheel sends: code 10, long names, numbers as JSON numbers, booleans as "0"/"1"."""
    ext = {"producerGroup": "PG", "topic": "TopicA", "defaultTopic": "TBW102", "defaultTopicQueueNums": 4,
           "queueId": queue_id, "sysFlag": 0, "bornTimestamp": "1700000000001", "flag": 0,
           "properties": props, "reconsumeTimes": "0", "unitMode": "0", "batch": batch,
           "AccessKey": "", "OnsChannel": "ALIYUN", "Signature": "x"}
    return client.request(RequestCode.SEND_MESSAGE, ext, body, language="CPP", version=63)


def rig_for(flush: FlushDiskType = FlushDiskType.ASYNC_FLUSH, **store_kw: Any) -> Rig:
    return Rig(StoreConfig(store_path_root_dir="/nonexistent", flush_disk_type=flush, **store_kw))


def test_single_send_is_stored_as_encoded_and_answered_with_the_full_header() -> None:
    async def main() -> None:
        rig = rig_for()
        await rig.start()
        c = rig.client()
        r = await c.call(v2(c))
        assert r.code == ResponseCode.SUCCESS, r.remark
        assert r.ext_fields == {"msgId": offset_msg_id("192.168.7.7", 10911, 0), "queueId": "1",
                                "queueOffset": "0", "MSG_REGION": "DefaultRegion", "TRACE_ON": "true"}
        assert all(isinstance(v, str) for v in r.ext_fields.values())
        req, records = rig.writer.seen[0]
        assert (req.topic, req.queue_id, req.record_count, req.flags, req.generation) == ("TopicA", 1, 1, 0, 1)
        rec = decode_record(records[0], check_crc=True)
        assert (rec.topic, rec.body, rec.queue_id, rec.flag, rec.born_timestamp) == (
            "TopicA", b"hello", 1, 7, 1700000000000)
        assert (rec.born_host, rec.born_port, rec.store_host, rec.store_port) == (
            "10.1.2.3", 5555, "192.168.7.7", 10911)
        props = parse_properties(rec.properties)
        assert props == {"TAGS": "TagA", "KEYS": "k1 k2", "UNIQ_KEY": "ABC", "CLUSTER": "DefaultCluster"}
        assert decode_offset_msg_id(r.ext_fields["msgId"]) == ("192.168.7.7", 10911, 0)
        r2 = await c.call(v2(c, body=b"second"))
        assert r2.ext_fields["queueOffset"] == "1"
        assert r2.ext_fields["msgId"] == offset_msg_id("192.168.7.7", 10911, len(records[0]))
        await rig.stop()
    run(main())


def test_cpp_send_with_numeric_ext_values_and_batch_one_is_split() -> None:
    async def main() -> None:
        rig = rig_for()
        await rig.start()
        c = rig.client()
        items = [BatchItem(0, b"m0", "KEYS\x01a\x02"), BatchItem(3, b"m1", "TAGS\x01TagB"), BatchItem(0, b"", "")]
        r = await c.call(cpp_send(c, encode_batch_body(items), batch="1"))
        assert r.code == ResponseCode.SUCCESS, r.remark
        req, records = rig.writer.seen[0]
        assert req.record_count == 3 and req.flags & FLAG_BATCH and req.queue_id == 2
        decoded = [decode_record(x, check_crc=True) for x in records]
        assert [d.body for d in decoded] == [b"m0", b"m1", b""]
        assert [d.flag for d in decoded] == [0, 3, 0]
        assert [parse_properties(d.properties) for d in decoded] == [
            {"KEYS": "a", "CLUSTER": "DefaultCluster"}, {"TAGS": "TagB", "CLUSTER": "DefaultCluster"},
            {"CLUSTER": "DefaultCluster"}]
        ids = r.ext_fields["msgId"].split(",")
        phys = [0, len(records[0]), len(records[0]) + len(records[1])]
        assert ids == [offset_msg_id("192.168.7.7", 10911, p) for p in phys]
        assert (r.ext_fields["queueId"], r.ext_fields["queueOffset"]) == ("2", "0")
        r = await c.call(cpp_send(c, b"plain"))             # batch "0": one message
        assert r.code == ResponseCode.SUCCESS and rig.writer.seen[1][0].record_count == 1
        await rig.stop()
    run(main())


def test_routing_is_on_the_batch_field_not_the_code() -> None:
    async def main() -> None:
        rig = rig_for()
        await rig.start()
        c = rig.client()
        body = encode_batch_body([BatchItem(0, b"x", ""), BatchItem(0, b"y", "")])
        r = await c.call(v2(c, body=body, code=RequestCode.SEND_BATCH_MESSAGE, m="true"))
        assert r.code == ResponseCode.SUCCESS and rig.writer.seen[-1][0].record_count == 2
        r = await c.call(v2(c, body=body, code=RequestCode.SEND_BATCH_MESSAGE, m="false"))
        assert r.code == ResponseCode.SUCCESS and rig.writer.seen[-1][0].record_count == 1
        assert decode_record(rig.writer.seen[-1][1][0]).body == body
        r = await c.call(v2(c, body=b"\x00\x00\x00\x05", m="true"))
        assert r.code == ResponseCode.MESSAGE_ILLEGAL and "batch" in r.remark
        await rig.stop()
    run(main())


def test_sync_flush_answers_only_once_the_flushed_offset_covers_the_put() -> None:
    async def main() -> None:
        rig = rig_for(FlushDiskType.SYNC_FLUSH)
        rig.writer.auto_flush = False
        await rig.start()
        c = rig.client()
        c.send(v2(c))
        await c.nothing(0.05)
        assert rig.writer.seen[0][0].flags & FLAG_WAIT and rig.server.send.flush_waiters
        rig.writer.flush()
        (r,) = await c.responses(1)
        assert r.code == ResponseCode.SUCCESS and r.ext_fields["queueOffset"] == "0"
        # WAIT=false: answered once stored, without the flush
        r = await c.call(v2(c, props="WAIT\x01false"))
        assert r.code == ResponseCode.SUCCESS and not rig.writer.seen[-1][0].flags & FLAG_WAIT
        await rig.stop()
    run(main())


def test_flush_disk_timeout_carries_the_full_header() -> None:
    async def main() -> None:
        rig = rig_for(FlushDiskType.SYNC_FLUSH, sync_flush_timeout_ms=50)
        rig.writer.auto_flush = False
        await rig.start()
        c = rig.client()
        c.send(v2(c))
        await c.nothing(0.02)
        rig.server.send.check_timeouts(time.monotonic() + 1)
        (r,) = await c.responses(1)
        assert r.code == ResponseCode.FLUSH_DISK_TIMEOUT
        assert set(r.ext_fields) == {"msgId", "queueId", "queueOffset", "MSG_REGION", "TRACE_ON"}
        await rig.stop()
    run(main())


def test_a_full_put_ring_is_system_busy_and_the_writer_bell_rings_once_per_turn() -> None:
    async def main() -> None:
        rig = Rig(StoreConfig(store_path_root_dir="/x"), put_ring_capacity=4096)
        await rig.start(fake_writer=False)
        c = rig.client()
        c.send(*[v2(c, body=bytes(700)) for _ in range(8)])
        got = await c.responses(4)                          # 4 puts of ~950 bytes fill 4 KiB
        assert {r.code for r in got} == {ResponseCode.SYSTEM_BUSY}
        assert got[0].remark.startswith("[REJECTREQUEST]system busy")
        await asyncio.sleep(0.01)
        assert rig.writer_bell.clear() == 1, "one ring for the whole turn"
        assert len(rig.server.send.pending) == 4
        rig.writer.turn()
        assert [r.code for r in await c.responses(4)] == [ResponseCode.SUCCESS] * 4
        await rig.stop()
    run(main())


@pytest.mark.parametrize("status, code", [
    (PutStatus.MESSAGE_ILLEGAL, ResponseCode.MESSAGE_ILLEGAL),
    (PutStatus.SERVICE_NOT_AVAILABLE, ResponseCode.SERVICE_NOT_AVAILABLE),
    (PutStatus.STALE_GENERATION, ResponseCode.SYSTEM_ERROR),
    (PutStatus.STORE_ERROR, ResponseCode.SYSTEM_ERROR),
])
def test_writer_statuses_map_to_response_codes(status: PutStatus, code: int) -> None:
    async def main() -> None:
        rig = rig_for()
        rig.writer.status = status
        await rig.start()
        c = rig.client()
        r = await c.call(v2(c))
        assert r.code == code and r.remark and "msgId" not in r.ext_fields
        await rig.stop()
    run(main())


def test_writer_restart_fails_unanswered_puts_so_clients_retry() -> None:
    async def main() -> None:
        rig = rig_for()
        rig.writer.paused = True
        await rig.start()
        c = rig.client()
        c.send(v2(c))
        await c.nothing(0.02)
        rig.writer.publish(generation=2)
        rig.server.send.check_timeouts()
        (r,) = await c.responses(1)
        assert r.code == ResponseCode.SYSTEM_ERROR and "restarted" in r.remark
        rig.writer.paused = False
        rig.writer.turn()                       # the old put's late answer is ignored
        await c.nothing(0.02)
        r = await c.call(v2(c))
        assert r.code == ResponseCode.SUCCESS and rig.writer.seen[-1][0].generation == 2
        await rig.stop()
    run(main())


def test_checks_and_their_remarks() -> None:
    async def main() -> None:
        rig = Rig(StoreConfig(store_path_root_dir="/x", max_message_size=1024))
        await rig.start()
        c = rig.client()
        r = await c.call(v2(c, topic="bad topic!"))
        assert r.code == ResponseCode.SYSTEM_ERROR and "illegal characters" in r.remark
        r = await c.call(v2(c, topic="T" * 128))
        assert r.code == ResponseCode.SYSTEM_ERROR and "127" in r.remark
        r = await c.call(v2(c, topic="SCHEDULE_TOPIC_XXXX"))
        assert r.code == ResponseCode.NO_PERMISSION and "forbidden" in r.remark
        r = await c.call(v2(c, queue_id="4"))
        assert r.code == ResponseCode.SYSTEM_ERROR and "queueId[4] is illegal" in r.remark
        r = await c.call(v2(c, body=bytes(1025)))
        assert r.code == ResponseCode.MESSAGE_ILLEGAL and "1025" in r.remark and "1024" in r.remark
        r = await c.call(v2(c, props="K\x01" + "v" * 33000))
        assert r.code == ResponseCode.MESSAGE_ILLEGAL and "32767" in r.remark
        r = await c.call(c.request(RequestCode.SEND_MESSAGE_V2, {"a": "PG"}))
        assert r.code == ResponseCode.SYSTEM_ERROR and "'b'" in r.remark
        r = await c.call(v2(c, topic="NoSuchTopic"))        # no control to auto-create it
        assert r.code == ResponseCode.SYSTEM_ERROR and "NoSuchTopic" in r.remark
        assert rig.writer.seen == []
        for _ in range(20):                                  # queueId < 0: a random writable queue
            r = await c.call(v2(c, queue_id=-1))
            assert r.code == ResponseCode.SUCCESS and 0 <= int(r.ext_fields["queueId"]) < 4
            assert int(r.ext_fields["queueId"]) == rig.writer.seen[-1][0].queue_id
        await rig.stop()
    run(main())


def test_broker_and_topic_permissions() -> None:
    async def main() -> None:
        rig = Rig(StoreConfig(store_path_root_dir="/x"), BrokerConfig(broker_permission=4, broker_ip1="1.2.3.4"))
        await rig.start()
        c = rig.client()
        r = await c.call(v2(c))
        assert r.code == ResponseCode.NO_PERMISSION and "1.2.3.4" in r.remark
        await rig.stop()
        rig = Rig(topics={"RO": TopicConfig("RO", 4, 4, 4)})
        await rig.start()
        c = rig.client()
        r = await c.call(v2(c, topic="RO"))
        assert r.code == ResponseCode.NO_PERMISSION
        await rig.stop()
    run(main())


class FakeControl:
    ready = True

    def __init__(self, answer: RemotingCommand) -> None:
        self.answer = answer
        self.asked: list[RemotingCommand] = []

    async def request(self, cmd: RemotingCommand, **_: Any) -> RemotingCommand:
        self.asked.append(cmd)
        return self.answer


def test_unknown_topic_is_auto_created_through_control_or_refused_with_its_remark() -> None:
    async def main() -> None:
        rig = rig_for()
        await rig.start()
        c = rig.client()
        created = TopicConfig("NewTopic", 4, 4, 6)
        control = FakeControl(RemotingCommand(code=0, flag=1, body=created.to_json()))
        rig.server.send.control = control  # type: ignore[assignment]
        r = await c.call(v2(c, topic="NewTopic", queue_id="3"))
        assert r.code == ResponseCode.SUCCESS and rig.ctx.topics["NewTopic"] == created
        assert control.asked[0].ext_fields == {"topic": "NewTopic", "defaultTopic": "TBW102",
                                               "defaultTopicQueueNums": "4"}
        refusal = "topic[Nope] not exist, apply first please!"
        rig.server.send.control = FakeControl(RemotingCommand(code=17, flag=1, remark=refusal))  # type: ignore
        r = await c.call(v2(c, topic="Nope"))
        assert (r.code, r.remark) == (ResponseCode.TOPIC_NOT_EXIST, refusal)
        await rig.stop()
    run(main())


def test_a_half_message_is_parked_in_the_half_topic_with_its_transaction_bits_reset() -> None:
    async def main() -> None:
        rig = rig_for()
        await rig.start()
        c = rig.client()
        r = await c.call(v2(c, props="TRAN_MSG\x01true\x02PGROUP\x01PG", f=str(int(SysFlag.TRANSACTION_PREPARED))))
        assert r.code == ResponseCode.SUCCESS
        req, records = rig.writer.seen[-1]
        assert req.sys_flag & 0xC == 0 and decode_record(records[0]).sys_flag & 0xC == 0
        rec = decode_record(records[0])
        assert (req.topic, rec.topic, rec.queue_id) == ("RMQ_SYS_TRANS_HALF_TOPIC", "RMQ_SYS_TRANS_HALF_TOPIC", 0)
        assert parse_properties(rec.properties)["REAL_TOPIC"] == "TopicA"
        await rig.stop()
    run(main())


@pytest.mark.parametrize(("delay", "topic", "queue_id", "stored_delay"), [
    ("3", "SCHEDULE_TOPIC_XXXX", 2, "3"),
    ("1", "SCHEDULE_TOPIC_XXXX", 0, "1"),
    ("99", "SCHEDULE_TOPIC_XXXX", 2, "3"),        # capped at the highest level (3 configured)
    ("0", "TopicA", 1, "0"),
    ("-2", "TopicA", 1, "-2"),
    ("x", "TopicA", 1, "x"),
])
def test_a_delayed_message_is_parked_in_the_schedule_topic_with_its_real_topic_and_queue(
        delay: str, topic: str, queue_id: int, stored_delay: str) -> None:
    async def main() -> None:
        rig = rig_for(message_delay_level="1s 2s 3s")
        await rig.start()
        c = rig.client()
        r = await c.call(v2(c, props=f"DELAY\x01{delay}\x02TAGS\x01t\x02WAIT\x01true"))
        assert r.code == ResponseCode.SUCCESS
        assert r.ext_fields["queueId"] == "1"             # the client is told its own queue
        req, records = rig.writer.seen[-1]
        rec = decode_record(records[0])
        props = parse_properties(rec.properties)
        assert (req.topic, req.queue_id, rec.topic, rec.queue_id) == (topic, queue_id, topic, queue_id)
        assert props["DELAY"] == stored_delay and props["TAGS"] == "t" and "WAIT" not in props
        if topic == "SCHEDULE_TOPIC_XXXX":
            assert (props["REAL_TOPIC"], props["REAL_QID"]) == ("TopicA", "1")
        else:
            assert "REAL_TOPIC" not in props and "REAL_QID" not in props
        await rig.stop()
    run(main())


def test_put_record_parks_a_delayed_message_too() -> None:
    async def main() -> None:
        rig = rig_for(message_delay_level="1s 2s 3s")
        await rig.start()
        future = rig.server.send.put_record("%RETRY%G", 0, b"x", "DELAY\x012\x02ORIGIN_MESSAGE_ID\x01M",
                                            born_timestamp_ms=1, born_ip=bytes(4), born_port=1)
        r = await asyncio.wait_for(future, 2)
        assert r.code == ResponseCode.SUCCESS and r.ext_fields["queueId"] == "0"
        rec = decode_record(rig.writer.seen[-1][1][0])
        props = parse_properties(rec.properties)
        assert (rec.topic, rec.queue_id) == ("SCHEDULE_TOPIC_XXXX", 1)
        assert (props["REAL_TOPIC"], props["REAL_QID"], props["ORIGIN_MESSAGE_ID"]) == ("%RETRY%G", "0", "M")
        await rig.stop()
    run(main())


@pytest.mark.parametrize(("reconsume", "max_times", "topic"), [
    ("0", None, "%RETRY%G"), ("15", None, "%RETRY%G"), ("16", None, "%DLQ%G"),
    ("2", "3", "%RETRY%G"), ("3", "3", "%DLQ%G"), ("4", "3", "%DLQ%G"),
])
def test_a_client_send_to_a_retry_topic_past_the_limit_goes_to_the_dlq(reconsume: str, max_times: str | None,
                                                                         topic: str) -> None:
    async def main() -> None:
        rig = rig_for(message_delay_level="1s 2s 3s")
        rig.ctx.set_topics({**rig.ctx.topics, "%RETRY%G": TopicConfig("%RETRY%G", 1, 1, 6)})
        await rig.start()
        created = TopicConfig("%DLQ%G", 1, 1, 6)
        control = FakeControl(RemotingCommand(code=0, flag=1, body=created.to_json()))
        rig.server.send.control = control  # type: ignore[assignment]
        c = rig.client()
        extra = {"j": reconsume} if max_times is None else {"j": reconsume, "l": max_times}
        r = await c.call(v2(c, topic="%RETRY%G", queue_id="0", props="DELAY\x013\x02RETRY_TOPIC\x01T",
                            **extra))
        assert r.code == ResponseCode.SUCCESS, r.remark
        rec = decode_record(rig.writer.seen[-1][1][0])
        props = parse_properties(rec.properties)
        if topic == "%DLQ%G":
            assert (rec.topic, rec.queue_id, "DELAY" in props) == ("%DLQ%G", 0, False)
            assert control.asked[0].ext_fields == {"topic": "%DLQ%G"}
        else:
            assert (rec.topic, props["REAL_TOPIC"]) == ("SCHEDULE_TOPIC_XXXX", "%RETRY%G")
        assert rec.reconsume_times == int(reconsume) and props["RETRY_TOPIC"] == "T"
        await rig.stop()
    run(main())


def test_a_retry_send_of_an_unknown_group_is_refused_without_auto_create() -> None:
    async def main() -> None:
        rig = Rig(StoreConfig(store_path_root_dir="/nonexistent"),
                  BrokerConfig(broker_ip1="192.168.7.7", listen_port=10911, auto_create_subscription_group=False),
                  topics={"%RETRY%G": TopicConfig("%RETRY%G", 1, 1, 6)})
        await rig.start()
        c = rig.client()
        r = await c.call(v2(c, topic="%RETRY%G", queue_id="0", j="20"))
        assert r.code == ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST and "G" in r.remark
        await rig.stop()
    run(main())


def test_ipv6_and_mapped_peers() -> None:
    async def main() -> None:
        rig = rig_for()
        await rig.start()
        mapped = rig.client(2, ("::ffff:10.9.8.7", 4000, 0, 0))
        r = await mapped.call(v2(mapped))
        rec = decode_record(rig.writer.seen[-1][1][0])
        assert r.code == 0 and rec.born_host == "10.9.8.7" and not rec.sys_flag & SysFlag.BORNHOST_V6
        v6 = rig.client(3, ("2001:db8::1", 4001, 0, 0))
        r = await v6.call(v2(v6))
        rec = decode_record(rig.writer.seen[-1][1][0])
        assert r.code == 0 and rec.born_host == "2001:db8::1" and rec.sys_flag & SysFlag.BORNHOST_V6
        await rig.stop()
    run(main())


def test_put_record_stores_a_broker_made_message_and_resolves_after_the_flush() -> None:
    async def main() -> None:
        rig = rig_for(FlushDiskType.SYNC_FLUSH)
        rig.writer.auto_flush = False
        await rig.start()
        send = rig.server.send
        future = send.put_record("%RETRY%G", 0, b"again", format_properties({"ORIGIN_MESSAGE_ID": "X"}),
                                 flag=3, born_timestamp_ms=1700000000123, born_ip=bytes([10, 0, 0, 9]),
                                 born_port=4242, reconsume_times=2)
        await asyncio.sleep(0.05)
        assert not future.done(), "answered before the flush under SYNC_FLUSH"
        rig.writer.flush()
        response = await asyncio.wait_for(future, 2)
        assert response.code == ResponseCode.SUCCESS, response.remark
        assert response.ext_fields["queueId"] == "0" and response.ext_fields["queueOffset"] == "0"
        req, records = rig.writer.seen[0]
        assert (req.topic, req.queue_id, req.record_count) == ("%RETRY%G", 0, 1)
        rec = decode_record(records[0], check_crc=True)
        assert (rec.topic, rec.body, rec.flag, rec.reconsume_times, rec.born_host, rec.born_port) == (
            "%RETRY%G", b"again", 3, 2, "10.0.0.9", 4242)
        assert parse_properties(rec.properties) == {"ORIGIN_MESSAGE_ID": "X"}
        too_big = send.put_record("T", 0, b"x" * (send.max_message_size + 1), "", born_timestamp_ms=0,
                                  born_ip=bytes(4), born_port=0)
        assert (await too_big).code == ResponseCode.MESSAGE_ILLEGAL
        await rig.stop()
    run(main())
