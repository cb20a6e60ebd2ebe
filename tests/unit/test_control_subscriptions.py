"""Control's side of subscriptions: SUBSCRIPTIONS_CHANGED to the workers on every change (and only
then), and a bad SQL92 subscription refused with a clear error at heartbeat and CHECK_CLIENT_CONFIG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from rocketpy.broker.filter.subscriptions import decode_subscriptions
from rocketpy.broker.internal import InternalCode
from rocketpy.protocol.bodies import MessageModel
from rocketpy.protocol.codes import RequestCode, ResponseCode
from tests.unit.test_control_server import _hello, _server


def heartbeat(subs: list[dict[str, Any]], *, group: str = "CG", model: str = "CLUSTERING") -> bytes:
    return orjson.dumps({"clientID": "10.0.0.1@1", "consumerDataSet": [{
        "groupName": group, "consumeType": "CONSUME_PASSIVELY", "messageModel": model,
        "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET", "subscriptionDataSet": subs}]})


def sub(topic: str, expr: str, version: int, kind: str = "TAG") -> dict[str, Any]:
    return {"topic": topic, "subString": expr, "subVersion": version, "expressionType": kind}


def subscription_tables(frames: list[Any]) -> list[dict[str, Any]]:
    return [decode_subscriptions(f.body) for f in frames if f.code == InternalCode.SUBSCRIPTIONS_CHANGED]


def test_changes_are_broadcast_and_repeats_are_not(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    w2 = _hello(server, slot=4)
    frames = w.send(RequestCode.HEART_BEAT, body=heartbeat([sub("T", "TagA", 1)]))
    (table,) = subscription_tables(frames)
    assert table["CG"].subscriptions["T"].tags_set == ("TagA",)
    assert table["CG"].message_model is MessageModel.CLUSTERING
    assert subscription_tables(w2.frames())[0] == table           # every worker gets it
    assert subscription_tables(w.send(RequestCode.HEART_BEAT, body=heartbeat([sub("T", "TagA", 1)]))) == []
    (table,) = subscription_tables(w.send(RequestCode.HEART_BEAT, body=heartbeat([sub("T", "TagB", 2)])))
    assert table["CG"].subscriptions["T"].sub_version == 2        # same topic, new expression
    (table,) = subscription_tables(w.send(RequestCode.HEART_BEAT,
                                          body=heartbeat([sub("T", "TagB", 2)], model="BROADCASTING")))
    assert table["CG"].message_model is MessageModel.BROADCASTING
    # a worker connecting later gets the table before its hello's answer
    frames = _hello_frames(server, slot=5)
    assert "CG" in subscription_tables(frames)[0]


def _hello_frames(server: Any, slot: int) -> list[Any]:
    from tests.unit.test_control_server import FakeWorker
    w = FakeWorker(server, slot)
    return w.send(InternalCode.WORKER_HELLO)


def test_sql92_heartbeat_refused_while_property_filter_is_off(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    r = w.call(RequestCode.HEART_BEAT, body=heartbeat([sub("T", "a > 1", 1, "SQL92")]))
    assert r.code == ResponseCode.SYSTEM_ERROR
    assert "does not support consumer to filter message by SQL92" in r.remark and "enablePropertyFilter" in r.remark
    assert server.consumers.get("CG") is not None             # registered all the same, as RocketMQ does


def test_bad_sql92_named_at_heartbeat_and_check_client_config(tmp_path: Path) -> None:
    server = _server(tmp_path, enable_property_filter=True)
    w = _hello(server)
    r = w.call(RequestCode.HEART_BEAT, body=heartbeat([sub("T", "a > 1", 1, "SQL92")]))
    assert r.code == ResponseCode.SUCCESS
    r = w.call(RequestCode.HEART_BEAT, body=heartbeat([sub("T", "a >> 1", 2, "SQL92")]))
    assert r.code == ResponseCode.SUBSCRIPTION_PARSE_FAILED
    assert "group CG" in r.remark and "column 4" in r.remark and "'>'" in r.remark
    body = orjson.dumps({"clientId": "c1", "group": "CG", "subscriptionData": sub("T", "b IN (1)", 3, "SQL92")})
    r = w.call(RequestCode.CHECK_CLIENT_CONFIG, body=body)
    assert r.code == ResponseCode.SUBSCRIPTION_PARSE_FAILED and "column 7" in r.remark
    body = orjson.dumps({"clientId": "c1", "group": "CG", "subscriptionData": sub("T", "b IN ('1')", 3, "SQL92")})
    assert w.call(RequestCode.CHECK_CLIENT_CONFIG, body=body).code == ResponseCode.SUCCESS
    body = orjson.dumps({"clientId": "c1", "group": "CG", "subscriptionData": sub("T", "TagA ||", 3)})
    assert w.call(RequestCode.CHECK_CLIENT_CONFIG, body=body).code == ResponseCode.SUCCESS


def test_check_client_config_without_property_filter(tmp_path: Path) -> None:
    server = _server(tmp_path)
    w = _hello(server)
    body = orjson.dumps({"clientId": "c1", "group": "CG", "subscriptionData": sub("T", "a = 1", 1, "SQL92")})
    r = w.call(RequestCode.CHECK_CLIENT_CONFIG, body=body)
    assert r.code == ResponseCode.SYSTEM_ERROR and r.remark.startswith(
        "The broker does not support consumer to filter message by SQL92")
