"""Long polling — RocketMQ's PullRequestHoldService, inside one worker.

A pull that finds nothing new (PULL_NOT_FOUND) and carries the SUSPEND flag is
parked instead of answered. The dispatcher rings this worker's pull doorbell
after it publishes new queue offsets; the worker then looks up, once per parked
queue, the max offset in the shared queue table and re-executes every parked
pull that offset has moved past (without suspending again and without
committing the offset again), answering with the original opaque. A pull whose
hold time runs out is re-executed too and answered with whatever it finds (19
with the full header, normally). Bounded: at most `limit` pulls are parked; the
next one is answered at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable

from rocketpy import limits
from rocketpy.broker.connection import ClientConnection
from rocketpy.broker.filter.subscriptions import MessageFilter
from rocketpy.ipc.queue_table import QueueTable
from rocketpy.protocol.headers import PullMessageRequestHeader
from rocketpy.protocol.remoting import RemotingCommand

log = logging.getLogger("rocketpy.broker.worker")

# (request, header, the pull's message filter) -> the response of the pull executed now
Execute = Callable[[RemotingCommand, PullMessageRequestHeader, MessageFilter], RemotingCommand]


class ParkedPull:
    __slots__ = ("conn", "request", "header", "message_filter", "deadline", "key", "done")

    def __init__(self, conn: ClientConnection, request: RemotingCommand, header: PullMessageRequestHeader,
                 message_filter: MessageFilter, deadline: float) -> None:
        self.conn = conn
        self.request = request
        self.header = header
        self.message_filter = message_filter
        self.deadline = deadline
        self.key = (header.topic, header.queue_id)
        self.done = False


class LongPolling:
    def __init__(self, queue_table: QueueTable, execute: Execute, *,
                 limit: int = limits.PULL_SUSPENDED_MAX) -> None:
        self.queue_table = queue_table
        self.execute = execute
        self.limit = limit
        self.by_queue: dict[tuple[str, int], list[ParkedPull]] = {}
        self._deadlines: list[tuple[float, int, ParkedPull]] = []
        self._seq = itertools.count()
        self.count = 0

    def park(self, conn: ClientConnection, request: RemotingCommand, header: PullMessageRequestHeader,
             message_filter: MessageFilter, hold_ms: int) -> bool:
        """Hold the pull up to hold_ms; False when the bound is reached (answer it now)."""
        if self.count >= self.limit:
            log.warning("%d pulls already parked (PULL_SUSPENDED_MAX): answering %s at once", self.count,
                        conn.peer)
            return False
        parked = ParkedPull(conn, request, header, message_filter, time.monotonic() + hold_ms / 1000)
        self.by_queue.setdefault(parked.key, []).append(parked)
        heapq.heappush(self._deadlines, (parked.deadline, next(self._seq), parked))
        self.count += 1
        return True

    def on_new_messages(self) -> int:
        """The pull doorbell rang: answer parked pulls whose queue grew past their offset."""
        woken = 0
        table = self.queue_table
        for key in list(self.by_queue):
            pulls = self.by_queue.get(key)
            if not pulls:
                self.by_queue.pop(key, None)
                continue
            max_offset = table.max_offset(key[0], key[1])
            keep: list[ParkedPull] = []
            ready: list[ParkedPull] = []
            for parked in pulls:
                if parked.conn.closed:
                    self._finish(parked)
                elif parked.header.queue_offset < max_offset:
                    ready.append(parked)
                else:
                    keep.append(parked)
            if keep:
                self.by_queue[key] = keep
            else:
                self.by_queue.pop(key, None)
            for parked in ready:
                self._wake(parked)
                woken += 1
        return woken

    def check_timeouts(self, now: float | None = None) -> int:
        """Answer the pulls whose hold time ran out."""
        now = time.monotonic() if now is None else now
        deadlines = self._deadlines
        woken = 0
        while deadlines and deadlines[0][0] <= now:
            _, _, parked = heapq.heappop(deadlines)
            if parked.done:
                continue
            self._remove(parked)
            self._wake(parked)
            woken += 1
        return woken

    def wake_all(self) -> int:
        """Answer every parked pull now (the worker is stopping)."""
        woken = 0
        for pulls in list(self.by_queue.values()):
            for parked in pulls:
                if not parked.done:
                    self._wake(parked)
                    woken += 1
        self.by_queue.clear()
        self._deadlines.clear()
        return woken

    def _remove(self, parked: ParkedPull) -> None:
        pulls = self.by_queue.get(parked.key)
        if pulls is not None:
            try:
                pulls.remove(parked)
            except ValueError:
                pass
            if not pulls:
                self.by_queue.pop(parked.key, None)

    def _finish(self, parked: ParkedPull) -> None:
        if not parked.done:
            parked.done = True
            self.count -= 1

    def _wake(self, parked: ParkedPull) -> None:
        self._finish(parked)
        if parked.conn.closed:
            return
        try:
            response = self.execute(parked.request, parked.header, parked.message_filter)
        except Exception as exc:  # noqa: BLE001 - one bad pull must not stop the others
            response = parked.conn.error_response(parked.request, exc)
        parked.conn.respond(parked.request, response)
