"""Hypothesis: every codec round-trips, and decoders of arbitrary input raise only ProtocolError."""

from __future__ import annotations

import dataclasses
import socket
import struct
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rocketpy import limits
from rocketpy.errors import ProtocolError
from rocketpy.protocol import bodies as b
from rocketpy.protocol import message as m
from rocketpy.protocol.batch import BatchItem, decode_batch_body, encode_batch_body
from rocketpy.protocol.msgid import decode_offset_msg_id, offset_msg_id

# Per test, so loading this module changes no global hypothesis profile.
common = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])

int32 = st.integers(-(1 << 31), (1 << 31) - 1)
int64 = st.integers(-(1 << 63), (1 << 63) - 1)
v4 = st.ip_addresses(v=4).map(str)
# Hosts decode to inet_ntop's canonical text (e.g. '::ffff:0.0.0.0', which str(IPv6Address)
# writes as '::ffff:0:0'), so generate them in that form.
v6 = st.ip_addresses(v=6).map(lambda a: socket.inet_ntop(socket.AF_INET6, a.packed))
port = st.integers(0, 65535)
# Text without the property separators, never empty.
prop_text = st.text(st.characters(exclude_characters="\x01\x02", categories=("L", "N", "P", "S", "Z")),
                    min_size=1, max_size=20)
topic_text = st.text(min_size=1, max_size=60).filter(lambda s: 0 < len(s.encode()) <= 127)
name = st.from_regex(r"[%|a-zA-Z0-9_-]{1,20}", fullmatch=True)


# --- stored record ---------------------------------------------------------------------


@st.composite
def records(draw: st.DrawFn) -> m.MessageRecord:
    born_v6 = draw(st.booleans())
    store_v6 = draw(st.booleans())
    sys_flag = draw(st.integers(0, 0xF)) | (0x10 if born_v6 else 0) | (0x20 if store_v6 else 0)
    props = draw(st.dictionaries(prop_text, prop_text, max_size=5))
    return m.MessageRecord(
        topic=draw(topic_text), body=draw(st.binary(max_size=300)), queue_id=draw(int32),
        flag=draw(int32), queue_offset=draw(int64), phys_offset=draw(int64), sys_flag=sys_flag,
        born_timestamp=draw(int64), born_host=draw(v6 if born_v6 else v4), born_port=draw(int32),
        store_timestamp=draw(int64), store_host=draw(v6 if store_v6 else v4), store_port=draw(int32),
        reconsume_times=draw(int32), prepared_transaction_offset=draw(int64),
        properties=m.format_properties(props) + draw(st.sampled_from(["", "\x02"])),
    )


@common
@given(records())
def test_record_round_trip(rec: m.MessageRecord) -> None:
    raw = m.encode_record(rec)
    assert len(raw) == rec.size
    back = m.decode_record(raw, check_crc=True)
    assert back == dataclasses.replace(rec, body_crc=m.body_crc(rec.body))
    assert m.encode_record(back) == raw
    h = m.read_header(raw)
    assert (h.queue_offset, h.phys_offset, h.store_timestamp) == (
        rec.queue_offset, rec.phys_offset, rec.store_timestamp)


@common
@given(st.lists(records(), min_size=1, max_size=4))
def test_concatenated_records(recs: list[m.MessageRecord]) -> None:
    raw = b"".join(bytes(m.encode_record(r)) for r in recs)
    assert [r.topic for r in m.iter_records(raw)] == [r.topic for r in recs]


@common
@given(st.binary(max_size=400))
def test_record_decoder_on_arbitrary_bytes(raw: bytes) -> None:
    try:
        m.decode_record(raw)
    except ProtocolError:
        pass
    try:
        m.iter_records(raw)
    except ProtocolError:
        pass


@common
@given(records(), st.data())
def test_record_decoder_on_corrupted_records(rec: m.MessageRecord, data: st.DataObject) -> None:
    raw = bytearray(m.encode_record(rec))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        m.decode_record(bytes(raw[:cut]), check_crc=data.draw(st.booleans()))
    except ProtocolError:
        pass


# --- properties and hashes --------------------------------------------------------------


@common
@given(st.dictionaries(prop_text, prop_text, max_size=8), st.booleans())
def test_properties_round_trip(props: dict[str, str], trailing: bool) -> None:
    text = m.format_properties(props)
    assert m.parse_properties(text + ("\x02" if trailing and text else "")) == props


@common
@given(st.text(st.characters(exclude_categories=()), max_size=30))
def test_java_string_hash_matches_utf16_definition(text: str) -> None:
    units = text.encode("utf-16-be", "surrogatepass")
    h = 0
    for (unit,) in struct.iter_unpack(">H", units):
        h = (31 * h + unit) % (1 << 32)
    expected = h - (1 << 32) if h >= 1 << 31 else h
    assert m.java_string_hash(text) == expected
    assert 0 <= m.index_key_hash(text) <= (1 << 31) - 1


