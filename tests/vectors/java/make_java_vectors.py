"""Build the Java-style frames in this directory by hand from the reference text.

These are NOT captured from a Java peer: no Java broker or client runs on this
project's machines. Each frame is written from an example or a table in
shared/reference/remoting-protocol.md, in the form fastjson writes (top-level
keys alphabetical, compact, no trailing newline, null members left out), so
the codec is also checked against the Java writer's conventions, not only
the C++ one. Rerun after editing: ``python tests/vectors/java/make_java_vectors.py``.
It imports nothing from rocketpy on purpose (the vectors must not be derived
from the codec they test).
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent


def json_frame(header_json: str, body: bytes = b"") -> bytes:
    """int32 total | int32 (0 << 24 | H) | header | body; total = 4 + H + B."""
    header = header_json.encode("utf-8")
    return struct.pack(">ii", 4 + len(header) + len(body), len(header)) + header + body


def binary_frame(code: int, language: int, version: int, opaque: int, flag: int,
                 remark: str | None, ext: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """ROCKETMQ binary header (reference §3.2), header-length word with type byte 1."""
    remark_b = remark.encode("utf-8") if remark else b""
    ext_b = b"".join(
        struct.pack(">h", len(k.encode())) + k.encode() + struct.pack(">i", len(v.encode())) + v.encode()
        for k, v in ext
    )
    header = (struct.pack(">hbhiii", code, language, version, opaque, flag, len(remark_b)) + remark_b
              + struct.pack(">i", len(ext_b)) + ext_b)
    return struct.pack(">iI", 4 + len(header) + len(body), (1 << 24) | len(header)) + header + body


# §3.1, verbatim: "Example (a Java 4.9.8 broker's send response)".
SEND_RESPONSE = (
    '{"code":0,"extFields":{"MSG_REGION":"DefaultRegion","TRACE_ON":"true",'
    '"msgId":"7F00000100002A9F0000000000000000","queueId":"0","queueOffset":"0"},'
    '"flag":1,"language":"JAVA","opaque":42,"serializeTypeCurrentRPC":"JSON","version":409}'
)

# §8.1 TopicRouteData example, as fastjson writes it for a client below version 401:
# integer map keys unquoted, object keys alphabetical. Header: a SUCCESS response with
# no custom header (extFields null, so left out) and no remark.
ROUTE_RESPONSE_HEADER = (
    '{"code":0,"flag":1,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":409}'
)
ROUTE_BODY_FASTJSON = (
    '{"brokerDatas":[{"brokerAddrs":{0:"192.168.0.10:10911",1:"192.168.0.11:10911"},'
    '"brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},'
    '"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,'
    '"writeQueueNums":4}]}'
)

# §9.1 HeartbeatData example (enum names, numeric subVersion), sent by a Java client:
# HEART_BEAT has no custom header, so no extFields.
HEARTBEAT_HEADER = (
    '{"code":34,"flag":0,"language":"JAVA","opaque":3,"serializeTypeCurrentRPC":"JSON","version":409}'
)
HEARTBEAT_BODY = json.dumps({
    "clientID": "192.168.0.5@12345",
    "consumerDataSet": [{
        "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
        "consumeType": "CONSUME_PASSIVELY",
        "groupName": "CG1",
        "messageModel": "CLUSTERING",
        "subscriptionDataSet": [{
            "classFilterMode": False, "codeSet": [2598919, 2598920], "expressionType": "TAG",
            "subString": "TagA || TagB", "subVersion": 1700000000000, "tagsSet": ["TagA", "TagB"],
            "topic": "TopicA",
        }],
        "unitMode": False,
    }],
    "producerDataSet": [{"groupName": "PG1"}],
}, separators=(",", ":"))

# §9.2 SEND_MESSAGE_V2 (310) request with the short field names a..k, all strings (Java
# sends every ext value as a string). fastjson writes the ext HashMap in hash order;
# the order below is the one java.util.HashMap iterates these single-letter keys in
# (their hashes are their char codes, so ascending).
SEND_V2_REQUEST = (
    '{"code":310,"extFields":{"a":"PG1","b":"TopicA","c":"TBW102","d":"4","e":"1","f":"0",'
    '"g":"1700000000000","h":"0","i":"KEYS\\u0001k1\\u0002TAGS\\u0001TagA\\u0002'
    'UNIQ_KEY\\u00017F000001303918B4AAC2000000000000\\u0002WAIT\\u0001true\\u0002",'
    '"j":"0","k":"false"},"flag":0,"language":"JAVA","opaque":11,'
    '"serializeTypeCurrentRPC":"JSON","version":409}'
)

VECTORS: dict[str, tuple[bytes, int, str]] = {
    "send_response.bin": (
        json_frame(SEND_RESPONSE), 0,
        "§3.1 example, verbatim: a Java 4.9.8 broker's SEND_MESSAGE response"),
    "get_route_info_response_fastjson.bin": (
        json_frame(ROUTE_RESPONSE_HEADER, ROUTE_BODY_FASTJSON.encode()), 0,
        "§8.1 TopicRouteData example as a SUCCESS response; body with fastjson's unquoted "
        "integer keys in brokerAddrs (what a Java NameServer sends to version < 401)"),
    "heartbeat_java.bin": (
        json_frame(HEARTBEAT_HEADER, HEARTBEAT_BODY.encode()), 34,
        "§9.1 HeartbeatData example (enum names, numeric subVersion) in a Java HEART_BEAT request"),
    "send_message_v2.bin": (
        json_frame(SEND_V2_REQUEST, b"hello"), 310,
        "§9.2 SEND_MESSAGE_V2 request with fields a..k as strings, body 'hello'"),
    "send_response_rocketmq_binary.bin": (
        binary_frame(0, 0, 409, 42, 1, None, [
            ("MSG_REGION", "DefaultRegion"), ("TRACE_ON", "true"),
            ("msgId", "7F00000100002A9F0000000000000000"), ("queueId", "0"), ("queueOffset", "0"),
        ]), 0,
        "the §3.1 send response in the ROCKETMQ binary header of §3.2 (type byte 1, "
        "language JAVA=0, no remark)"),
}


def main() -> None:
    manifest = {
        "source": "built by hand from shared/reference/remoting-protocol.md; NOT captured",
        "command": "python tests/vectors/java/make_java_vectors.py",
        "vectors": {},
    }
    for name, (frame, code, description) in VECTORS.items():
        (HERE / name).write_bytes(frame)
        manifest["vectors"][name] = {
            "code": code, "description": description, "bytes": len(frame),
            "sha256": hashlib.sha256(frame).hexdigest(),
        }
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True,
                                                   ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
