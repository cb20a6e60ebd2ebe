"""Filtering through a real broker: SQL92 subscriptions (enablePropertyFilter) and subscriptions
registered by heartbeat serving pulls without the SUBSCRIPTION flag (control -> workers)."""

from __future__ import annotations

import orjson
import pytest

from rocketpy.protocol.codes import RequestCode, ResponseCode
from tests.support.broker_ops import pull, records, send
from tests.support.cluster import cluster, wait_for
from tests.support.remoting_client import RemotingTestClient

TOPIC = "FilterTopic"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("broker-filter"), enablePropertyFilter="true") as c:
        yield c


def heartbeat(client: RemotingTestClient, group: str, expr: str, kind: str, version: int) -> object:
    body = orjson.dumps({"clientID": f"127.0.0.1@{group}", "consumerDataSet": [{
        "groupName": group, "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
        "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET", "subscriptionDataSet": [
            {"topic": TOPIC, "subString": expr, "subVersion": version, "expressionType": kind}]}]})
    return client.request(RequestCode.HEART_BEAT, body=body)


def pull_all(client: RemotingTestClient, group: str, *, sub_version: int, **kw: object) -> list[bytes]:
    """Every matching body in queue 0 from offset 0, following nextBeginOffset over skipped entries."""
    out: list[bytes] = []
    offset = 0
    for _ in range(50):
        r = pull(client, TOPIC, 0, offset, group=group, **kw)  # type: ignore[arg-type]
        if r.code not in (ResponseCode.SUCCESS, ResponseCode.PULL_RETRY_IMMEDIATELY):
            assert r.code == ResponseCode.PULL_NOT_FOUND, (r.code, r.remark)
            return out
        out += [m.body for m in records(r)]
        offset = int(r.ext_fields["nextBeginOffset"])
    raise AssertionError("the queue did not end within 50 pulls")


def test_sql92_and_registered_subscriptions(running):
    with RemotingTestClient("127.0.0.1", running.broker_port, timeout_s=10) as c:
        for i in range(12):
            props = {"seq": str(i)}
            if i % 3 == 0:
                props["region"] = "eu"
            r = send(c, TOPIC, b"m%d" % i, tags="even" if i % 2 == 0 else "odd", props=props)
            assert r.code == ResponseCode.SUCCESS, r.remark
        expected_sql = [b"m0", b"m6"]               # region = 'eu' AND TAGS = 'even'
        wait_for(lambda: len(pull_all(c, "G-any", sub_version=0)) == 12, 20, "all 12 messages dispatched")
        # with the SUBSCRIPTION flag: the pull's own expression
        got = pull_all(c, "G-any", sub_version=0, subscription="region = 'eu' AND TAGS = 'even'",
                       expression_type="SQL92")
        assert got == expected_sql
        # without it: the expression the group registered by heartbeat, on this very connection
        r = pull(c, TOPIC, 0, 0, group="G-sql", sys_flag=0)
        assert r.code == ResponseCode.SUBSCRIPTION_NOT_EXIST
        assert heartbeat(c, "G-sql", "seq BETWEEN 4 AND 7 OR seq > 10", "SQL92", 5).code == ResponseCode.SUCCESS
        assert pull_all(c, "G-sql", sub_version=5, sys_flag=0) == [b"m4", b"m5", b"m6", b"m7", b"m11"]
        r = pull(c, TOPIC, 0, 0, group="G-sql", sys_flag=0, sub_version=6)
        assert r.code == ResponseCode.SUBSCRIPTION_NOT_LATEST
        assert heartbeat(c, "G-tag", "odd", "TAG", 1).code == ResponseCode.SUCCESS
        assert pull_all(c, "G-tag", sub_version=1, sys_flag=0) == [b"m%d" % i for i in range(1, 12, 2)]
        # a bad expression is named at subscribe time and refused at pull time
        r = heartbeat(c, "G-bad", "seq >", "SQL92", 1)
        assert r.code == ResponseCode.SUBSCRIPTION_PARSE_FAILED and "column 6" in (r.remark or "")
        check = orjson.dumps({"clientId": "x", "group": "G-bad", "subscriptionData": {
            "topic": TOPIC, "subString": "seq IN (1)", "expressionType": "SQL92", "subVersion": 1}})
        r = c.request(RequestCode.CHECK_CLIENT_CONFIG, body=check)
        assert r.code == ResponseCode.SUBSCRIPTION_PARSE_FAILED and "column 9" in (r.remark or "")
        r = pull(c, TOPIC, 0, 0, group="G-bad", subscription="seq >", expression_type="SQL92")
        assert r.code == ResponseCode.SUBSCRIPTION_PARSE_FAILED
