"""fastjson's object-keyed admin bodies (TopicStatsTable, ConsumeStats, ResetOffsetBody)."""

from __future__ import annotations

import pytest

from rocketpy.client.admin import parse_reset_offset_body
from rocketpy.errors import ProtocolError
from rocketpy.protocol.admin_bodies import (
    ConsumeStats,
    OffsetWrapper,
    TopicOffset,
    TopicStatsTable,
    parse_fastjson,
)
from rocketpy.protocol.bodies import MessageQueue

# What a Java broker writes (fastjson: object map keys, fields in alphabetical order).
JAVA_TOPIC_STATS = (b'{"offsetTable":{{"brokerName":"broker-a","queueId":1,"topic":"T"}:{"lastUpdateTimestamp":'
                    b'1700000000000,"maxOffset":9,"minOffset":2},{"brokerName":"broker-a","queueId":0,"topic":"T"}'
                    b':{"lastUpdateTimestamp":0,"maxOffset":0,"minOffset":0}}}')


def test_java_topic_stats_parse_and_reencode_byte_for_byte() -> None:
    stats = TopicStatsTable.from_json(JAVA_TOPIC_STATS)
    assert stats.offset_table == (
        (MessageQueue("T", "broker-a", 0), TopicOffset(0, 0, 0)),
        (MessageQueue("T", "broker-a", 1), TopicOffset(2, 9, 1700000000000)))
    reordered = TopicStatsTable((stats.offset_table[1], stats.offset_table[0]))
    assert reordered.to_json() == JAVA_TOPIC_STATS


def test_consume_stats_round_trip_and_lag() -> None:
    stats = ConsumeStats(((MessageQueue("T", "b", 0), OffsetWrapper(10, 4, 123)),
                          (MessageQueue("T", "b", 1), OffsetWrapper(3, 5, 0))), 2.5)
    data = stats.to_json()
    assert data.startswith(b'{"consumeTps":2.5,"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:')
    back = ConsumeStats.from_json(data)
    assert back == stats and back.total_lag == 6


def test_reset_offset_bodies_java_and_c() -> None:
    java = b'{"offsetTable":{{"brokerName":"b","queueId":2,"topic":"T"}:17}}'
    assert parse_reset_offset_body(java) == [(MessageQueue("T", "b", 2), 17)]
    for_c = b'{"offsetTable":[{"brokerName":"b","queueId":1,"topic":"T","offset":5}]}'
    assert parse_reset_offset_body(for_c) == [(MessageQueue("T", "b", 1), 5)]


@pytest.mark.parametrize("bad", [b'{"a":', b'{{"x":1}}', b'{"a":1} x', b"{{}:" + b"[" * 100 + b"]" * 100 + b"}", b'{"a":"\\'])
def test_malformed_bodies_raise_protocol_error(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_fastjson(bad)


def test_strings_with_braces_and_escapes_survive() -> None:
    doc = parse_fastjson(b'{{"k":"a\\"}b"}:{"v":"x:{y}"}}')
    assert doc == {'{"k":"a\\"}b"}': {"v": "x:{y}"}}
