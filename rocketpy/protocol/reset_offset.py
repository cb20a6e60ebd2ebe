"""ResetOffsetBody: the queue -> offset table of a rewind (INVOKE_BROKER_TO_RESET_OFFSET's answer
and the RESET_CONSUMER_CLIENT_OFFSET push).

Two shapes, as RocketMQ's broker writes them:

- Java (and every non-C++ client): fastjson's serialization of `Map<MessageQueue, Long>`, whose
  keys are JSON objects, which plain JSON cannot express::

      {"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:5,...}}

- C++ (ResetOffsetBodyForC, chosen by the receiver's language CPP): a list::

      {"offsetTable":[{"brokerName":"broker-a","offset":5,"queueId":0,"topic":"T"},...]}

`decode_reset_offset_body` reads both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from rocketpy.errors import ProtocolError
from rocketpy.protocol.bodies import (
    MessageQueue,
    as_int,
    as_list,
    as_obj,
    dumps,
    parse_json_lenient,
)

_DECODER = json.JSONDecoder()


def _mq_key(mq: MessageQueue) -> str:
    # fastjson writes a bean's fields in alphabetical order
    return json.dumps({"brokerName": mq.broker_name, "queueId": mq.queue_id, "topic": mq.topic},
                      separators=(",", ":"), ensure_ascii=False)


def encode_reset_offset_body(table: Mapping[MessageQueue, int]) -> bytes:
    """The Java shape (object keys)."""
    items = ",".join(f"{_mq_key(mq)}:{int(offset)}" for mq, offset in table.items())
    return ("{\"offsetTable\":{" + items + "}}").encode()


def encode_reset_offset_body_for_c(table: Mapping[MessageQueue, int]) -> bytes:
    """The C++ shape (a list of queues with their offsets)."""
    return dumps({"offsetTable": [{"brokerName": mq.broker_name, "offset": int(offset), "queueId": mq.queue_id,
                                   "topic": mq.topic} for mq, offset in table.items()]})


def decode_reset_offset_body(body: bytes) -> dict[MessageQueue, int]:
    """Either shape; ProtocolError for anything else."""
    text = body.decode("utf-8", "replace").strip()
    start = text.find('"offsetTable"')
    if start < 0:
        raise ProtocolError("ResetOffsetBody has no offsetTable")
    pos = _skip(text, start + len('"offsetTable"'))
    pos = _expect(text, pos, ":")
    if pos < len(text) and text[pos] == "[":
        doc = as_obj(parse_json_lenient(body), "ResetOffsetBody")
        out: dict[MessageQueue, int] = {}
        for i, item in enumerate(as_list(doc.get("offsetTable"), "ResetOffsetBody.offsetTable")):
            what = f"ResetOffsetBody.offsetTable[{i}]"
            out[MessageQueue.from_obj(item, what)] = as_int(as_obj(item, what).get("offset"), f"{what}.offset")
        return out
    pos = _expect(text, pos, "{")
    out = {}
    pos = _skip(text, pos)
    if pos < len(text) and text[pos] == "}":
        return out
    while True:
        try:
            key, pos = _DECODER.raw_decode(text, _skip(text, pos))
            pos = _expect(text, pos, ":")
            value, pos = _DECODER.raw_decode(text, _skip(text, pos))
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"ResetOffsetBody is malformed at {exc.pos}: {exc.msg}") from None
        out[MessageQueue.from_obj(key, "ResetOffsetBody key")] = as_int(value, "ResetOffsetBody offset")
        pos = _skip(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        _expect(text, pos, "}")
        return out


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _expect(text: str, pos: int, char: str) -> int:
    pos = _skip(text, pos)
    if pos >= len(text) or text[pos] != char:
        raise ProtocolError(f"ResetOffsetBody: expected {char!r} at {pos}")
    return pos + 1
