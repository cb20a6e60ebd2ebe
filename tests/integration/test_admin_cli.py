"""`rocketpy admin`, `produce` and `consume` against a real NameServer and broker, `--json` parsed.

One cluster for the module; each test uses its own topic and group so the order does not matter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from rocketpy.cli.app import app
from rocketpy.protocol.codes import RequestCode, ResponseCode
from tests.support.cluster import REPO, cluster, free_port, wait_for
from tests.support.remoting_client import RemotingTestClient

CLUSTER = "DefaultCluster"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("admin-cli")) as c:
        yield c


def cli(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    if code == 0 and "--json" in args and args[0] == "admin":
        return json.loads(result.stdout)
    return result


def admin(c, *args: str, code: int = 0) -> Any:
    return cli("admin", *args, "-n", c.namesrv_addr, code=code)


def create_topic(c, topic: str, queues: int = 4) -> None:
    doc = admin(c, "topic", "create", topic, "-c", CLUSTER, "--queues", str(queues), "--json")
    assert doc == {"topic": topic, "brokers": [c.broker_addr]}
    # The broker re-registers with the NameServer at once after a topic change.
    wait_for(lambda: topic in admin(c, "topic", "list", "--json"), 20, f"{topic} in the NameServer")


def send(c, topic: str, body: str, *extra: str) -> dict[str, Any]:
    doc = admin(c, "message", "send", "-t", topic, "--body", body, *extra, "--json")
    assert doc["status"] == "SEND_OK"
    return doc


def test_cluster_list(running) -> None:
    doc = admin(running, "cluster", "list", "--json")
    assert {"cluster": CLUSTER, "brokerName": "broker-a", "brokerId": 0, "addr": running.broker_addr} in doc
    table = admin(running, "cluster", "list").stdout
    assert "broker-a" in table and running.broker_addr in table


def test_topic_create_route_status_delete(running) -> None:
    create_topic(running, "AdminT1", queues=3)
    route = admin(running, "topic", "route", "AdminT1", "--json")
    assert [(q["brokerName"], q["readQueueNums"], q["writeQueueNums"]) for q in route["queueDatas"]] == [
        ("broker-a", 3, 3)]
    status = admin(running, "topic", "status", "AdminT1", "--json")
    assert [(q["queueId"], q["minOffset"], q["maxOffset"]) for q in status] == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]
    for i in range(4):
        send(running, "AdminT1", f"m{i}", "--queue", "1")

    def moved() -> list[dict[str, Any]] | None:
        rows = admin(running, "topic", "status", "AdminT1", "--json")
        return rows if rows[1]["maxOffset"] == 4 else None

    rows = wait_for(moved, 20, "the status to show 4 messages in queue 1")
    assert rows[1]["lastUpdateTimestamp"] > 0 and rows[0]["lastUpdateTimestamp"] == 0
    # update: more queues
    admin(running, "topic", "update", "AdminT1", "-b", running.broker_addr, "--queues", "5", "--json")
    assert len(admin(running, "topic", "status", "AdminT1", "--json")) == 5
    doc = admin(running, "topic", "delete", "AdminT1", "-c", CLUSTER, "--json")
    assert doc["brokers"] == [running.broker_addr]
    assert "AdminT1" not in admin(running, "topic", "list", "--json")
    res = admin(running, "topic", "status", "AdminT1", code=1)
    assert "error:" in res.stderr and "AdminT1" in res.stderr


def test_messages_by_key_id_and_unique_key(running) -> None:
    create_topic(running, "AdminT2")
    sent = send(running, "AdminT2", "hello world", "--keys", "order-17 other", "--tags", "TagA")
    send(running, "AdminT2", "not this one", "--keys", "order-18")
    found = wait_for(lambda: _query_key(running, "AdminT2", "order-17"), 20, "the key in the index")
    assert [m["body"] for m in found] == ["hello world"]
    msg = found[0]
    assert msg["tags"] == "TagA" and msg["keys"] == "order-17 other" and msg["msgId"] == sent["msgId"]
    assert msg["properties"]["UNIQ_KEY"] == sent["msgId"]
    by_id = admin(running, "message", "query-id", sent["offsetMsgId"], "--json")
    assert [m["body"] for m in by_id] == ["hello world"]
    by_uniq = admin(running, "message", "query-uniq", "-t", "AdminT2", sent["msgId"], "--json")
    assert [m["offsetMsgId"] for m in by_uniq] == [sent["offsetMsgId"]]
    text = admin(running, "message", "query-id", sent["offsetMsgId"]).stdout
    assert "hello world" in text and "TagA" in text
    res = admin(running, "message", "query-key", "-t", "AdminT2", "-k", "no-such-key", code=1)
    assert "no message" in res.stderr
    admin(running, "message", "query-id", "not-an-id", code=1)


def _query_key(c, topic: str, key: str) -> list[dict[str, Any]] | None:
    result = CliRunner().invoke(app, ["admin", "message", "query-key", "-t", topic, "-k", key,
                                      "-n", c.namesrv_addr, "--json"])
    return json.loads(result.stdout) if result.exit_code == 0 else None


def _heartbeat(client: RemotingTestClient, client_id: str, *, consumer_group: str | None = None,
               producer_group: str | None = None, topic: str = "") -> None:
    body: dict[str, Any] = {"clientID": client_id, "consumerDataSet": [], "producerDataSet": []}
    if consumer_group:
        body["consumerDataSet"].append({
            "groupName": consumer_group, "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
            "subscriptionDataSet": [{"topic": topic, "subString": "*"}]})
    if producer_group:
        body["producerDataSet"].append({"groupName": producer_group})
    resp = client.request(RequestCode.HEART_BEAT, None, json.dumps(body).encode())
    assert resp.code == ResponseCode.SUCCESS, resp.remark


def test_groups_progress_and_connections(running) -> None:
    create_topic(running, "AdminT3", queues=2)
    doc = admin(running, "group", "create", "AdminG3", "-c", CLUSTER, "--retry-max-times", "3", "--json")
    assert doc["brokers"] == [running.broker_addr]
    groups = admin(running, "group", "list", "--json")[running.broker_addr]
    assert groups["AdminG3"]["retryMaxTimes"] == 3
    for i in range(5):
        send(running, "AdminT3", f"p{i}", "--queue", "0")
    wait_for(lambda: admin(running, "topic", "status", "AdminT3", "--json")[0]["maxOffset"] == 5, 20,
             "5 messages in queue 0")
    with RemotingTestClient("127.0.0.1", running.broker_port, timeout_s=10) as client:
        # Consumer offsets: queue 0 at 2 (the worker fills the last consume time), queue 1 none.
        resp = client.request(RequestCode.UPDATE_CONSUMER_OFFSET, {
            "consumerGroup": "AdminG3", "topic": "AdminT3", "queueId": 0, "commitOffset": 2})
        assert resp.code == ResponseCode.SUCCESS
        _heartbeat(client, "10.0.0.9@cli-test", consumer_group="AdminG3", producer_group="AdminPG3",
                   topic="AdminT3")

        def progress() -> dict[str, Any] | None:
            doc = admin(running, "consumer", "progress", "-g", "AdminG3", "--json")
            return doc if doc["queues"] and doc["queues"][0]["consumerOffset"] == 2 else None

        doc = wait_for(progress, 20, "the committed offset in the progress")
        q0, q1 = doc["queues"]
        assert (q0["topic"], q0["queueId"], q0["brokerOffset"], q0["consumerOffset"], q0["lag"]) == (
            "AdminT3", 0, 5, 2, 3)
        assert q0["lastTimestamp"] > 0
        assert (q1["brokerOffset"], q1["consumerOffset"], q1["lag"], q1["lastTimestamp"]) == (0, 0, 0, 0)
        assert doc["totalLag"] == 3
        conns = admin(running, "consumer", "connections", "-g", "AdminG3", "--json")
        assert [c["clientId"] for c in conns["connectionSet"]] == ["10.0.0.9@cli-test"]
        assert "AdminT3" in conns["subscriptionTable"]
        pconns = admin(running, "producer", "connections", "-g", "AdminPG3", "--json")
        assert [c["clientId"] for c in pconns["connectionSet"]] == ["10.0.0.9@cli-test"]
    res = admin(running, "consumer", "connections", "-g", "NobodyHere", code=1)
    assert "NobodyHere" in res.stderr


def test_broker_status_reads_runtime_info(running) -> None:
    doc = admin(running, "broker-status", "--json")
    runtime = doc[running.broker_addr]["runtime"]
    assert runtime["brokerVersionDesc"] and int(runtime["commitLogMaxOffset"]) >= 0
    direct = cli("admin", "broker-status", "-b", running.broker_addr, "--json")
    assert set(direct) == {running.broker_addr}


def test_produce_and_consume(running) -> None:
    create_topic(running, "AdminT4", queues=2)
    result = cli("produce", "-t", "AdminT4", "-n", running.namesrv_addr, "--count", "6", "--tags", "T", "--json")
    sent = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(sent) == 6 and {s["queueId"] for s in sent} == {0, 1}

    def consumed() -> list[dict[str, Any]] | None:
        r = CliRunner().invoke(app, ["consume", "-t", "AdminT4", "-n", running.namesrv_addr, "--json"])
        lines = [json.loads(x) for x in r.stdout.splitlines()] if r.exit_code == 0 else []
        return lines if len(lines) == 6 else None

    got = wait_for(consumed, 20, "6 messages to consume")
    assert sorted(m["body"] for m in got) == [f"message {i}" for i in range(6)]
    assert {m["msgId"] for m in got} == {s["msgId"] for s in sent}
    limited = CliRunner().invoke(app, ["consume", "-t", "AdminT4", "-n", running.namesrv_addr, "--max", "2",
                                       "--json"])
    assert len(limited.stdout.splitlines()) == 2


def test_exit_codes_for_scripts(running) -> None:
    # 3: nothing listens there
    res = cli("admin", "topic", "list", "-n", f"127.0.0.1:{free_port()}", "--json", code=3)
    assert res.stderr.startswith("error:") and "running" in res.stderr
    # 2: usage
    cli("admin", "topic", "create", "bad topic!", "-n", running.namesrv_addr, code=2)
    cli("admin", "offset", "reset", "-g", "G", "-t", "T", "--time", "yesterday-ish", "-n", running.namesrv_addr,
        code=2)
    # 1: refused / not found
    res = admin(running, "topic", "route", "NoSuchTopicHere", code=1)
    assert "NoSuchTopicHere" in res.stderr
    # the environment variable names the NameServer, like mqadmin's NAMESRV_ADDR
    env = dict(os.environ, NAMESRV_ADDR=running.namesrv_addr)
    env.pop("ROCKETPY_NAMESRV", None)
    proc = subprocess.run([sys.executable, "-m", "rocketpy.cli.app", "admin", "cluster", "list", "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["addr"] == running.broker_addr
