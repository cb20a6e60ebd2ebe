"""PULL_MESSAGE (11) — RocketMQ's PullMessageProcessor, served inside the worker.

Messages are read straight from read-only maps of the ConsumeQueue and CommitLog
files (StoreReader), never past the writer's committed offset nor past the
queue's dispatched end (its max offset in the shared queue table), and the
records are joined into the response body, so one pull is one write.
Store status -> response code (remoting-protocol.md §9.3):

| status | code |
|---|---|
| FOUND | 0 SUCCESS, body = the records back to back |
| NO_MATCHED_LOGIC_QUEUE, NO_MESSAGE_IN_QUEUE | 21 if the requested offset != 0, else 19 |
| OFFSET_TOO_SMALL, OFFSET_OVERFLOW_BADLY | 21 PULL_OFFSET_MOVED |
| OFFSET_OVERFLOW_ONE, OFFSET_FOUND_NULL | 19 PULL_NOT_FOUND |
| NO_MATCHED_MESSAGE, MESSAGE_WAS_REMOVING | 20 PULL_RETRY_IMMEDIATELY |

The subscription (`_message_filter`, PullMessageProcessor's order): with the
SUBSCRIPTION sysFlag, the pull's own expression (a bad one: 23
SUBSCRIPTION_PARSE_FAILED); without it, the one the group registered by
heartbeat, which control shares as SUBSCRIPTIONS_CHANGED (no group: 24, a
broadcasting group that may not: NO_PERMISSION, topic not subscribed: 24, an
older subVersion than the client's: 25, a registered SQL92 that never compiled:
27 FILTER_DATA_NOT_EXIST); then SQL92 while enablePropertyFilter is off: 1.
Tags filter on the ConsumeQueue entry's hash code; SQL92 on each candidate
record's properties (filtered entries still advance nextBeginOffset).

Every response carries the full header (suggestWhichBrokerId, nextBeginOffset,
minOffset, maxOffset, all strings) and the status name as remark. A 19 with the
SUSPEND flag is parked (long_polling); without the flag it is answered at once
(the C++ PullConsumer sends sysFlag 4).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rocketpy import limits
from rocketpy.broker.connection import ClientConnection
from rocketpy.broker.filter.subscriptions import (
    MATCH_ALL,
    MessageFilter,
    SelectorCache,
    subscription_problem,
)
from rocketpy.broker.handlers import WorkerContext
from rocketpy.broker.long_polling import LongPolling
from rocketpy.errors import ProtocolError
from rocketpy.protocol import topics as t
from rocketpy.protocol.bodies import EXPRESSION_TYPE_TAG, MessageModel, build_subscription
from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.headers import (
    PULL_FLAG_COMMIT_OFFSET,
    PULL_FLAG_SUBSCRIPTION,
    PULL_FLAG_SUSPEND,
    PullMessageRequestHeader,
)
from rocketpy.protocol.remoting import RemotingCommand
from rocketpy.store.api import GetResult, GetStatus

log = logging.getLogger("rocketpy.broker.worker")


_CODES: dict[GetStatus, int] = {
    GetStatus.FOUND: ResponseCode.SUCCESS,
    GetStatus.OFFSET_TOO_SMALL: ResponseCode.PULL_OFFSET_MOVED,
    GetStatus.OFFSET_OVERFLOW_BADLY: ResponseCode.PULL_OFFSET_MOVED,
    GetStatus.OFFSET_OVERFLOW_ONE: ResponseCode.PULL_NOT_FOUND,
    GetStatus.OFFSET_FOUND_NULL: ResponseCode.PULL_NOT_FOUND,
    GetStatus.NO_MATCHED_MESSAGE: ResponseCode.PULL_RETRY_IMMEDIATELY,
    GetStatus.MESSAGE_WAS_REMOVING: ResponseCode.PULL_RETRY_IMMEDIATELY,
}
_EMPTY_QUEUE = frozenset({GetStatus.NO_MATCHED_LOGIC_QUEUE, GetStatus.NO_MESSAGE_IN_QUEUE})
_SUBSCRIPTION_CACHE_MAX = limits.PULL_SUBSCRIPTION_CACHE_MAX
TOPIC_NOT_EXIST_FAQ = "See http://rocketmq.apache.org/docs/faq/ for further details."
SUBSCRIPTION_FAQ = "A group's consumers must subscribe to the same topics with the same expressions."


def pull_code(status: GetStatus, requested_offset: int) -> int:
    if status in _EMPTY_QUEUE:
        return ResponseCode.PULL_OFFSET_MOVED if requested_offset != 0 else ResponseCode.PULL_NOT_FOUND
    return _CODES[status]


class PullHandlers:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.long_polling = LongPolling(ctx.queue_table, self.execute)
        # tag hash codes -> their filter: pulls repeat the same few subscriptions
        self._tag_filters: dict[tuple[int, ...], MessageFilter] = {}
        self.selectors = SelectorCache()

    def handle_pull_message(self, request: RemotingCommand, conn: ClientConnection) -> Any:
        header = PullMessageRequestHeader.from_command(request)
        refused = self._precheck(request, header, conn)
        if refused is not None:
            return refused
        sys_flag = header.sys_flag
        chosen = self._message_filter(request, header)
        if isinstance(chosen, RemotingCommand):
            return chosen
        message_filter = chosen
        if sys_flag & PULL_FLAG_COMMIT_OFFSET and self.ctx.is_master and header.commit_offset >= 0:
            self.ctx.commit_offset(header.consumer_group, header.topic, header.queue_id, header.commit_offset)
        response = self.execute(request, header, message_filter)
        if response.code == ResponseCode.PULL_NOT_FOUND and sys_flag & PULL_FLAG_SUSPEND:
            hold_ms = self._hold_ms(header)
            if hold_ms > 0 and self.long_polling.park(conn, request, header, message_filter, hold_ms):
                return None
        return response

    def _hold_ms(self, header: PullMessageRequestHeader) -> int:
        cfg = self.ctx.broker_config
        if not cfg.long_polling_enable:
            return cfg.short_polling_time_ms
        return max(0, min(header.suspend_timeout_millis, limits.PULL_SUSPEND_TIMEOUT_MS_MAX))

    def _precheck(self, request: RemotingCommand, header: PullMessageRequestHeader, conn: ClientConnection
                  ) -> RemotingCommand | None:
        ctx = self.ctx
        if not ctx.broker_readable:
            return request.response(ResponseCode.NO_PERMISSION,
                                    f"the broker[{ctx.store_host}] pulling message is forbidden")
        group = ctx.groups.get(header.consumer_group)
        if group is None:
            if not ctx.broker_config.auto_create_subscription_group:
                return request.response(ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST,
                                        f"subscription group [{header.consumer_group}] does not exist")
        elif not group.consume_enable:
            return request.response(ResponseCode.NO_PERMISSION,
                                    f"subscription group no permission, {header.consumer_group}")
        config = ctx.topics.get(header.topic)
        if config is None:
            return request.response(ResponseCode.TOPIC_NOT_EXIST,
                                    f"topic[{header.topic}] not exist, apply first please! {TOPIC_NOT_EXIST_FAQ}")
        if not t.is_readable(config.perm):
            return request.response(ResponseCode.NO_PERMISSION,
                                    f"the topic[{header.topic}] pulling message is forbidden")
        if not 0 <= header.queue_id < config.read_queue_nums:
            return request.response(
                ResponseCode.SYSTEM_ERROR,
                f"queueId[{header.queue_id}] is illegal, topic:[{header.topic}] "
                f"topicConfig.readQueueNums:[{config.read_queue_nums}] consumer:[{conn.peer}]")
        return None

    def _message_filter(self, request: RemotingCommand, header: PullMessageRequestHeader
                        ) -> MessageFilter | RemotingCommand:
        """PullMessageProcessor's subscription logic, in its order: the pull's own subscription
        (SUBSCRIPTION sysFlag) or the one registered by heartbeat, then the SQL92 switch."""
        if header.sys_flag & PULL_FLAG_SUBSCRIPTION:
            expression_type = header.expression_type or EXPRESSION_TYPE_TAG
            try:
                sub = build_subscription(header.topic, header.subscription, expression_type=expression_type,
                                         sub_version=header.sub_version or 0)
            except ProtocolError as exc:
                return request.response(ResponseCode.SUBSCRIPTION_PARSE_FAILED,
                                        f"parse the consumer's subscription failed: {exc}")
        else:
            group = self.ctx.consumer_groups.get(header.consumer_group)
            if group is None:
                return request.response(ResponseCode.SUBSCRIPTION_NOT_EXIST,
                                        "the consumer's group info not exist; send a heartbeat first. "
                                        + SUBSCRIPTION_FAQ)
            config = self.ctx.groups.get(header.consumer_group)
            if (config is not None and not config.consume_broadcast_enable
                    and group.message_model is MessageModel.BROADCASTING):
                return request.response(ResponseCode.NO_PERMISSION,
                                        f"the consumer group[{header.consumer_group}] can not consume by broadcast way")
            registered = group.subscriptions.get(header.topic)
            if registered is None:
                return request.response(ResponseCode.SUBSCRIPTION_NOT_EXIST,
                                        f"the consumer's subscription not exist: group {header.consumer_group} does "
                                        f"not subscribe to {header.topic}. " + SUBSCRIPTION_FAQ)
            if registered.sub_version < (header.sub_version or 0):
                return request.response(ResponseCode.SUBSCRIPTION_NOT_LATEST,
                                        "the consumer's subscription not latest")
            sub = registered
        if sub.is_tag_type:
            return MATCH_ALL if sub.is_all else self._tag_filter(sub.code_set)
        enabled = self.ctx.broker_config.enable_property_filter
        problem = subscription_problem(sub, enabled, self.selectors)
        if problem is not None:
            parse_failed, remark = problem
            if not parse_failed:
                code = ResponseCode.SYSTEM_ERROR
            elif header.sys_flag & PULL_FLAG_SUBSCRIPTION:
                code = ResponseCode.SUBSCRIPTION_PARSE_FAILED
            else:      # the registered expression never compiled: RocketMQ has no filter data for it
                code = ResponseCode.FILTER_DATA_NOT_EXIST
            return request.response(code, remark)
        return MessageFilter(None, self.selectors.get(sub.sub_string))

    def _tag_filter(self, codes: tuple[int, ...]) -> MessageFilter:
        cache = self._tag_filters
        found = cache.get(codes)
        if found is None:
            if len(cache) >= _SUBSCRIPTION_CACHE_MAX:
                cache.clear()
            found = cache[codes] = MessageFilter(frozenset(codes))
        return found

    # --- the read ------------------------------------------------------------------------------

    def read(self, header: PullMessageRequestHeader, message_filter: MessageFilter = MATCH_ALL) -> GetResult:
        ctx = self.ctx
        reader = ctx.reader()
        entry = ctx.queue_table.get(header.topic, header.queue_id)
        max_queue_offset = entry[0] if entry is not None else 0
        return reader.get_message(header.topic, header.queue_id, header.queue_offset, header.max_msg_nums,
                                  message_filter.tag_codes, committed_offset=ctx.control_block.committed_offset,
                                  max_queue_offset=max_queue_offset, record_filter=message_filter.record_filter())

    def execute(self, request: RemotingCommand, header: PullMessageRequestHeader,
                message_filter: MessageFilter = MATCH_ALL) -> RemotingCommand:
        """Read and build the response (also what a woken parked pull runs)."""
        started = time.perf_counter()
        result = self.read(header, message_filter)
        status = result.status
        code = pull_code(status, header.queue_offset)
        body = b"".join(result.records) if code == ResponseCode.SUCCESS else b""
        if body:
            self.ctx.stats.observe_pull(header.consumer_group, header.topic, len(result.records), len(body),
                                        time.perf_counter() - started)
        return request.response(code, status.value, {
            "suggestWhichBrokerId": "0",
            "nextBeginOffset": str(result.next_begin_offset),
            "minOffset": str(result.min_offset),
            "maxOffset": str(result.max_offset),
        }, body)
