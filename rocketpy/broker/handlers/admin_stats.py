"""Admin requests a worker relays to control and completes from its own maps.

GET_CONSUME_STATS (208): control knows the offsets; the last consume time
(the store time of the message at consumerOffset-1) needs the CommitLog, which
only the worker maps, so the worker fills it in before answering.
GET_TOPIC_STATS_INFO (202) likewise: control answers min/max offsets, the
worker adds each queue's last store time. The connection lists are control's
alone and go through unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from rocketpy.broker.connection import ClientConnection
from rocketpy.broker.handlers import WorkerContext
from rocketpy.broker.handlers.forward import ForwardHandlers
from rocketpy.errors import ProtocolError
from rocketpy.protocol.admin_bodies import ConsumeStats, OffsetWrapper, TopicOffset, TopicStatsTable
from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.remoting import RemotingCommand

log = logging.getLogger("rocketpy.broker.worker")


class AdminStatsHandlers:
    def __init__(self, ctx: WorkerContext, forward: ForwardHandlers) -> None:
        self.ctx = ctx
        self.forward = forward

    def handle_get_topic_stats_info(self, request: RemotingCommand, conn: ClientConnection) -> Any:
        answer = self.forward.forward(request, conn)
        if isinstance(answer, RemotingCommand) or answer is None:
            return answer
        return self._complete_topic_stats(answer)

    async def _complete_topic_stats(self, pending: Any) -> RemotingCommand:
        response: RemotingCommand = await pending
        if response.code != ResponseCode.SUCCESS or not response.body:
            return response
        try:
            stats = TopicStatsTable.from_json(response.body)
        except ProtocolError as exc:
            log.error("control's GET_TOPIC_STATS_INFO body is malformed: %s", exc)
            return response
        rows = []
        for mq, off in stats.offset_table:
            if off.max_offset > 0 and not off.last_update_timestamp:
                ts = self._store_time(mq.topic, mq.queue_id, off.max_offset - 1)
                off = TopicOffset(off.min_offset, off.max_offset, ts)
            rows.append((mq, off))
        response.body = TopicStatsTable(tuple(rows)).to_json()
        return response

    def handle_get_consumer_connection_list(self, request: RemotingCommand, conn: ClientConnection) -> Any:
        return self.forward.forward(request, conn)

    def handle_get_producer_connection_list(self, request: RemotingCommand, conn: ClientConnection) -> Any:
        return self.forward.forward(request, conn)

    def handle_get_consume_stats(self, request: RemotingCommand, conn: ClientConnection) -> Any:
        answer = self.forward.forward(request, conn)
        if isinstance(answer, RemotingCommand) or answer is None:
            return answer                 # control unreachable: already an error
        return self._complete(answer)

    async def _complete(self, pending: Any) -> RemotingCommand:
        response: RemotingCommand = await pending
        if response.code != ResponseCode.SUCCESS or not response.body:
            return response
        try:
            stats = ConsumeStats.from_json(response.body)
        except ProtocolError as exc:
            log.error("control's GET_CONSUME_STATS body is malformed: %s", exc)
            return response
        rows = [(mq, self._with_time(mq.topic, mq.queue_id, w)) for mq, w in stats.offset_table]
        response.body = ConsumeStats(tuple(rows), stats.consume_tps).to_json()
        return response

    def _with_time(self, topic: str, queue_id: int, w: OffsetWrapper) -> OffsetWrapper:
        if w.last_timestamp or w.consumer_offset <= 0:
            return w
        ts = self._store_time(topic, queue_id, w.consumer_offset - 1)
        return OffsetWrapper(w.broker_offset, w.consumer_offset, ts) if ts else w

    def _store_time(self, topic: str, queue_id: int, queue_offset: int) -> int:
        """Store timestamp of the message at queue_offset (RocketMQ getMessageStoreTimeStamp); 0 if gone."""
        if self.ctx.store_reader is None:
            return 0
        reader = self.ctx.reader()
        cq = reader.cqs.get(topic, queue_id)
        if cq is None:
            return 0
        cq.follow(self.ctx.queue_table.max_offset(topic, queue_id), reader.commitlog.min_phys_offset)
        entry = cq.entry(queue_offset)
        if entry is None:
            return 0
        ts = reader.commitlog.store_timestamp_at(entry[0], self.ctx.control_block.committed_offset)
        return ts or 0
