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
from rocketpy.broker.handlers import WorkerContext
from rocketpy.broker.long_polling import LongPolling
from rocketpy.errors import ProtocolError
from rocketpy.protocol import topics as t
from rocketpy.protocol.bodies import EXPRESSION_TYPE_TAG, build_subscription
from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.headers import PullMessageRequestHeader
from rocketpy.protocol.remoting import RemotingCommand
from rocketpy.store.api import GetResult, GetStatus

log = logging.getLogger("rocketpy.broker.worker")

# PullSysFlag
FLAG_COMMIT_OFFSET = 0x1
FLAG_SUSPEND = 0x2
FLAG_SUBSCRIPTION = 0x4
FLAG_CLASS_FILTER = 0x8

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


def pull_code(status: GetStatus, requested_offset: int) -> int:
    if status in _EMPTY_QUEUE:
        return ResponseCode.PULL_OFFSET_MOVED if requested_offset != 0 else ResponseCode.PULL_NOT_FOUND
    return _CODES[status]


class PullHandlers:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.long_polling = LongPolling(ctx.queue_table, self.execute)
        # subscription text -> tag codes (None = all): pulls repeat the same few expressions
        self._tag_codes: dict[str, frozenset[int] | None] = {}

    def handle_pull_message(self, request: RemotingCommand, conn: ClientConnection) -> Any:
        header = PullMessageRequestHeader.from_command(request)
        refused = self._precheck(request, header, conn)
        if refused is not None:
            return refused
        sys_flag = header.sys_flag
        if sys_flag & FLAG_SUBSCRIPTION:
            expression_type = header.expression_type or EXPRESSION_TYPE_TAG
            if expression_type != EXPRESSION_TYPE_TAG:
                return request.response(ResponseCode.SYSTEM_ERROR,
                                        "The broker does not support consumer to filter message by "
                                        f"{expression_type}; subscribe with tags")
            try:
                tag_codes = self._codes(header.topic, header.subscription)
            except ProtocolError as exc:
                return request.response(ResponseCode.SUBSCRIPTION_PARSE_FAILED,
                                        f"parse the consumer's subscription failed: {exc}")
        else:
            # TODO: use the subscription the client registered by heartbeat (control holds it).
            tag_codes = None
        if sys_flag & FLAG_COMMIT_OFFSET and self.ctx.is_master and header.commit_offset >= 0:
            self.ctx.commit_offset(header.consumer_group, header.topic, header.queue_id, header.commit_offset)
        response = self.execute(request, header, tag_codes)
        if response.code == ResponseCode.PULL_NOT_FOUND and sys_flag & FLAG_SUSPEND:
            hold_ms = self._hold_ms(header)
            if hold_ms > 0 and self.long_polling.park(conn, request, header, tag_codes, hold_ms):
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

    def _codes(self, topic: str, subscription: str | None) -> frozenset[int] | None:
        text = subscription or "*"
        cache = self._tag_codes
        if text in cache:
            return cache[text]
        sub = build_subscription(topic, text)
        codes = None if sub.is_all else frozenset(sub.code_set)
        if len(cache) >= _SUBSCRIPTION_CACHE_MAX:
            cache.clear()
        cache[text] = codes
        return codes

    # --- the read ------------------------------------------------------------------------------

    def read(self, header: PullMessageRequestHeader, tag_codes: frozenset[int] | None) -> GetResult:
        ctx = self.ctx
        reader = ctx.reader()
        entry = ctx.queue_table.get(header.topic, header.queue_id)
        max_queue_offset = entry[0] if entry is not None else 0
        return reader.get_message(header.topic, header.queue_id, header.queue_offset, header.max_msg_nums,
                                  tag_codes, committed_offset=ctx.control_block.committed_offset,
                                  max_queue_offset=max_queue_offset)

    def execute(self, request: RemotingCommand, header: PullMessageRequestHeader,
                tag_codes: frozenset[int] | None) -> RemotingCommand:
        """Read and build the response (also what a woken parked pull runs)."""
        started = time.perf_counter()
        result = self.read(header, tag_codes)
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
