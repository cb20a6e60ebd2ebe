"""Rewind: INVOKE_BROKER_TO_RESET_OFFSET (222) — RocketMQ's Broker2Client.resetOffset, in control.

For each write queue of the topic (as RocketMQ) the target offset is the queue's max offset when
the timestamp is -1, else the offset SEARCH_OFFSET_BY_TIMESTAMP answers for it (searched by store
time in the read-only ConsumeQueue and CommitLog maps). Without isForce a queue whose committed
offset is already smaller keeps it (a rewind never moves a group forward unless forced). The new
offsets go into control's offset table at once — RocketMQ 4.9 leaves that to its live clients and
answers CONSUMER_NOT_ONLINE without any; here a group with no live consumer is reset all the same —
and every live consumer of the group gets RESET_CONSUMER_CLIENT_OFFSET (220, oneway) with the
table, in the C++ shape for CPP clients, through the worker holding its connection. The answer is
the ResetOffsetBody (Java shape) of every queue.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING

from rocketpy import limits
from rocketpy.protocol.bodies import MessageQueue
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.headers import ResetOffsetRequestHeader
from rocketpy.protocol.remoting import RemotingCommand, encode_frame
from rocketpy.protocol.reset_offset import encode_reset_offset_body, encode_reset_offset_body_for_c

if TYPE_CHECKING:
    from rocketpy.broker.control.server import ControlServer

log = logging.getLogger("rocketpy.broker.control")

QUEUES_MAX = limits.RESET_OFFSET_QUEUES_MAX
_opaques = itertools.count(1)


def offset_for_time(server: ControlServer, topic: str, queue_id: int, timestamp_ms: int) -> int:
    """The queue offset a rewind to timestamp_ms starts at (-1: the queue's end)."""
    max_offset = server.queue_table.max_offset(topic, queue_id) if server.queue_table is not None else 0
    if timestamp_ms == -1:
        return max_offset
    if server.store_reader is None or server.control_block is None:
        return 0
    reader = server.store_reader.get()
    cq = reader.cqs.get(topic, queue_id)
    if cq is None:
        return 0
    cq.follow(max_offset, reader.commitlog.min_phys_offset)
    committed = server.control_block.committed_offset
    return max(0, cq.search_offset_by_time(
        timestamp_ms, lambda phys: reader.commitlog.store_timestamp_at(phys, committed)))


def reset_offset(server: ControlServer, request: RemotingCommand) -> RemotingCommand:
    header = ResetOffsetRequestHeader.from_ext(request.ext_fields)
    topic, group = header.topic, header.group
    config = server.topics.get(topic)
    if config is None:
        return request.response(ResponseCode.SYSTEM_ERROR,
                                f"[reset-offset] reset offset failed, no topic in this broker. topic={topic}")
    queue_ids = range(min(config.write_queue_nums, QUEUES_MAX))
    committed = {qid: server.offsets.query(group, topic, qid) for qid in queue_ids}
    if all(offset is None for offset in committed.values()) and server.consumers.get(group) is None:
        return request.response(ResponseCode.SYSTEM_ERROR,
                                f"the consumer group <{group}> has no offsets on topic {topic} and no live "
                                "consumer; check the group name")
    broker_name = server.broker.broker_name
    table: dict[MessageQueue, int] = {}
    for qid in queue_ids:
        target = offset_for_time(server, topic, qid, header.timestamp)
        current = committed[qid]
        offset = target if header.is_force or current is None or target < current else current
        table[MessageQueue(topic, broker_name, qid)] = offset
        server.offsets.commit(group, topic, qid, offset)
    pushed = push_reset(server, header, table)
    log.info("[reset-offset] group=%s topic=%s timestamp=%d force=%s: %s; pushed to %d consumer(s)", group, topic,
             header.timestamp, header.is_force, {mq.queue_id: o for mq, o in table.items()}, pushed)
    return request.response(ResponseCode.SUCCESS, body=encode_reset_offset_body(table))


def push_reset(server: ControlServer, header: ResetOffsetRequestHeader, table: dict[MessageQueue, int]) -> int:
    """RESET_CONSUMER_CLIENT_OFFSET to every live connection of the group; the number pushed."""
    info = server.consumers.get(header.group)
    if info is None:
        return 0
    ext = ResetOffsetRequestHeader(topic=header.topic, group=header.group, timestamp=header.timestamp,
                                   is_force=header.is_force).to_ext()
    bodies: dict[bool, bytes] = {}
    for ch in list(info.channels.values()):
        for_c = ch.language.upper() == "CPP"
        body = bodies.get(for_c)
        if body is None:
            body = bodies[for_c] = (encode_reset_offset_body_for_c(table) if for_c
                                    else encode_reset_offset_body(table))
        cmd = RemotingCommand.request(RequestCode.RESET_CONSUMER_CLIENT_OFFSET, ext, body,
                                      opaque=next(_opaques) & 0x7FFFFFFF, oneway=True)
        server.push_to_client(ch.worker_slot, ch.conn_id, encode_frame(cmd))
    return len(info.channels)
