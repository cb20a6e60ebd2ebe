"""Requests a RocketMQ client sends, built by hand for tests (the real SDK comes later)."""

from __future__ import annotations

import time

from rocketpy.protocol.codes import RequestCode
from rocketpy.protocol.headers import (
    PULL_FLAG_SUBSCRIPTION,
    PULL_FLAG_SUSPEND,
)
from rocketpy.protocol.message import MessageRecord, format_properties, iter_records
from rocketpy.protocol.remoting import RemotingCommand
from tests.support.remoting_client import RemotingTestClient


def send(client: RemotingTestClient, topic: str, body: bytes, *, tags: str | None = None,
         keys: str | None = None, props: dict[str, str] | None = None, queue_id: int = 0,
         code: int = RequestCode.SEND_MESSAGE, sys_flag: int = 0, raw_ext: bool = False,
         timeout_s: float | None = None) -> RemotingCommand:
    p: dict[str, str] = {}
    if keys:
        p["KEYS"] = keys
    if tags:
        p["TAGS"] = tags
    p.update(props or {})
    ext = {"producerGroup": "PG", "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": 4,
           "queueId": queue_id, "sysFlag": sys_flag, "bornTimestamp": int(time.time() * 1000), "flag": 0,
           "properties": format_properties(p), "reconsumeTimes": 0, "unitMode": False, "batch": False}
    if code == RequestCode.SEND_MESSAGE_V2:
        short = dict(zip("abcdefghijklm", ["producerGroup", "topic", "defaultTopic", "defaultTopicQueueNums",
                                           "queueId", "sysFlag", "bornTimestamp", "flag", "properties",
                                           "reconsumeTimes", "unitMode", "maxReconsumeTimes", "batch"], strict=True))
        ext = {k: ext[v] for k, v in short.items() if v in ext}
    cmd = client.command(code, ext, body, raw_ext=raw_ext)
    return client.call(cmd, timeout_s=timeout_s)


def pull(client: RemotingTestClient, topic: str, queue_id: int, queue_offset: int, *, group: str = "CG",
         max_msgs: int = 32, subscription: str = "*", suspend_ms: int = 0, commit_offset: int = 0,
         sys_flag: int | None = None, timeout_s: float | None = None, sub_version: int = 0,
         expression_type: str | None = None) -> RemotingCommand:
    flag = PULL_FLAG_SUBSCRIPTION | (PULL_FLAG_SUSPEND if suspend_ms else 0)
    if sys_flag is not None:
        flag = sys_flag
    ext = {"consumerGroup": group, "topic": topic, "queueId": queue_id, "queueOffset": queue_offset,
           "maxMsgNums": max_msgs, "sysFlag": flag, "commitOffset": commit_offset,
           "suspendTimeoutMillis": suspend_ms or 15000, "subscription": subscription, "subVersion": sub_version}
    if expression_type is not None:
        ext["expressionType"] = expression_type
    return client.call(client.command(RequestCode.PULL_MESSAGE, ext),
                       timeout_s=timeout_s or max(5.0, suspend_ms / 1000 + 5))


def records(response: RemotingCommand) -> list[MessageRecord]:
    return iter_records(response.body, check_crc=True)