# --- batch --------------------------------------------------------------------------------

batch_items = st.builds(BatchItem, int32, st.binary(max_size=100),
                        st.dictionaries(prop_text, prop_text, max_size=3).map(m.format_properties))


@common
@given(st.lists(batch_items, min_size=1, max_size=10))
def test_batch_round_trip(items: list[BatchItem]) -> None:
    assert decode_batch_body(encode_batch_body(items)) == items


@common
@given(st.binary(max_size=300))
def test_batch_decoder_on_arbitrary_bytes(raw: bytes) -> None:
    try:
        decode_batch_body(raw, max_items=8)
    except ProtocolError:
        pass


@common
@given(st.lists(batch_items, min_size=1, max_size=3), st.data())
def test_batch_decoder_on_corrupted_bodies(items: list[BatchItem], data: st.DataObject) -> None:
    raw = bytearray(encode_batch_body(items))
    raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        decode_batch_body(bytes(raw[:data.draw(st.integers(0, len(raw)))]))
    except ProtocolError:
        pass


# --- msgid ---------------------------------------------------------------------------------


@common
@given(st.one_of(v4, v6), port, st.integers(0, (1 << 63) - 1))
def test_offset_msg_id_round_trip(host: str, p: int, off: int) -> None:
    mid = offset_msg_id(host, p, off)
    assert len(mid) == (32 if "." in host and ":" not in host else 56)
    h, p2, off2 = decode_offset_msg_id(mid)
    assert (p2, off2) == (p, off)
    assert offset_msg_id(h, p2, off2) == mid


@common
@given(st.text(max_size=60))
def test_offset_msg_id_decoder_on_arbitrary_text(text: str) -> None:
    try:
        decode_offset_msg_id(text)
    except ProtocolError:
        pass


# --- JSON bodies -----------------------------------------------------------------------------

ints_nonneg = st.integers(0, 1 << 40)
int32_nonneg = st.integers(0, (1 << 31) - 1)
small_text = st.text(max_size=12)
str_tuple = st.lists(small_text, max_size=3).map(tuple)

queue_datas = st.builds(b.QueueData, name, st.integers(0, 64), st.integers(0, 64), st.integers(0, 15),
                        st.integers(0, 3))
broker_datas = st.builds(b.BrokerData, small_text, name,
                         st.dictionaries(st.integers(0, 8), small_text, max_size=3))
routes = st.builds(b.TopicRouteData, st.lists(queue_datas, max_size=3).map(tuple),
                   st.lists(broker_datas, max_size=3).map(tuple),
                   st.dictionaries(small_text, str_tuple, max_size=2),
                   st.one_of(st.none(), small_text))
topic_configs = st.builds(b.TopicConfig, name, st.integers(0, 64), st.integers(0, 64),
                          st.integers(0, 15), st.sampled_from(b.TopicFilterType), st.integers(0, 3),
                          st.booleans())
data_versions = st.builds(b.DataVersion, ints_nonneg, ints_nonneg)
wrappers = st.builds(b.TopicConfigSerializeWrapper,
                     st.lists(topic_configs, max_size=4).map(lambda ts: {x.topic_name: x for x in ts}),
                     data_versions)
register_bodies = st.builds(b.RegisterBrokerBody, wrappers, str_tuple)
tag = st.text(st.characters(exclude_characters="|", exclude_categories=("Cs", "Cc", "Zs")),
              min_size=1, max_size=8)
subscriptions = st.builds(
    lambda topic, tags, ver: b.build_subscription(topic, " || ".join(tags) if tags else "*",
                                                  sub_version=ver),
    name, st.lists(tag, max_size=3), ints_nonneg)
consumer_datas = st.builds(b.ConsumerData, name, st.sampled_from(b.ConsumeType),
                           st.sampled_from(b.MessageModel), st.sampled_from(b.ConsumeFromWhere),
                           st.booleans(), st.lists(subscriptions, max_size=3).map(tuple))
heartbeats = st.builds(b.HeartbeatData, small_text,
                       st.lists(st.builds(b.ProducerData, name), max_size=2).map(tuple),
                       st.lists(consumer_datas, max_size=2).map(tuple))
mqs = st.builds(b.MessageQueue, name, name, st.integers(0, 64))
mq_sets = st.lists(mqs, max_size=4, unique=True).map(tuple)
offset_tables = st.builds(b.ConsumerOffsetTable, st.dictionaries(
    small_text, st.dictionaries(st.integers(0, 1024), ints_nonneg, max_size=4), max_size=3))
cluster_infos = st.builds(
    b.ClusterInfo, st.dictionaries(name, broker_datas, max_size=3),
    st.dictionaries(name, str_tuple, max_size=2))

