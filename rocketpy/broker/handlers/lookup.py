"""Offset and message lookups served locally from the queue table and the read-only maps.

GET_MAX_OFFSET (30), GET_MIN_OFFSET (31), SEARCH_OFFSET_BY_TIMESTAMP (29),
GET_EARLIEST_MSG_STORETIME (32), QUERY_MESSAGE (12), VIEW_MESSAGE_BY_ID (33);
remoting-protocol.md §9.10, §9.11. All answer SUCCESS with string ext values,
except the "not found" cases the table there names.
"""

from __future__ import annotations

from rocketpy import limits
from rocketpy.broker.connection import ClientConnection
from rocketpy.broker.handlers import WorkerContext
from rocketpy.protocol import headers
from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.remoting import RemotingCommand
from rocketpy.store.consumequeue import ConsumeQueue


class LookupHandlers:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    def _queue(self, topic: str, queue_id: int) -> ConsumeQueue | None:
        """The reader's view of a queue, following the dispatcher's published end."""
        if self.ctx.store_reader is None:
            return None
        reader = self.ctx.reader()
        cq = reader.cqs.get(topic, queue_id)
        if cq is None:
            return None
        max_offset = self.ctx.queue_table.max_offset(topic, queue_id)
        cq.follow(max_offset, reader.commitlog.min_phys_offset)
        return cq

    def handle_get_max_offset(self, request: RemotingCommand, conn: ClientConnection) -> RemotingCommand:
        header = headers.GetMaxOffsetRequestHeader.from_command(request)
        offset = self.ctx.queue_table.max_offset(header.topic, header.queue_id)
        return request.response(ResponseCode.SUCCESS, None, {"offset": str(offset)})

    def handle_get_min_offset(self, request: RemotingCommand, conn: ClientConnection) -> RemotingCommand:
        header = headers.GetMinOffsetRequestHeader.from_command(request)
        # An unknown queue answers 0: Java's findConsumeQueue creates the queue, so it never sees "none".
        cq = self._queue(header.topic, header.queue_id)
        if cq is not None and cq.max_offset > 0:
            offset = cq.min_offset
        else:
            entry = self.ctx.queue_table.get(header.topic, header.queue_id)
            offset = entry[1] if entry is not None else 0
        return request.response(ResponseCode.SUCCESS, None, {"offset": str(offset)})

    def handle_search_offset_by_timestamp(self, request: RemotingCommand, conn: ClientConnection
                                          ) -> RemotingCommand:
        header = headers.SearchOffsetRequestHeader.from_command(request)
        offset = 0
        cq = self._queue(header.topic, header.queue_id)
        reader = self.ctx.store_reader
        if cq is not None and reader is not None:
            committed = self.ctx.control_block.committed_offset
            offset = cq.search_offset_by_time(
                header.timestamp, lambda phys: reader.commitlog.store_timestamp_at(phys, committed))
        return request.response(ResponseCode.SUCCESS, None, {"offset": str(offset)})

    def handle_get_earliest_msg_storetime(self, request: RemotingCommand, conn: ClientConnection
                                          ) -> RemotingCommand:
        header = headers.GetEarliestMsgStoretimeRequestHeader.from_command(request)
        timestamp = -1
        cq = self._queue(header.topic, header.queue_id)
        reader = self.ctx.store_reader
        if cq is not None and reader is not None and cq.max_offset > cq.min_offset:
            entry = cq.entry(cq.min_offset)
            if entry is not None:
                ts = reader.commitlog.store_timestamp_at(entry[0], self.ctx.control_block.committed_offset)
                if ts is not None:
                    timestamp = ts
        return request.response(ResponseCode.SUCCESS, None, {"timestamp": str(timestamp)})

    def handle_query_message(self, request: RemotingCommand, conn: ClientConnection) -> RemotingCommand:
        header = headers.QueryMessageRequestHeader.from_command(request)
        reader = self.ctx.store_reader
        if reader is not None:
            reader = self.ctx.reader()
            max_num = limits.INDEX_UNIQ_QUERY_RESULTS_MAX if header.unique_key_query else header.max_num
            max_num = max(0, min(max_num, limits.INDEX_QUERY_RESULTS_MAX))
            committed = self.ctx.control_block.committed_offset
            records = []
            for phys in reader.query_by_key(header.topic, header.key, max_num, header.begin_timestamp,
                                            header.end_timestamp, committed_offset=committed):
                record = reader.read_record(phys, committed)
                if record is not None:
                    records.append(record)
            if records:
                last_ts, last_phys = reader.index_last_update()
                return request.response(ResponseCode.SUCCESS, None, {
                    "indexLastUpdateTimestamp": str(last_ts), "indexLastUpdatePhyoffset": str(last_phys)},
                    b"".join(records))
        return request.response(ResponseCode.QUERY_NOT_FOUND, "can not find message, maybe time range not correct")

    def handle_view_message_by_id(self, request: RemotingCommand, conn: ClientConnection) -> RemotingCommand:
        header = headers.ViewMessageByIdRequestHeader.from_command(request)
        reader = self.ctx.store_reader
        record = None
        if reader is not None and header.offset >= 0:
            record = reader.read_record(header.offset, self.ctx.control_block.committed_offset)
        if record is None:
            return request.response(ResponseCode.SYSTEM_ERROR, f"can not find message by the offset, {header.offset}")
        return request.response(ResponseCode.SUCCESS, None, None, bytes(record))
