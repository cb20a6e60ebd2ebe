"""Topic and group names, permission bits and the special topics of RocketMQ 4.9.x.

RocketMQ's TopicValidator, PermName, TopicSysFlag and the retry/DLQ name rules of
MixAll, in one place (remoting-protocol.md §10.6, §11.1, §11.2, §11.6).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from rocketpy import limits
from rocketpy.errors import ProtocolError

# --- permission bits (PermName.java) --------------------------------------------

PERM_PRIORITY = 0x8
PERM_READ = 0x4
PERM_WRITE = 0x2
PERM_INHERIT = 0x1
PERM_READ_WRITE = PERM_READ | PERM_WRITE


def is_readable(perm: int) -> bool:
    return bool(perm & PERM_READ)


def is_writeable(perm: int) -> bool:
    return bool(perm & PERM_WRITE)


def is_inherited(perm: int) -> bool:
    return bool(perm & PERM_INHERIT)


def perm_to_string(perm: int) -> str:
    """PermName.perm2String: `RWX` with `-` for a missing bit (X = inherit)."""
    return ("R" if perm & PERM_READ else "-") + ("W" if perm & PERM_WRITE else "-") + (
        "X" if perm & PERM_INHERIT else "-")


# --- topic sysflag (TopicSysFlag.java) -------------------------------------------

TOPIC_SYS_FLAG_UNIT = 0x1
TOPIC_SYS_FLAG_UNIT_SUB = 0x2

# --- names ------------------------------------------------------------------------

NAME_PATTERN = re.compile(r"[%|a-zA-Z0-9_-]+")

RETRY_GROUP_TOPIC_PREFIX = "%RETRY%"
DLQ_GROUP_TOPIC_PREFIX = "%DLQ%"


def _check_name(kind: str, name: str, length_max: int) -> None:
    if not name or not name.strip():
        raise ProtocolError(f"the {kind} name is blank; give a name made of ^[%|a-zA-Z0-9_-]+$")
    if NAME_PATTERN.fullmatch(name) is None:
        raise ProtocolError(
            f"the {kind} name {name!r} contains illegal characters; allowed only ^[%|a-zA-Z0-9_-]+$")
    if len(name) > length_max:
        raise ProtocolError(
            f"the {kind} name is {len(name)} characters long; the maximum is {length_max}")


def validate_topic(name: str) -> None:
    """TopicValidator.validateTopic: raise ProtocolError for a blank, illegal or too long name."""
    _check_name("topic", name, limits.TOPIC_NAME_LENGTH_MAX)


def validate_group(name: str) -> None:
    """The clients' Validators.checkGroup: same characters as a topic, at most 255 long."""
    _check_name("group", name, limits.GROUP_NAME_LENGTH_MAX)


def retry_topic(group: str) -> str:
    return RETRY_GROUP_TOPIC_PREFIX + group


def dlq_topic(group: str) -> str:
    return DLQ_GROUP_TOPIC_PREFIX + group


def is_retry_topic(topic: str) -> bool:
    return topic.startswith(RETRY_GROUP_TOPIC_PREFIX)


def is_dlq_topic(topic: str) -> bool:
    return topic.startswith(DLQ_GROUP_TOPIC_PREFIX)


def group_of_retry_topic(topic: str) -> str | None:
    """The consumer group of `%RETRY%<group>` / `%DLQ%<group>`, else None."""
    for prefix in (RETRY_GROUP_TOPIC_PREFIX, DLQ_GROUP_TOPIC_PREFIX):
        if topic.startswith(prefix):
            return topic[len(prefix):]
    return None


# --- the special topics (TopicValidator.java, §11.6) ------------------------------

AUTO_CREATE_TOPIC_KEY_TOPIC = "TBW102"
RMQ_SYS_SCHEDULE_TOPIC = "SCHEDULE_TOPIC_XXXX"
RMQ_SYS_BENCHMARK_TOPIC = "BenchmarkTest"
RMQ_SYS_TRANS_HALF_TOPIC = "RMQ_SYS_TRANS_HALF_TOPIC"
RMQ_SYS_TRACE_TOPIC = "RMQ_SYS_TRACE_TOPIC"
RMQ_SYS_TRANS_OP_HALF_TOPIC = "RMQ_SYS_TRANS_OP_HALF_TOPIC"
RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC = "TRANS_CHECK_MAX_TIME_TOPIC"
RMQ_SYS_SELF_TEST_TOPIC = "SELF_TEST_TOPIC"
RMQ_SYS_OFFSET_MOVED_EVENT = "OFFSET_MOVED_EVENT"
SYSTEM_TOPIC_PREFIX = "rmq_sys_"
REPLY_TOPIC_POSTFIX = "REPLY_TOPIC"

SYSTEM_TOPICS: frozenset[str] = frozenset({
    AUTO_CREATE_TOPIC_KEY_TOPIC, RMQ_SYS_SCHEDULE_TOPIC, RMQ_SYS_BENCHMARK_TOPIC,
    RMQ_SYS_TRANS_HALF_TOPIC, RMQ_SYS_TRACE_TOPIC, RMQ_SYS_TRANS_OP_HALF_TOPIC,
    RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC, RMQ_SYS_SELF_TEST_TOPIC, RMQ_SYS_OFFSET_MOVED_EVENT,
})

# Sending to these is answered NO_PERMISSION.
NOT_ALLOWED_SEND_TOPICS: frozenset[str] = frozenset({
    RMQ_SYS_SCHEDULE_TOPIC, RMQ_SYS_TRANS_HALF_TOPIC, RMQ_SYS_TRANS_OP_HALF_TOPIC,
    RMQ_SYS_TRANS_CHECK_MAX_TIME_TOPIC, RMQ_SYS_SELF_TEST_TOPIC, RMQ_SYS_OFFSET_MOVED_EVENT,
})

# Internal groups.
CID_RMQ_SYS_TRANS = "CID_RMQ_SYS_TRANS"
SCHEDULE_CONSUMER_GROUP = "SCHEDULE_CONSUMER"
TOOLS_CONSUMER_GROUP = "TOOLS_CONSUMER"
CLIENT_INNER_PRODUCER_GROUP = "CLIENT_INNER_PRODUCER"


def is_system_topic(topic: str, extra: Collection[str] = ()) -> bool:
    """A topic UPDATE_AND_CREATE_TOPIC refuses: the fixed set, `rmq_sys_*`, or one of `extra`
    (the broker passes its cluster name and broker name, which Java adds at start)."""
    return topic in SYSTEM_TOPICS or topic.startswith(SYSTEM_TOPIC_PREFIX) or topic in extra


def is_not_allowed_send_topic(topic: str) -> bool:
    return topic in NOT_ALLOWED_SEND_TOPICS


def reply_topic(cluster_name: str) -> str:
    return f"{cluster_name}_{REPLY_TOPIC_POSTFIX}"
