"""PullMessageProcessor's subscription logic in the worker: the pull's own subscription or the one
registered by heartbeat (SUBSCRIPTIONS_CHANGED from control), in RocketMQ's order of checks and
codes, and SQL92 filtering on the records' properties read from the mapped CommitLog."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rocketpy.broker.control.groups import SubscriptionGroupConfig
from rocketpy.broker.filter.subscriptions import decode_subscriptions, encode_subscriptions
from rocketpy.broker.internal import InternalCode
from rocketpy.config import BrokerConfig
from rocketpy.protocol.bodies import (
    EXPRESSION_TYPE_SQL92,
    MessageModel,
    SubscriptionData,
    build_subscription,
)
from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.message import MessageRecord, encode_record, format_properties, iter_records
from rocketpy.protocol.remoting import RemotingCommand
from rocketpy.store.api import PutRequest
from tests.unit.test_worker_pull import PullRig, header, pull
from tests.unit.test_worker_rig import run

SQL_ON = BrokerConfig(broker_ip1="192.168.7.7", listen_port=10911, enable_property_filter=True)


def append_props(prig: PullRig, items: list[tuple[bytes, dict[str, str]]], queue_id: int = 0) -> None:
    group = []
    for body, props in items:
        data = encode_record(MessageRecord(topic="T", body=body, queue_id=queue_id, properties=format_properties(props),
                                           born_host="10.0.0.1", born_port=1, store_host="192.168.7.7",
                                           store_port=10911))
        group.append(PutRequest("T", queue_id, 0, data))
    prig.store.append(group)
    prig.store.flush()
    prig.store.dispatch()
    prig.publish()


def register(prig: PullRig, group: str, subs: list[SubscriptionData],
             model: MessageModel = MessageModel.CLUSTERING) -> None:
    """What control sends after a heartbeat, through the worker's own control-request path."""
    body = encode_subscriptions([(group, model, subs)])
    cmd = RemotingCommand.request(InternalCode.SUBSCRIPTIONS_CHANGED, None, body, opaque=1, oneway=True)
    prig.rig.server.forward.on_control_request(cmd)


def sql_pull(c: Any, offset: int, expr: str, **kw: Any) -> RemotingCommand:
    return pull(c, offset, sub=expr, expressionType=EXPRESSION_TYPE_SQL92, **kw)


@pytest.fixture
def prig(tmp_path):
    r = PullRig(tmp_path)
    yield r
    r.close()


@pytest.fixture
def sql_rig(tmp_path):
    r = PullRig(tmp_path, SQL_ON)
    yield r
    r.close()


def bodies(r: RemotingCommand) -> list[bytes]:
    return [m.body for m in iter_records(r.body)]


def test_subscriptions_body_round_trip() -> None:
    subs = [build_subscription("T", "TagA || TagB", sub_version=7),
            build_subscription("T2", "a > 1", expression_type=EXPRESSION_TYPE_SQL92, sub_version=9)]
    table = decode_subscriptions(encode_subscriptions([("G", MessageModel.BROADCASTING, subs)]))
    assert table["G"].message_model is MessageModel.BROADCASTING
    assert dict(table["G"].subscriptions) == {"T": subs[0], "T2": subs[1]}


def test_without_the_subscription_flag_the_registered_subscription_is_used(prig) -> None:
    prig.append([(b"a", "TagA"), (b"b", "TagB"), (b"c", "TagA")])

    async def main() -> None:
        await prig.rig.start()
        c = prig.rig.client()
        r = await c.call(pull(c, 0, sys_flag=0, sub=None))
        assert r.code == ResponseCode.SUBSCRIPTION_NOT_EXIST and "group info" in r.remark
        register(prig, "CG", [build_subscription("OTHER", "*", sub_version=5)])
        r = await c.call(pull(c, 0, sys_flag=0, sub=None))
        assert r.code == ResponseCode.SUBSCRIPTION_NOT_EXIST and "does not subscribe to T" in r.remark
        register(prig, "CG", [build_subscription("T", "TagB", sub_version=5)])
        r = await c.call(pull(c, 0, sys_flag=0, sub=None, subVersion="5"))
        assert r.code == ResponseCode.SUCCESS and bodies(r) == [b"b"] and header(r)[0] == 3
        r = await c.call(pull(c, 0, sys_flag=0, sub=None, subVersion="6"))    # the client subscribed anew
        assert r.code == ResponseCode.SUBSCRIPTION_NOT_LATEST
        r = await c.call(pull(c, 0, sys_flag=0, sub=None, subVersion="4"))    # older client view: served
        assert r.code == ResponseCode.SUCCESS
        await prig.rig.stop()
    run(main())


