"""JSON bodies, parsed leniently from what real clients and Java peers send; topic names and perms."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from rocketpy import limits
from rocketpy.errors import ProtocolError
from rocketpy.protocol import bodies as b
from rocketpy.protocol import topics as t
from rocketpy.protocol.message import java_string_hash

# --- lenient JSON -----------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    (b'{0:"x"}', {"0": "x"}),
    (b'{"offsetTable":{"T@G":{0:120,1:118}}}', {"offsetTable": {"T@G": {"0": 120, "1": 118}}}),
    (b'{\n\t"offsetTable":{\n\t\t1:0,\n\t\t2:35\n\t}\n}', {"offsetTable": {"1": 0, "2": 35}}),
    (b'{ -1 : "neg" , 7:"seven"}', {"-1": "neg", "7": "seven"}),
    (b'{"a":"{0:1}","b":"x,2:3"}', {"a": "{0:1}", "b": "x,2:3"}),          # strict already
    (b'{"a":"q\\"{0:","k":{0:"v"}}', {"a": 'q"{0:', "k": {"0": "v"}}),      # escaped quote in string
    (b'[1,2,3]', [1, 2, 3]),
    ('{"s":"中"}', {"s": "中"}),
])
def test_parse_json_lenient(text: bytes | str, expected: Any) -> None:
    assert b.parse_json_lenient(text) == expected


def test_quote_bare_int_keys_leaves_strings_alone() -> None:
    raw = b'{"brokerAddrs":{0:"1.2.3.4:10911","note":"{1:2}"}}'
    assert b.quote_bare_int_keys(raw) == b'{"brokerAddrs":{"0":"1.2.3.4:10911","note":"{1:2}"}}'


@pytest.mark.parametrize("text", [b"", b"   ", b"{", b"{a:1}", b'{"a":}', b"\xff\xfe", b'{"a":1}x',
                                  b'{0:1', b"nul"])
def test_parse_json_lenient_rejects(text: bytes) -> None:
    with pytest.raises(ProtocolError):
        b.parse_json_lenient(text)


# --- route data -------------------------------------------------------------------------

ROUTE_JSON = b"""{
  "queueDatas": [
    {"brokerName":"broker-a","readQueueNums":4,"writeQueueNums":4,"perm":6,"topicSysFlag":0}
  ],
  "brokerDatas": [
    {"cluster":"DefaultCluster","brokerName":"broker-a",
     "brokerAddrs":{"0":"192.168.0.10:10911","1":"192.168.0.11:10911"}}
  ],
  "filterServerTable": {}
}"""

ROUTE = b.TopicRouteData(
    queue_datas=(b.QueueData("broker-a", 4, 4, 6, 0),),
    broker_datas=(b.BrokerData("DefaultCluster", "broker-a",
                               {0: "192.168.0.10:10911", 1: "192.168.0.11:10911"}),),
)


def test_route_data_from_reference() -> None:
    route = b.TopicRouteData.from_json(ROUTE_JSON)
    assert route == ROUTE
    assert route.broker_datas[0].master_addr == "192.168.0.10:10911"
    assert orjson.loads(route.to_json()) == orjson.loads(ROUTE_JSON)


def test_route_data_written_strict_with_quoted_keys() -> None:
    out = ROUTE.to_json()
    assert b'"brokerAddrs":{"0":"192.168.0.10:10911","1":"192.168.0.11:10911"}' in out
    assert b"orderTopicConf" not in out
    orjson.loads(out)                                    # strict JSON


def test_route_data_fastjson_form_and_old_spelling() -> None:
    raw = (b'{"orderTopicConf":"broker-a:4","queueDatas":[{"brokerName":"broker-a","perm":6,'
           b'"readQueueNums":"4","topicSynFlag":1,"writeQueueNums":4}],'
           b'"brokerDatas":[{"brokerAddrs":{0:"192.168.0.10:10911"},"brokerName":"broker-a",'
           b'"cluster":"DefaultCluster"}],"filterServerTable":{"1.2.3.4:10911":["f1"]}}')
    route = b.TopicRouteData.from_json(raw)
    assert route.order_topic_conf == "broker-a:4"
    assert route.queue_datas == (b.QueueData("broker-a", 4, 4, 6, 1),)
    assert route.broker_datas[0].broker_addrs == {0: "192.168.0.10:10911"}
    assert route.filter_server_table == {"1.2.3.4:10911": ("f1",)}
    assert b.TopicRouteData.from_json(route.to_json()) == route


def test_route_data_missing_arrays_are_empty() -> None:
    assert b.TopicRouteData.from_json(b"{}") == b.TopicRouteData()
    assert b.TopicRouteData.from_json(b'{"queueDatas":null}') == b.TopicRouteData()


# --- cluster info, topic list, kv ---------------------------------------------------------


def test_cluster_info_with_unquoted_ids() -> None:
    raw = (b'{"brokerAddrTable":{"broker-a":{"cluster":"C","brokerName":"broker-a",'
           b'"brokerAddrs":{0:"10.0.0.1:10911"}}},"clusterAddrTable":{"C":["broker-a"]}}')
    info = b.ClusterInfo.from_json(raw)
    assert info.broker_addr_table["broker-a"].broker_addrs == {0: "10.0.0.1:10911"}
    assert info.cluster_addr_table == {"C": ("broker-a",)}
    assert b.quote_bare_int_keys(raw) == info.to_json()


def test_topic_list_and_kv_table() -> None:
    tl = b.TopicList.from_json(b'{"topicList":["TopicA","%RETRY%g1"]}')
    assert tl == b.TopicList(("TopicA", "%RETRY%g1"))
    assert tl.to_json() == b'{"topicList":["TopicA","%RETRY%g1"]}'
    assert b.TopicList.from_json(b'{"topicList":[],"brokerAddr":"1.2.3.4:1"}').broker_addr == "1.2.3.4:1"
    kv = b.KVTable.from_json(b'{"table":{"TopicA":"broker-a:4"}}')
    assert kv.table == {"TopicA": "broker-a:4"}
    assert kv.to_json() == b'{"table":{"TopicA":"broker-a:4"}}'


# --- registration -------------------------------------------------------------------------

REGISTER_JSON = b"""{"topicConfigSerializeWrapper":{
   "topicConfigTable":{"TopicA":{"topicName":"TopicA","readQueueNums":4,"writeQueueNums":4,
        "perm":6,"topicFilterType":"SINGLE_TAG","topicSysFlag":0,"order":false}},
   "dataVersion":{"timestamp":1700000000000,"counter":12}},
 "filterServerList":[]}"""

REGISTER = b.RegisterBrokerBody(
    b.TopicConfigSerializeWrapper({"TopicA": b.TopicConfig("TopicA", 4, 4, 6)},
                                  b.DataVersion(1700000000000, 12)))


def test_register_broker_body_from_reference() -> None:
    body = b.RegisterBrokerBody.from_json(REGISTER_JSON)
    assert body == REGISTER
    assert orjson.loads(body.to_json()) == orjson.loads(REGISTER_JSON)


def test_register_broker_body_old_version_is_the_bare_wrapper() -> None:
    wrapper = REGISTER.topic_config_serialize_wrapper.to_json()
    assert b.RegisterBrokerBody.from_json(wrapper) == REGISTER


def test_register_broker_body_empty() -> None:
    empty = b.RegisterBrokerBody.decode(b"")
    assert empty.topic_config_serialize_wrapper.data_version == b.DataVersion(0, 0)
    assert empty.topic_config_serialize_wrapper.topic_config_table == {}


def _java_compressed(dv: bytes, topics: list[bytes], filters: bytes, trailer: bytes = b"") -> bytes:
    parts = [struct.pack(">i", len(dv)), dv, struct.pack(">i", len(topics))]
    for tb in topics:
        parts += [struct.pack(">i", len(tb)), tb]
    parts += [struct.pack(">i", len(filters)), filters, trailer]
    return zlib.compress(b"".join(parts), 9)


def test_register_broker_body_compressed_java_form() -> None:
    raw = _java_compressed(b'{"counter":12,"timestamp":1700000000000}',
                           [b"TopicA 4 4 6 SINGLE_TAG", b"TopicB 8 8 7 MULTI_TAG"], b'["f:1"]',
                           trailer=struct.pack(">i", 0))                 # 5.x queue-mapping count
    body = b.RegisterBrokerBody.decode(raw, compressed=True)
    table = body.topic_config_serialize_wrapper.topic_config_table
    assert table["TopicA"] == b.TopicConfig("TopicA", 4, 4, 6)
    assert table["TopicB"] == b.TopicConfig("TopicB", 8, 8, 7, b.TopicFilterType.MULTI_TAG)
    assert body.topic_config_serialize_wrapper.data_version == b.DataVersion(1700000000000, 12)
    assert body.filter_server_list == ("f:1",)


def test_register_broker_body_compressed_round_trip() -> None:
    raw = REGISTER.encode_compressed()
    assert zlib.decompress(raw)[4:4 + 20].startswith(b'{"timestamp"')
    assert b.RegisterBrokerBody.decode_compressed(raw) == REGISTER


@pytest.mark.parametrize("raw", [
    b"not zlib",
    zlib.compress(b""),
    zlib.compress(struct.pack(">i", 1000) + b"{}"),
    _java_compressed(b'{"counter":1}', [b"TopicA 4 4 6"], b"[]"),                 # 4 fields
    _java_compressed(b'{"counter":1}', [b"TopicA x 4 6 SINGLE_TAG"], b"[]"),
    _java_compressed(b'{"counter":1}', [b"TopicA 4 4 6 NO_SUCH"], b"[]"),
    _java_compressed(b'{"counter":1}', [b"\xff 4 4 6 SINGLE_TAG"], b"[]"),
    _java_compressed(b'{"counter":1}', [], b"{}"),                                 # filters not a list
    zlib.compress(struct.pack(">i", 2) + b"{}" + struct.pack(">i", -1)),
    zlib.compress(struct.pack(">i", 2) + b"{}" + struct.pack(">i", 5)),            # topics missing
    zlib.compress(struct.pack(">i", 2) + b"{}"),
])
def test_register_broker_body_compressed_malformed(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        b.RegisterBrokerBody.decode_compressed(raw)


def test_register_broker_body_compressed_bomb_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "REGISTER_BROKER_BODY_INFLATED_SIZE_MAX", 1024)
    with pytest.raises(ProtocolError, match="inflates past"):
        b.RegisterBrokerBody.decode_compressed(zlib.compress(b"\0" * 100_000))


def test_topics_json_from_storage_reference() -> None:
    raw = (b'{"dataVersion":{"counter":7,"timestamp":1700000000000},"topicConfigTable":{'
           b'"TopicA":{"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG",'
           b'"topicName":"TopicA","topicSysFlag":0,"writeQueueNums":4}}}')
    w = b.TopicConfigSerializeWrapper.from_json(raw)
    assert w == b.TopicConfigSerializeWrapper({"TopicA": b.TopicConfig("TopicA", 4, 4, 6)},
                                              b.DataVersion(1700000000000, 7))
    assert w.data_version.next(1700000000500) == b.DataVersion(1700000000500, 8)


def test_topic_config_defaults_and_name_from_key() -> None:
    w = b.TopicConfigSerializeWrapper.from_json(b'{"topicConfigTable":{"T":{}}}')
    assert w.topic_config_table["T"] == b.TopicConfig("T", 16, 16, 6, b.TopicFilterType.SINGLE_TAG, 0, False)
    with pytest.raises(ProtocolError):
        b.TopicConfig.from_json(b"{}")
    assert b.TopicConfig.from_json(b'{"topicName":"T","topicFilterType":1,"order":"true"}') == b.TopicConfig(
        "T", topic_filter_type=b.TopicFilterType.MULTI_TAG, order=True)
    assert b.TopicConfig("T", 4, 4, 6).encode_compact() == "T 4 4 6 SINGLE_TAG"


# --- heartbeat ------------------------------------------------------------------------------

JAVA_HEARTBEAT = b"""{"clientID":"192.168.0.5@12345",
 "producerDataSet":[{"groupName":"PG1"}],
 "consumerDataSet":[{
    "groupName":"CG1",
    "consumeType":"CONSUME_PASSIVELY",
    "messageModel":"CLUSTERING",
    "consumeFromWhere":"CONSUME_FROM_LAST_OFFSET",
    "unitMode":false,
    "subscriptionDataSet":[{
       "topic":"TopicA","subString":"TagA || TagB",
       "tagsSet":["TagA","TagB"],"codeSet":[2598919,2598920],
       "subVersion":1700000000000,"classFilterMode":false,"expressionType":"TAG"}]}]}"""

CPP_HEARTBEAT = (
    b'{"clientID":"6577-127.0.0.1@DEFAULT","consumerDataSet":[{"consumeFromWhere":0,"consumeType":1,'
    b'"groupName":"CID_A","messageModel":1,"subscriptionDataSet":[{"subString":"*",'
    b'"subVersion":"1795416439852","topic":"%RETRY%CID_A"},{"codeSet":[0],"subString":"TagA",'
    b'"subVersion":"1795416439852","topic":"TopicTest"}]}]}')


def test_java_heartbeat_with_enum_names() -> None:
    hb = b.HeartbeatData.from_json(JAVA_HEARTBEAT)
    assert hb.client_id == "192.168.0.5@12345"
    assert hb.producer_data_set == (b.ProducerData("PG1"),)
    (cd,) = hb.consumer_data_set
    assert cd.group_name == "CG1"
    assert cd.consume_type is b.ConsumeType.CONSUME_PASSIVELY
    assert cd.message_model is b.MessageModel.CLUSTERING
    assert cd.consume_from_where is b.ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
    (sub,) = cd.subscription_data_set
    assert sub == b.SubscriptionData("TopicA", "TagA || TagB", ("TagA", "TagB"), (2598919, 2598920),
                                     1700000000000, False, "TAG")
    assert orjson.loads(hb.to_json()) == orjson.loads(JAVA_HEARTBEAT)


def test_cpp_heartbeat_with_ordinals_and_garbage_code_set() -> None:
    hb = b.HeartbeatData.from_json(CPP_HEARTBEAT)
    assert hb.producer_data_set == ()
    (cd,) = hb.consumer_data_set
    assert cd.consume_type is b.ConsumeType.CONSUME_PASSIVELY
    assert cd.message_model is b.MessageModel.CLUSTERING
    assert cd.consume_from_where is b.ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
    assert cd.unit_mode is False
    retry, sub = cd.subscription_data_set
    assert retry.is_all and retry.code_set == () and retry.sub_version == 1795416439852
    assert sub.tags_set == ("TagA",)
    assert sub.code_set == (2598919,)            # recomputed; the client sent atoi("TagA") = 0
    assert sub.matches_tags_code(2598919) and not sub.matches_tags_code(0)


def test_cpp_pull_consumer_and_producer_heartbeats() -> None:
    hb = b.HeartbeatData.from_json(
        b'{"clientID":"1-127.0.0.1@DEFAULT","consumerDataSet":[{"consumeFromWhere":4,"consumeType":0,'
        b'"groupName":"G","messageModel":0}]}')
    (cd,) = hb.consumer_data_set
    assert cd.consume_type is b.ConsumeType.CONSUME_ACTIVELY
    assert cd.message_model is b.MessageModel.BROADCASTING
    assert cd.consume_from_where is b.ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET
    assert cd.subscription_data_set == ()
    hb = b.HeartbeatData.from_json(
        b'{"clientID":"1-127.0.0.1@DEFAULT","producerDataSet":[{"groupName":"PID_X"}]}')
    assert hb == b.HeartbeatData("1-127.0.0.1@DEFAULT", (b.ProducerData("PID_X"),), ())


@pytest.mark.parametrize("raw", [
    b'{"producerDataSet":[]}',                                           # no clientID
    b'{"clientID":"c","consumerDataSet":[{"consumeType":7,"groupName":"G"}]}',
    b'{"clientID":"c","consumerDataSet":[{"consumeType":"NOPE","groupName":"G"}]}',
    b'{"clientID":"c","consumerDataSet":[{"consumeType":true,"groupName":"G"}]}',
    b'{"clientID":"c","consumerDataSet":[{"messageModel":-1,"groupName":"G"}]}',
    b'{"clientID":"c","consumerDataSet":{"groupName":"G"}}',
    b'{"clientID":"c","consumerDataSet":[5]}',
    b'{"clientID":"c","consumerDataSet":[{}]}',
    b'{"clientID":"c","consumerDataSet":[{"groupName":"G","subscriptionDataSet":[{"subString":"*"}]}]}',
    b'{"clientID":"c","consumerDataSet":[{"groupName":"G","subscriptionDataSet":[{"topic":"T",'
    b'"subVersion":"soon"}]}]}',
    b'{"clientID":"c","consumerDataSet":[{"groupName":"G","subscriptionDataSet":[{"topic":"T",'
    b'"codeSet":{}}]}]}',
    b'{"clientID":"c","consumerDataSet":[{"groupName":"G","unitMode":"maybe"}]}',
    b'{"clientID":{"x":1}}',
    b'[]',
    b'"x"',
])
def test_heartbeat_malformed(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        b.HeartbeatData.from_json(raw)


def test_heartbeat_lenient_scalars() -> None:
    hb = b.HeartbeatData.from_json(
        b'{"clientID":"c","consumerDataSet":[{"groupName":"G","consumeType":"1","unitMode":"1",'
        b'"consumeFromWhere":"consume_from_timestamp","subscriptionDataSet":[{"topic":"T",'
        b'"subString":"TagA","subVersion":12.0,"classFilterMode":0,"tagsSet":null}]}]}')
    (cd,) = hb.consumer_data_set
    assert cd.unit_mode is True
    assert cd.consume_type is b.ConsumeType.CONSUME_PASSIVELY
    assert cd.consume_from_where is b.ConsumeFromWhere.CONSUME_FROM_TIMESTAMP
    assert cd.subscription_data_set[0].sub_version == 12


def test_enums_have_java_ordinals() -> None:
    assert [e.name for e in b.ConsumeFromWhere] == [
        "CONSUME_FROM_LAST_OFFSET", "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
        "CONSUME_FROM_MIN_OFFSET", "CONSUME_FROM_MAX_OFFSET", "CONSUME_FROM_FIRST_OFFSET",
        "CONSUME_FROM_TIMESTAMP"]
    assert [int(e) for e in b.ConsumeFromWhere] == list(range(6))
    assert (b.MessageModel.BROADCASTING, b.MessageModel.CLUSTERING) == (0, 1)
    assert (b.ConsumeType.CONSUME_ACTIVELY, b.ConsumeType.CONSUME_PASSIVELY) == (0, 1)


# --- subscriptions --------------------------------------------------------------------------


def test_build_subscription_tags() -> None:
    sub = b.build_subscription("T", " TagA ||TagB|| TagA ||  || \tTagC\n")
    assert sub.tags_set == ("TagA", "TagB", "TagC")
    assert sub.code_set == tuple(java_string_hash(x) for x in ("TagA", "TagB", "TagC"))
    assert not sub.is_all
    assert sub.matches_tags_code(2598919) and sub.matches_tags_code(2598920)
    assert not sub.matches_tags_code(0)
    # a ConsumeQueue tagsCode is a long; Java compares its intValue()
    assert sub.matches_tags_code(2598919 + (1 << 32))


@pytest.mark.parametrize("expr", ["*", "", None, "   "])
def test_build_subscription_all(expr: str | None) -> None:
    sub = b.build_subscription("T", expr)
    assert sub.is_all and sub.sub_string == "*" and sub.tags_set == () and sub.code_set == ()
    assert sub.matches_tags_code(12345) and sub.matches_tags_code(0)


def test_build_subscription_sql92() -> None:
    sub = b.build_subscription("T", "a > 5", expression_type="SQL92", sub_version=3)
    assert sub.expression_type == "SQL92" and sub.code_set == () and not sub.is_all
    assert sub.matches_tags_code(1)
    with pytest.raises(ProtocolError):
        b.build_subscription("T", "", expression_type="SQL92")


def test_subscription_code_set_follows_tags_set_when_present() -> None:
    sub = b.SubscriptionData.from_json(
        b'{"topic":"T","subString":"TagA || TagB","tagsSet":["TagB"],"codeSet":[1,2,3]}')
    assert sub.tags_set == ("TagB",) and sub.code_set == (2598920,)


def test_subscription_round_trip() -> None:
    sub = b.build_subscription("T", "TagA || TagB", sub_version=99)
    assert b.SubscriptionData.from_json(sub.to_json()) == sub


# --- consumer list, locks, offsets ------------------------------------------------------------


def test_consumer_id_list() -> None:
    body = b.ConsumerIdList(("1-127.0.0.1@DEFAULT", "10.0.0.2@77"))
    assert body.to_json() == b'{"consumerIdList":["1-127.0.0.1@DEFAULT","10.0.0.2@77"]}'
    assert b.ConsumerIdList.from_json(body.to_json()) == body
    assert b.ConsumerIdList.from_json(b"{}") == b.ConsumerIdList()


def test_lock_bodies() -> None:
    raw = (b'{"consumerGroup":"g","clientId":"ip@pid","mqSet":[{"topic":"t","brokerName":"broker-a",'
           b'"queueId":0},{"topic":"t","brokerName":"broker-a","queueId":"1"},'
           b'{"topic":"t","brokerName":"broker-a","queueId":0}]}')
    req = b.LockBatchRequestBody.from_json(raw)
    mq0, mq1 = b.MessageQueue("t", "broker-a", 0), b.MessageQueue("t", "broker-a", 1)
    assert req == b.LockBatchRequestBody("g", "ip@pid", (mq0, mq1))      # a set: duplicates dropped
    unlock = b.UnlockBatchRequestBody.from_json(raw)
    assert isinstance(unlock, b.UnlockBatchRequestBody) and unlock.mq_set == (mq0, mq1)
    resp = b.LockBatchResponseBody((mq0,))
    assert resp.to_json() == b'{"lockOKMQSet":[{"topic":"t","brokerName":"broker-a","queueId":0}]}'
    assert b.LockBatchResponseBody.from_json(resp.to_json()) == resp
    with pytest.raises(ProtocolError):
        b.LockBatchRequestBody.from_json(b'{"consumerGroup":"g","clientId":"c","mqSet":[{"topic":"t"}]}')
    with pytest.raises(ProtocolError):
        b.LockBatchRequestBody.from_json(b'{"clientId":"c"}')


def test_consumer_offset_table_from_java_file() -> None:
    raw = b'{\n\t"offsetTable":{\n\t\t"TopicA@CG1":{0:120,1:118,2:121,3:119}\n\t}\n}'
    table = b.ConsumerOffsetTable.from_json(raw)
    assert table.offset_table == {"TopicA@CG1": {0: 120, 1: 118, 2: 121, 3: 119}}
    assert table.to_json() == b'{"offsetTable":{"TopicA@CG1":{"0":120,"1":118,"2":121,"3":119}}}'
    assert b.ConsumerOffsetTable.from_json(table.to_json()) == table


def test_delay_offset_table() -> None:
    table = b.DelayOffsetTable.from_json(b'{"offsetTable":{1:0,2:35,3:12}}')
    assert table.offset_table == {1: 0, 2: 35, 3: 12}
    assert b.DelayOffsetTable.from_json(table.to_json()) == table


@pytest.mark.parametrize("raw", [
    b'{"offsetTable":{"T@G":{"x":1}}}',
    b'{"offsetTable":{"T@G":{"0":"many"}}}',
    b'{"offsetTable":{"T@G":[1]}}',
    b'{"offsetTable":{"T@G":{"99999999999":1}}}',
    b'{"offsetTable":{"T@G":{"0":99999999999999999999}}}',
    b'{"offsetTable":5}',
])
def test_consumer_offset_table_malformed(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        b.ConsumerOffsetTable.from_json(raw)


# --- coercion ----------------------------------------------------------------------------------


def test_coercions() -> None:
    assert b.as_int("12", "x") == 12 and b.as_int(" -3 ", "x") == -3 and b.as_int(4.0, "x") == 4
    bad: Any
    for bad in (True, "1.5", 1.5, None, [], "", "0x10"):
        with pytest.raises(ProtocolError):
            b.as_int(bad, "x")
    with pytest.raises(ProtocolError):
        b.as_int(1 << 31, "x", b.INT32_MIN, b.INT32_MAX)
    assert b.as_bool("1", "x") and b.as_bool("TRUE", "x") and b.as_bool(1, "x")
    assert not b.as_bool("0", "x") and not b.as_bool(False, "x") and not b.as_bool("false", "x")
    for bad in (2, "yes please", None, 1.0):
        with pytest.raises(ProtocolError):
            b.as_bool(bad, "x")
    assert b.as_str(5, "x") == "5" and b.as_str(True, "x") == "true"
    with pytest.raises(ProtocolError):
        b.as_str({}, "x")


# --- topics and perms ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["TopicA", "%RETRY%CG1", "a|b", "A-b_9", "x" * 127])
def test_validate_topic_ok(name: str) -> None:
    t.validate_topic(name)


@pytest.mark.parametrize("name, fragment", [
    ("", "blank"), ("   ", "blank"), ("a b", "illegal"), ("topic.x", "illegal"), ("中文", "illegal"),
    ("a\n", "illegal"), ("x" * 128, "maximum is 127"),
])
def test_validate_topic_rejects(name: str, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        t.validate_topic(name)


def test_validate_group() -> None:
    t.validate_group("g" * 255)
    with pytest.raises(ProtocolError):
        t.validate_group("g" * 256)


def test_retry_and_dlq_names() -> None:
    assert t.retry_topic("CG1") == "%RETRY%CG1" and t.dlq_topic("CG1") == "%DLQ%CG1"
    assert t.is_retry_topic("%RETRY%CG1") and not t.is_retry_topic("CG1")
    assert t.is_dlq_topic("%DLQ%CG1")
    assert t.group_of_retry_topic("%DLQ%CG1") == "CG1" and t.group_of_retry_topic("T") is None


def test_system_topics() -> None:
    for name in ("TBW102", "SCHEDULE_TOPIC_XXXX", "RMQ_SYS_TRANS_HALF_TOPIC", "rmq_sys_anything",
                 "OFFSET_MOVED_EVENT", "BenchmarkTest", "RMQ_SYS_TRACE_TOPIC"):
        assert t.is_system_topic(name)
    assert not t.is_system_topic("TopicA")
    assert t.is_system_topic("DefaultCluster", extra={"DefaultCluster", "broker-a"})
    assert t.is_not_allowed_send_topic("SCHEDULE_TOPIC_XXXX")
    assert t.is_not_allowed_send_topic("TRANS_CHECK_MAX_TIME_TOPIC")
    assert not t.is_not_allowed_send_topic("TBW102")
    assert t.NOT_ALLOWED_SEND_TOPICS <= t.SYSTEM_TOPICS
    assert t.reply_topic("DefaultCluster") == "DefaultCluster_REPLY_TOPIC"


def test_perm_bits() -> None:
    assert (t.PERM_READ, t.PERM_WRITE, t.PERM_INHERIT, t.PERM_PRIORITY) == (4, 2, 1, 8)
    assert t.is_readable(6) and t.is_writeable(6) and not t.is_inherited(6) and t.is_inherited(7)
    assert not t.is_writeable(4)
    assert t.perm_to_string(7) == "RWX" and t.perm_to_string(4) == "R--"


# --- bodies of the golden frames (tests/vectors/) -------------------------------------------

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _frame_body(name: str) -> bytes:
    """Body of a stored frame: int32 total | int32 header-length word | header | body."""
    raw = (VECTORS / name).read_bytes()
    (word,) = struct.unpack_from(">I", raw, 4)
    return raw[8 + (word & 0xFFFFFF):]


def test_captured_cpp_push_consumer_heartbeat() -> None:
    hb = b.HeartbeatData.from_json(_frame_body("cpp/heartbeat_consumer.bin"))
    assert hb.client_id.endswith("-127.0.0.1@DEFAULT")
    (cd,) = hb.consumer_data_set
    assert (cd.consume_type, cd.message_model, cd.consume_from_where) == (
        b.ConsumeType.CONSUME_PASSIVELY, b.MessageModel.CLUSTERING,
        b.ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET)
    retry, sub = cd.subscription_data_set
    assert retry.topic == "%RETRY%rocketpy_cpp_push_cg" and retry.is_all
    assert sub.sub_string == "TagA||TagB" and sub.tags_set == ("TagA", "TagB")
    assert sub.code_set == (2598919, 2598920)             # the client sent [0, 0]
    assert sub.sub_version > 0


def test_captured_cpp_orderly_pull_and_producer_heartbeats() -> None:
    orderly = b.HeartbeatData.from_json(_frame_body("cpp/heartbeat_consumer_orderly.bin"))
    assert orderly.consumer_data_set[0].group_name == "rocketpy_cpp_orderly_cg"
    pull = b.HeartbeatData.from_json(_frame_body("cpp/heartbeat_pull_consumer.bin"))
    (cd,) = pull.consumer_data_set
    assert cd.consume_type is b.ConsumeType.CONSUME_ACTIVELY and cd.subscription_data_set == ()
    producer = b.HeartbeatData.from_json(_frame_body("cpp/heartbeat_producer.bin"))
    assert producer.producer_data_set == (b.ProducerData("rocketpy_cpp_pg"),)
    assert producer.consumer_data_set == ()


def test_captured_cpp_lock_and_unlock_bodies() -> None:
    lock = b.LockBatchRequestBody.from_json(_frame_body("cpp/lock_batch_mq.bin"))
    assert lock.consumer_group == "rocketpy_cpp_orderly_cg"
    assert lock.mq_set == (b.MessageQueue("%RETRY%rocketpy_cpp_orderly_cg", "broker-a", 0),)
    unlock = b.UnlockBatchRequestBody.from_json(_frame_body("cpp/unlock_batch_mq.bin"))
    assert len(unlock.mq_set) == 7 and unlock.client_id == lock.client_id


def test_java_vectors() -> None:
    hb = b.HeartbeatData.from_json(_frame_body("java/heartbeat_java.bin"))
    assert hb == b.HeartbeatData.from_json(JAVA_HEARTBEAT)
    route = b.TopicRouteData.from_json(_frame_body("java/get_route_info_response_fastjson.bin"))
    assert route == ROUTE


# --- hostile bodies: never a crash, never a hang -------------------------------------------


def _run_isolated(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_deeply_nested_body_raises_protocol_error_not_segfault():
    # orjson before 3.10 recursed without bound and killed the process (exit 139).
    result = _run_isolated(
        "from rocketpy.protocol.bodies import parse_json_lenient\n"
        "from rocketpy.errors import ProtocolError\n"
        "try:\n"
        "    parse_json_lenient(b'[' * 300000 + b']' * 300000)\n"
        "except ProtocolError:\n"
        "    print('refused')\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


def test_unterminated_escaped_strings_are_linear():
    # A quadratic string scan would take minutes on this; the linear one takes milliseconds.
    result = _run_isolated(
        "from rocketpy.protocol.bodies import parse_json_lenient\n"
        "from rocketpy.errors import ProtocolError\n"
        "for body in (b'{' + b'\"\\\\\"' * 200000, b'{\"' + b'\\\\\"' * 200000 + b'\\\\'):\n"
        "    try:\n"
        "        parse_json_lenient(body)\n"
        "    except ProtocolError:\n"
        "        print('refused')\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["refused", "refused"]
