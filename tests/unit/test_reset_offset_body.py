"""ResetOffsetBody in both of RocketMQ's shapes (fastjson object keys, and the C++ list)."""

from __future__ import annotations

import pytest

from rocketpy.errors import ProtocolError
from rocketpy.protocol.bodies import MessageQueue
from rocketpy.protocol.reset_offset import (
    decode_reset_offset_body,
    encode_reset_offset_body,
    encode_reset_offset_body_for_c,
)

TABLE = {MessageQueue("T", "broker-a", 0): 5, MessageQueue("T", "broker-a", 3): 1 << 40,
         MessageQueue("Tö", "b", 1): 0}


def test_java_shape_has_object_keys_in_fastjson_field_order() -> None:
    body = encode_reset_offset_body({MessageQueue("T", "broker-a", 0): 5})
    assert body == b'{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:5}}'
    assert decode_reset_offset_body(body) == {MessageQueue("T", "broker-a", 0): 5}


def test_round_trips_and_whitespace() -> None:
    assert decode_reset_offset_body(encode_reset_offset_body(TABLE)) == TABLE
    assert decode_reset_offset_body(encode_reset_offset_body_for_c(TABLE)) == TABLE
    spaced = b'{ "offsetTable" : { {"topic":"T","brokerName":"broker-a","queueId":0} : 5 } }\n'
    assert decode_reset_offset_body(spaced) == {MessageQueue("T", "broker-a", 0): 5}
    assert decode_reset_offset_body(b'{"offsetTable":{}}') == {}


@pytest.mark.parametrize("body", [b"", b"{}", b'{"offsetTable":{{"topic":"T"}:5}}', b'{"offsetTable":{{}',
                                  b'{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:"x"}}'])
def test_malformed_bodies_raise_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_reset_offset_body(body)