BODIES = st.one_of(
    routes, wrappers, register_bodies, heartbeats, offset_tables, cluster_infos, data_versions,
    st.builds(b.LockBatchRequestBody, small_text, small_text, mq_sets),
    st.builds(b.UnlockBatchRequestBody, small_text, small_text, mq_sets),
    st.builds(b.LockBatchResponseBody, mq_sets),
    st.builds(b.ConsumerIdList, str_tuple),
    st.builds(b.TopicList, str_tuple, st.one_of(st.none(), small_text)),
    st.builds(b.KVTable, st.dictionaries(small_text, small_text, max_size=3)),
    st.builds(b.DelayOffsetTable, st.dictionaries(st.integers(1, 18), ints_nonneg, max_size=4)),
)

BODY_CLASSES: list[type[b.JsonBody]] = [
    b.TopicRouteData, b.TopicConfigSerializeWrapper, b.RegisterBrokerBody, b.HeartbeatData,
    b.ConsumerOffsetTable, b.ClusterInfo, b.DataVersion, b.LockBatchRequestBody,
    b.UnlockBatchRequestBody, b.LockBatchResponseBody, b.ConsumerIdList, b.TopicList, b.KVTable,
    b.DelayOffsetTable, b.QueueData, b.BrokerData, b.TopicConfig, b.SubscriptionData,
    b.ConsumerData, b.ProducerData, b.MessageQueue,
]


def _fastjson_style(raw: bytes) -> bytes:
    """Unquote integer keys the way fastjson writes them."""
    import re
    return re.sub(rb'([{,])"(-?[0-9]+)":', rb"\1\2:", raw)


@common
@given(BODIES)
def test_body_round_trip(body: b.JsonBody) -> None:
    raw = body.to_json()
    orjson.loads(raw)                                      # strict JSON
    assert type(body).from_json(raw) == body


@common
@given(st.one_of(offset_tables, cluster_infos, routes))
def test_body_round_trip_through_fastjson_form(body: b.JsonBody) -> None:
    assert type(body).from_json(_fastjson_style(body.to_json())) == body


@common
@given(st.builds(b.RegisterBrokerBody, st.builds(
    b.TopicConfigSerializeWrapper,
    st.lists(st.builds(b.TopicConfig, name, st.integers(0, 64), st.integers(0, 64), st.integers(0, 15),
                       st.sampled_from(b.TopicFilterType)), max_size=4).map(
        lambda ts: {x.topic_name: x for x in ts}),
    data_versions), str_tuple))
def test_register_body_compressed_round_trip(body: b.RegisterBrokerBody) -> None:
    assert b.RegisterBrokerBody.decode(body.encode_compressed(), compressed=True) == body


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(1 << 63), (1 << 63) - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=12), children, max_size=4)),
    max_leaves=20,
)

KEYS = ["topic", "brokerName", "queueId", "groupName", "clientID", "consumeType", "messageModel",
        "consumeFromWhere", "subscriptionDataSet", "consumerDataSet", "producerDataSet", "subString",
        "tagsSet", "codeSet", "subVersion", "offsetTable", "brokerAddrs", "queueDatas", "brokerDatas",
        "topicConfigTable", "dataVersion", "topicConfigSerializeWrapper", "mqSet", "lockOKMQSet",
        "consumerGroup", "clientId", "table", "topicList", "perm", "unitMode", "topicName",
        "brokerAddrTable", "clusterAddrTable", "filterServerTable", "consumerIdList", "counter"]

shaped_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["0", "x", "TAG", "*"])),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(KEYS + ["0", "1"]), children, max_size=5)),
    max_leaves=25,
)


@common
@given(st.sampled_from(BODY_CLASSES), st.one_of(json_values, shaped_json))
def test_body_parsers_on_arbitrary_json(cls: type[b.JsonBody], value: Any) -> None:
    try:
        cls.from_obj(value)
    except ProtocolError:
        pass
    try:
        cls.from_json(orjson.dumps(value))
    except ProtocolError:
        pass


@common
@given(st.sampled_from(BODY_CLASSES), st.binary(max_size=80))
def test_body_parsers_on_arbitrary_bytes(cls: type[b.JsonBody], raw: bytes) -> None:
    try:
        cls.from_json(raw)
    except ProtocolError:
        pass


@common
@given(st.binary(max_size=200))
def test_compressed_register_body_on_arbitrary_bytes(raw: bytes) -> None:
    import zlib
    for data in (raw, zlib.compress(raw)):
        try:
            b.RegisterBrokerBody.decode_compressed(data)
        except ProtocolError:
            pass


def test_limits_used_here_are_sane() -> None:
    assert limits.REGISTER_BROKER_BODY_INFLATED_SIZE_MAX >= limits.FRAME_SIZE_MAX
