"""Golden frames (tests/vectors/) through the remoting codec: decode, re-encode byte for byte.

cpp/  captured from the real C++ client, PyPI rocketmq==0.4.4 (tests/compat/capture_vectors.py)
java/ built by hand from the reference text, not captured (java/make_java_vectors.py)

Besides the round trip, the facts the capture showed are pinned here, read
from the raw bytes where the codec is not the point, so a regression in the
codec and a surprise in a re-capture both show up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import zlib
from pathlib import Path

import pytest

from rocketpy.protocol.remoting import RemotingCommand, decode_frame, encode_frame

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
CPP = VECTORS / "cpp"
JAVA = VECTORS / "java"
ALL_FILES = sorted(VECTORS.glob("*/*.bin"))
CPP_RESPONSES = {"consumer_running_info_response.bin"}
CPP_REQUESTS = sorted(p for p in CPP.glob("*.bin") if p.name not in CPP_RESPONSES)


def _manifest(directory: Path) -> dict[str, dict[str, object]]:
    return json.loads((directory / "manifest.json").read_text())["vectors"]


def _decode(path: Path) -> RemotingCommand:
    raw = path.read_bytes()
    return decode_frame(raw[4:])


def _header_bytes(raw: bytes) -> bytes:
    (word,) = struct.unpack_from(">I", raw, 4)
    return raw[8 : 8 + (word & 0xFFFFFF)]


def _properties(text: str) -> dict[str, str]:
    """Properties string (reference §10.1): name \\x01 value \\x02, repeated."""
    assert text.endswith("\x02"), text
    out = {}
    for pair in text[:-1].split("\x02"):
        name, sep, value = pair.partition("\x01")
        assert sep, f"property without \\x01: {pair!r}"
        out[name] = value
    return out


def test_vectors_exist() -> None:
    assert len(list(CPP.glob("*.bin"))) >= 4
    assert len(list(JAVA.glob("*.bin"))) >= 1


@pytest.mark.parametrize("directory", [CPP, JAVA], ids=lambda d: d.name)
def test_manifest_lists_every_vector_with_its_hash(directory: Path) -> None:
    manifest = _manifest(directory)
    assert sorted(manifest) == sorted(p.name for p in directory.glob("*.bin"))
    for name, facts in manifest.items():
        raw = (directory / name).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == facts["sha256"], f"{name} changed since capture"
        assert len(raw) == facts["bytes"]


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_decode_then_encode_is_byte_exact(path: Path) -> None:
    raw = path.read_bytes()
    (total,) = struct.unpack_from(">i", raw, 0)
    assert total == len(raw) - 4
    cmd = decode_frame(raw[4:])
    assert cmd.code == _manifest(path.parent)[path.name]["code"]
    assert encode_frame(cmd) == raw


@pytest.mark.parametrize("path", CPP_REQUESTS, ids=lambda p: p.name)
def test_cpp_request_header_facts(path: Path) -> None:
    raw = path.read_bytes()
    cmd = decode_frame(raw[4:])
    assert cmd.language == "CPP"
    assert cmd.version == 63                         # MQVersion V3_1_8
    assert cmd.flag == 0                             # requests; oneway ones too (client bug)
    assert cmd.remark == ""                          # always written, empty
    assert int(cmd.serialize_type) == 0              # JSON only
    # jsoncpp's FastWriter ends the header with a newline, counted in the header length.
    assert _header_bytes(raw).endswith(b"}\n")
    # Every request carries the ACL keys, even with no credentials set.
    assert cmd.ext_fields["AccessKey"] == ""
    assert cmd.ext_fields["OnsChannel"] == "ALIYUN"
    assert len(cmd.ext_str("Signature") or "") == 28  # base64 of a 20-byte HMAC-SHA1


@pytest.mark.parametrize("path", sorted(CPP.glob("*.bin")), ids=lambda p: p.name)
def test_cpp_signature_is_acl_hmac_with_empty_secret(path: Path) -> None:
    """Reference §13.3: Base64(HMAC-SHA1(secret, ext values except Signature ordered by key,
    then the body)); numbers enter as their decimal strings. The C++ client signs with an
    empty secret when no credentials are set."""
    cmd = _decode(path)
    signed = "".join(cmd.ext_str(k) or "" for k in sorted(cmd.ext_fields) if k != "Signature")
    digest = hmac.new(b"", signed.encode() + cmd.body, hashlib.sha1).digest()
    assert base64.b64encode(digest).decode() == cmd.ext_str("Signature")


def test_cpp_send_message() -> None:
    cmd = _decode(CPP / "send_message.bin")
    assert cmd.code == 10
    assert cmd.body == b"hello from the C++ client"
    ext = cmd.ext_fields
    assert ext["topic"] == "RocketpyCompatTopic"
    assert ext["producerGroup"] == "rocketpy_cpp_pg"
    assert ext["defaultTopic"] == "TBW102"
    # JSON types as sent: numbers for these ...
    for key in ("queueId", "sysFlag", "flag", "defaultTopicQueueNums"):
        assert type(ext[key]) is int, key
    assert ext["defaultTopicQueueNums"] == 4
    assert cmd.ext_str("sysFlag") == "0"
    # ... strings for these, booleans as "0"/"1".
    for key in ("bornTimestamp", "reconsumeTimes", "unitMode", "batch", "properties"):
        assert type(ext[key]) is str, key
    assert ext["batch"] == "0" and ext["unitMode"] == "0" and ext["reconsumeTimes"] == "0"
    assert int(ext["bornTimestamp"]) > 1_600_000_000_000
    props = _properties(cmd.ext_str("properties") or "")
    assert props["TAGS"] == "TagA"
    assert props["KEYS"] == "key-1"
    assert props["WAIT"] == "true"
    assert props["color"] == "blue"
    uniq = props["UNIQ_KEY"]
    assert len(uniq) == 32 and int(uniq, 16) >= 0
    assert uniq.startswith("0100007F")               # 127.0.0.1, little-endian
    assert list(props) == ["KEYS", "TAGS", "UNIQ_KEY", "WAIT", "color"]


def test_cpp_send_message_compressed_with_delay() -> None:
    cmd = _decode(CPP / "send_message_compressed_delay.bin")
    assert cmd.ext_fields["sysFlag"] == 1            # COMPRESSED
    assert cmd.body[:2] == b"\x78\x5e"               # zlib header, levels 2-5 (client uses 5)
    assert zlib.decompress(cmd.body) == b"0123456789abcdef" * 320
    props = _properties(cmd.ext_str("properties") or "")
    assert props["DELAY"] == "3"
    assert props["TAGS"] == "TagB"


def test_cpp_send_oneway_has_no_oneway_bit() -> None:
    cmd = _decode(CPP / "send_oneway.bin")
    assert cmd.code == 10
    assert cmd.flag == 0 and not cmd.is_oneway
    assert cmd.body == b"oneway body"


def test_cpp_send_orderly_picks_queue_from_arg() -> None:
    cmd = _decode(CPP / "send_orderly.bin")
    assert cmd.ext_fields["queueId"] == 3            # send_orderly(msg, 7) with 4 queues


def test_cpp_send_batch_is_code_10_with_batch_1() -> None:
    cmd = _decode(CPP / "send_batch.bin")
    assert cmd.code == 10                            # not SEND_BATCH_MESSAGE (320)
    assert cmd.ext_fields["batch"] == "1"
    assert _properties(cmd.ext_str("properties") or "") == {"WAIT": "true"}
    items = []
    body, pos = cmd.body, 0
    while pos < len(body):
        total, magic, body_crc, flag, body_len = struct.unpack_from(">iiiii", body, pos)
        item_body = body[pos + 20 : pos + 20 + body_len]
        (props_len,) = struct.unpack_from(">h", body, pos + 20 + body_len)
        props_raw = body[pos + 22 + body_len : pos + 22 + body_len + props_len]
        assert total == 20 + body_len + 2 + props_len
        assert (magic, body_crc, flag) == (0, 0, 0)
        items.append((item_body, _properties(props_raw.decode())))
        pos += total
    assert pos == len(body)
    assert [b for b, _ in items] == [b"batch body 0", b"batch body 1"]
    for i, (_, props) in enumerate(items):
        assert props["KEYS"] == f"key-batch-{i}"
        assert props["TAGS"] == "TagE"
        assert props["idx"] == str(i)
        assert props["WAIT"] == "true"
        # Each item carries its own UNIQ_KEY (the reference said batch items get none).
        assert len(props["UNIQ_KEY"]) == 32


def test_cpp_route_query() -> None:
    cmd = _decode(CPP / "get_route_info.bin")
    assert cmd.code == 105
    assert cmd.ext_str("topic") == "RocketpyCompatTopic"
    assert cmd.opaque == 0                           # first request of the process
    assert cmd.body == b""


def test_cpp_heartbeat_producer() -> None:
    cmd = _decode(CPP / "heartbeat_producer.bin")
    assert cmd.code == 34
    assert cmd.body.endswith(b"}\n")                 # JSON bodies end with a newline too
    data = json.loads(cmd.body)
    assert data["clientID"].endswith("-127.0.0.1@DEFAULT")   # <pid>-<ip>@DEFAULT
    assert data["producerDataSet"] == [{"groupName": "rocketpy_cpp_pg"}]
    assert "consumerDataSet" not in data


def test_cpp_heartbeat_push_consumer() -> None:
    data = json.loads(_decode(CPP / "heartbeat_consumer.bin").body)
    assert "clientID" in data and "producerDataSet" not in data
    (consumer,) = data["consumerDataSet"]
    # Enums as ordinals: PASSIVELY, CLUSTERING, CONSUME_FROM_LAST_OFFSET.
    assert (consumer["consumeType"], consumer["messageModel"], consumer["consumeFromWhere"]) == (1, 1, 0)
    assert consumer["groupName"] == "rocketpy_cpp_push_cg"
    assert "unitMode" not in consumer
    retry, topic = consumer["subscriptionDataSet"]
    assert retry == {"subString": "*", "subVersion": retry["subVersion"],
                     "topic": "%RETRY%rocketpy_cpp_push_cg"}
    assert topic["subString"] == "TagA||TagB"
    assert topic["tagsSet"] == ["TagA", "TagB"]
    assert topic["codeSet"] == [0, 0]                # atoi(tag): garbage, recompute from tagsSet
    assert type(topic["subVersion"]) is str and topic["subVersion"].isdigit()
    for absent in ("expressionType", "classFilterMode"):
        assert absent not in topic


def test_cpp_heartbeat_pull_consumer() -> None:
    data = json.loads(_decode(CPP / "heartbeat_pull_consumer.bin").body)
    (consumer,) = data["consumerDataSet"]
    assert consumer["consumeType"] == 0              # CONSUME_ACTIVELY
    assert "subscriptionDataSet" not in consumer


def test_cpp_pull_push_consumer() -> None:
    cmd = _decode(CPP / "pull_message.bin")
    ext = cmd.ext_fields
    assert cmd.code == 11
    assert ext["topic"] == "RocketpyCompatTopic"
    assert ext["sysFlag"] == 6                       # SUSPEND | SUBSCRIPTION
    assert ext["maxMsgNums"] == 32 and ext["queueId"] == 0
    assert ext["queueOffset"] == "0"
    assert ext["commitOffset"] == "-1"
    assert ext["suspendTimeoutMillis"] == "15000"
    assert ext["subscription"] == "TagA||TagB"
    assert type(ext["subVersion"]) is str
    assert "expressionType" not in ext


def test_cpp_pull_pull_consumer() -> None:
    ext = _decode(CPP / "pull_message_pull_consumer.bin").ext_fields
    assert ext["sysFlag"] == 4                       # SUBSCRIPTION only: no long polling
    assert ext["suspendTimeoutMillis"] == "20000"
    assert ext["subVersion"] == "0"
    assert ext["subscription"] == "*"


def test_cpp_offsets() -> None:
    query = _decode(CPP / "query_consumer_offset.bin")
    assert query.code == 14
    assert query.ext_fields["queueId"] == 0
    assert query.ext_str("consumerGroup") == "rocketpy_cpp_push_cg"
    max_offset = _decode(CPP / "get_max_offset.bin")
    assert max_offset.code == 30 and "consumerGroup" not in max_offset.ext_fields
    update = _decode(CPP / "update_consumer_offset.bin")
    assert update.code == 15 and update.flag == 0
    assert update.ext_fields["commitOffset"] == "1"
    assert update.ext_fields["queueId"] == 0


def test_cpp_send_back_uses_commitlog_offset() -> None:
    cmd = _decode(CPP / "consumer_send_msg_back.bin")
    assert cmd.code == 36
    assert cmd.ext_fields["offset"] == "4096"        # physical CommitLog offset, a string
    assert cmd.ext_fields["delayLevel"] == 0         # a number; 0 = broker chooses
    assert cmd.ext_str("group") == "rocketpy_cpp_push_cg"
    for absent in ("originMsgId", "originTopic", "maxReconsumeTimes"):
        assert absent not in cmd.ext_fields


def test_cpp_lock_and_unregister() -> None:
    lock = json.loads(_decode(CPP / "lock_batch_mq.bin").body)
    assert set(lock) == {"clientId", "consumerGroup", "mqSet"}
    assert len(lock["mqSet"]) == 1                   # one queue per LOCK_BATCH_MQ
    unregister = _decode(CPP / "unregister_client_consumer.bin")
    assert unregister.code == 35
    assert unregister.ext_fields["producerGroup"] == ""
    assert unregister.ext_fields["consumerGroup"] == "rocketpy_cpp_push_cg"


def test_cpp_response_to_server_request() -> None:
    """The client's answer to GET_CONSUMER_RUNNING_INFO (307) sent by the capture stub
    (opaque 1000001, version 409): the client echoes opaque AND version, keeps CPP."""
    raw = (CPP / "consumer_running_info_response.bin").read_bytes()
    cmd = decode_frame(raw[4:])
    assert (cmd.code, cmd.flag, cmd.opaque) == (0, 1, 1_000_001)
    assert cmd.is_response
    assert (cmd.language, cmd.version, cmd.remark) == ("CPP", 409, "")
    assert _header_bytes(raw).endswith(b"}\n")
    assert set(cmd.ext_fields) == {"AccessKey", "OnsChannel", "Signature"}
    # Body: not strict JSON. mqTable has MessageQueue OBJECTS as keys, written by jsoncpp's
    # StyledWriter (indented), the rest compact; the whole ends with a newline.
    assert cmd.body.startswith(b'{"mqTable":{{\n   "brokerName" : "broker-a",')
    assert cmd.body.endswith(b"}\n")
    with pytest.raises(ValueError):
        json.loads(cmd.body)
    assert b'"subscriptionSet":[' in cmd.body and b'"properties":{' in cmd.body


def test_java_send_response() -> None:
    raw = (JAVA / "send_response.bin").read_bytes()
    cmd = decode_frame(raw[4:])
    assert (cmd.code, cmd.flag, cmd.opaque, cmd.language, cmd.version) == (0, 1, 42, "JAVA", 409)
    assert cmd.is_response and cmd.remark is None
    assert all(type(v) is str for v in cmd.ext_fields.values())
    assert cmd.ext_str("queueOffset") == "0"
    assert not _header_bytes(raw).endswith(b"\n")    # fastjson writes no newline


def test_java_binary_header() -> None:
    raw = (JAVA / "send_response_rocketmq_binary.bin").read_bytes()
    assert raw[4] == 1                               # type byte of the header-length word
    cmd = decode_frame(raw[4:])
    assert int(cmd.serialize_type) == 1
    assert (cmd.code, cmd.flag, cmd.opaque, cmd.language, cmd.version) == (0, 1, 42, "JAVA", 409)
    assert cmd.remark is None
    assert list(cmd.ext_fields) == ["MSG_REGION", "TRACE_ON", "msgId", "queueId", "queueOffset"]
    assert cmd.ext_str("msgId") == "7F00000100002A9F0000000000000000"


def test_java_route_body_keeps_unquoted_keys() -> None:
    cmd = _decode(JAVA / "get_route_info_response_fastjson.bin")
    assert b'"brokerAddrs":{0:"192.168.0.10:10911",1:' in cmd.body


def test_java_heartbeat_enum_names() -> None:
    data = json.loads(_decode(JAVA / "heartbeat_java.bin").body)
    (consumer,) = data["consumerDataSet"]
    assert consumer["consumeType"] == "CONSUME_PASSIVELY"
    assert consumer["subscriptionDataSet"][0]["subVersion"] == 1700000000000