def test_broadcast_consumer_refused_when_the_group_forbids_it(prig) -> None:
    prig.append([(b"a", "TagA")])

    async def main() -> None:
        await prig.rig.start()
        c = prig.rig.client()
        prig.rig.ctx.set_groups({"CG": SubscriptionGroupConfig("CG", consume_broadcast_enable=False)})
        register(prig, "CG", [build_subscription("T", "*")], MessageModel.BROADCASTING)
        r = await c.call(pull(c, 0, sys_flag=0, sub=None))
        assert r.code == ResponseCode.NO_PERMISSION and "broadcast" in r.remark
        r = await c.call(pull(c, 0))              # with its own subscription, RocketMQ does not check
        assert r.code == ResponseCode.SUCCESS
        await prig.rig.stop()
    run(main())


def test_sql92_refused_while_property_filter_is_off(prig) -> None:
    prig.append([(b"a", "TagA")])

    async def main() -> None:
        await prig.rig.start()
        c = prig.rig.client()
        r = await c.call(sql_pull(c, 0, "a > 1"))
        assert r.code == ResponseCode.SYSTEM_ERROR
        assert r.remark.startswith("The broker does not support consumer to filter message by SQL92")
        await prig.rig.stop()
    run(main())


def test_sql92_filters_on_properties_and_skipped_entries_advance(sql_rig) -> None:
    append_props(sql_rig, [(b"m0", {"a": "1", "TAGS": "x"}), (b"m1", {"a": "5", "TAGS": "y"}),
                           (b"m2", {"TAGS": "x"}), (b"m3", {"a": "9", "TAGS": "x"}), (b"m4", {"a": "2"})])

    async def main() -> None:
        await sql_rig.rig.start()
        c = sql_rig.rig.client()
        r = await c.call(sql_pull(c, 0, "a > 1 AND TAGS = 'x'"))
        assert r.code == ResponseCode.SUCCESS and bodies(r) == [b"m3"] and header(r)[0] == 5
        r = await c.call(sql_pull(c, 0, "a IS NULL OR a BETWEEN 4 AND 5"))
        assert bodies(r) == [b"m1", b"m2"]
        r = await c.call(sql_pull(c, 0, "TAGS IN ('y') OR a = 2", max_nums=1))
        assert bodies(r) == [b"m1"] and header(r)[0] == 2
        r = await c.call(sql_pull(c, 0, "a > 100"))
        assert (r.code, header(r)) == (ResponseCode.PULL_RETRY_IMMEDIATELY, (5, 0, 5, "NO_MATCHED_MESSAGE"))
        r = await c.call(sql_pull(c, 0, "a >"))
        assert r.code == ResponseCode.SUBSCRIPTION_PARSE_FAILED and "column 4" in r.remark
        r = await c.call(pull(c, 0, sub="x", expressionType="FOO"))
        assert r.code == ResponseCode.SUBSCRIPTION_PARSE_FAILED and "FOO" in r.remark
        await sql_rig.rig.stop()
    run(main())


def test_registered_sql92_subscription_filters_and_a_bad_one_has_no_filter_data(sql_rig) -> None:
    append_props(sql_rig, [(b"m0", {"region": "eu"}), (b"m1", {"region": "us"})])

    async def main() -> None:
        await sql_rig.rig.start()
        c = sql_rig.rig.client()
        register(sql_rig, "CG", [build_subscription("T", "region = 'us'", expression_type=EXPRESSION_TYPE_SQL92,
                                                    sub_version=3)])
        r = await c.call(pull(c, 0, sys_flag=0, sub=None, subVersion="3"))
        assert bodies(r) == [b"m1"]
        register(sql_rig, "CG", [build_subscription("T", "region = ", expression_type=EXPRESSION_TYPE_SQL92,
                                                    sub_version=4)])
        r = await c.call(pull(c, 0, sys_flag=0, sub=None, subVersion="4"))
        assert r.code == ResponseCode.FILTER_DATA_NOT_EXIST
        await sql_rig.rig.stop()
    run(main())


def test_parked_sql92_pull_is_answered_only_with_matching_messages(sql_rig) -> None:
    append_props(sql_rig, [(b"m0", {"k": "no"})])

    async def main() -> None:
        await sql_rig.rig.start()
        c = sql_rig.rig.client()
        req = sql_pull(c, 1, "k = 'yes'", sys_flag=0x6, suspend_ms=10_000)
        c.send(req)
        for _ in range(200):
            if sql_rig.rig.server.pull.long_polling.count == 1:
                break
            await asyncio.sleep(0.01)
        assert sql_rig.rig.server.pull.long_polling.count == 1
        append_props(sql_rig, [(b"m1", {"k": "no"}), (b"m2", {"k": "yes"})])
        sql_rig.rig.pull_bell.ring()
        (r,) = await c.responses(1, timeout_s=10.0)
        assert bodies(r) == [b"m2"] and header(r)[0] == 3
        await sql_rig.rig.stop()
    run(main())
