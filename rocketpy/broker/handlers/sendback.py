"""CONSUMER_SEND_MSG_BACK (36) — the retry half of RocketMQ's SendMessageProcessor
(asyncConsumerSendMsgBack).

A consumer whose listener failed sends back the CommitLog offset of the message (the C++ client
sends it to the message's store host). The worker reads the record from its read-only map and
puts a copy through its own ring (`SendHandlers.put_record`):

| case | stored in | delay |
|---|---|---|
| reconsume times < max and delayLevel >= 0 | `%RETRY%<group>`, a random one of retryQueueNums queues | delayLevel, or 3 + reconsume times when 0 (parked in SCHEDULE_TOPIC_XXXX) |
| reconsume times >= max, or delayLevel < 0 | `%DLQ%<group>` queue 0 | none |

max is the header's maxReconsumeTimes when given, else the group's retryMaxTimes (16 by default).
The copy keeps body, flag, sysFlag, born host and time and the properties, with RECONSUMETIMES
+ 1, RETRY_TOPIC = the original topic (unless already set) and ORIGIN_MESSAGE_ID = the first
message's id (kept across retries). Retry and DLQ topics are created on demand by control
(AUTO_CREATE_TOPIC: retry perm RW with retryQueueNums queues, DLQ perm RW with one queue, as
RocketMQ 4.9). The group is auto-created per autoCreateSubscriptionGroup; an unknown group
otherwise gets SUBSCRIPTION_GROUP_NOT_EXIST.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from rocketpy.broker.connection import ClientConnection
from rocketpy.broker.handlers import WorkerContext
from rocketpy.broker.handlers.send import SendHandlers
from rocketpy.broker.records import host_bytes
from rocketpy.errors import ProtocolError
from rocketpy.protocol import topics as t
from rocketpy.protocol.bodies import TopicConfig
from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.headers import ConsumerSendMsgBackRequestHeader
from rocketpy.protocol.message import (
    PROPERTY_DELAY_TIME_LEVEL,
    PROPERTY_ORIGIN_MESSAGE_ID,
    PROPERTY_RETRY_TOPIC,
    PROPERTY_WAIT_STORE_MSG_OK,
    MessageRecord,
    decode_record,
    format_properties,
    parse_properties,
)
from rocketpy.protocol.msgid import offset_msg_id
from rocketpy.protocol.remoting import RemotingCommand

if TYPE_CHECKING:
    from rocketpy.broker.control.groups import SubscriptionGroupConfig

log = logging.getLogger("rocketpy.broker.worker")

DLQ_NUMS_PER_GROUP = 1
RETRY_DELAY_LEVEL_BASE = 3          # delayLevel 0: the broker picks 3 + reconsume times
# Property control's delay scheduler marks its re-puts with; a copy must not carry it.
_DELAY_SOURCE = "RKPY_DELAY_SRC"


@dataclasses.dataclass(frozen=True, slots=True)
class SendBackDecision:
    topic: str
    queue_id: int
    props: str
    reconsume_times: int
    dead_letter: bool


def decide_send_back(group: str, group_config: SubscriptionGroupConfig, record: MessageRecord, msg_id: str,
                     delay_level: int, max_reconsume_times: int | None, origin_msg_id: str | None,
                     randint: Callable[[int], int] = random.randrange) -> SendBackDecision:
    """Where the failed message goes and with which properties (no I/O)."""
    props = parse_properties(record.properties)
    props.setdefault(PROPERTY_RETRY_TOPIC, record.topic)
    props.pop(PROPERTY_WAIT_STORE_MSG_OK, None)
    props.pop(_DELAY_SOURCE, None)
    limit = max_reconsume_times if max_reconsume_times is not None else group_config.retry_max_times
    if record.reconsume_times >= limit or delay_level < 0:
        topic, queue_id, dead = t.dlq_topic(group), randint(DLQ_NUMS_PER_GROUP), True
        props.pop(PROPERTY_DELAY_TIME_LEVEL, None)
    else:
        topic = t.retry_topic(group)
        queue_id = randint(max(1, group_config.retry_queue_nums))
        dead = False
        props[PROPERTY_DELAY_TIME_LEVEL] = str(delay_level or RETRY_DELAY_LEVEL_BASE + record.reconsume_times)
    if not props.get(PROPERTY_ORIGIN_MESSAGE_ID):
        props[PROPERTY_ORIGIN_MESSAGE_ID] = origin_msg_id or msg_id
    return SendBackDecision(topic, queue_id, format_properties(props), record.reconsume_times + 1, dead)


class SendBackHandlers:
    def __init__(self, ctx: WorkerContext, send: SendHandlers) -> None:
        self.ctx = ctx
        self.send = send

    def handle_consumer_send_msg_back(self, request: RemotingCommand, conn: ClientConnection
                                      ) -> RemotingCommand | object:
        header = ConsumerSendMsgBackRequestHeader.from_command(request)
        ctx = self.ctx
        group_config = self.send.group_config(header.group)
        if group_config is None:
            return request.response(ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST,
                                     f"subscription group not exist, {header.group}; create it first "
                                     "(autoCreateSubscriptionGroup is off)")
        if not ctx.broker_writable:
            return request.response(ResponseCode.NO_PERMISSION,
                                    f"the broker[{ctx.store_host}] sending message is forbidden")
        if group_config.retry_queue_nums <= 0:
            return request.response(ResponseCode.SUCCESS)      # the group wants no retries
        return self._send_back(request, conn, header, group_config)

    async def _send_back(self, request: RemotingCommand, conn: ClientConnection,
                         header: ConsumerSendMsgBackRequestHeader, group_config: SubscriptionGroupConfig
                         ) -> RemotingCommand | None:
        retry = await self.send.ensure_topic(t.retry_topic(header.group), request)
        if isinstance(retry, RemotingCommand):
            return retry
        refused = _not_writable(request, retry)
        if refused is not None:
            return refused
        record = self._read(header.offset)
        if record is None:
            return request.response(ResponseCode.SYSTEM_ERROR,
                                    f"look message by offset failed, {header.offset}: no message starts there "
                                    "(or retention removed it)")
        msg_id = offset_msg_id(self.ctx.store_host, self.ctx.store_port, header.offset)
        decision = decide_send_back(header.group, group_config, record, msg_id, header.delay_level,
                                    header.max_reconsume_times, header.origin_msg_id)
        if decision.dead_letter:
            dlq = await self.send.ensure_topic(decision.topic, request)
            if isinstance(dlq, RemotingCommand):
                return dlq
            log.info("message %s of group %s reconsumed %d times: stored in %s", msg_id, header.group,
                     record.reconsume_times, decision.topic)
        try:
            born_ip, _v6 = host_bytes(record.born_host)
        except ValueError:
            born_ip = bytes(4)
        answer = await self.send.put_record(
            decision.topic, decision.queue_id, record.body, decision.props, flag=record.flag,
            sys_flag=record.sys_flag, born_timestamp_ms=record.born_timestamp, born_ip=born_ip,
            born_port=record.born_port, reconsume_times=decision.reconsume_times, wait=False)
        if conn.closed:
            return None
        if answer.code != ResponseCode.SUCCESS:
            return request.response(answer.code, answer.remark)
        return request.response(ResponseCode.SUCCESS)

    def _read(self, phys_offset: int) -> MessageRecord | None:
        committed = self.ctx.control_block.committed_offset
        if not 0 <= phys_offset < committed:
            return None
        view = self.ctx.reader().read_record(phys_offset, committed)
        if view is None:
            return None
        try:
            return decode_record(bytes(view))
        except ProtocolError:
            return None


def _not_writable(request: RemotingCommand, config: TopicConfig) -> RemotingCommand | None:
    if t.is_writeable(config.perm):
        return None
    return request.response(ResponseCode.NO_PERMISSION,
                            f"the topic[{config.topic_name}] sending message is forbidden")
