"""The writer: the only process that appends to the CommitLog and flushes it.

One loop turn: drain every worker's put ring in one batch, append each request
as one contiguous group (assigning phys offset, queue offset and store time),
publish the committed offset, answer every request on its worker's response
ring, wake the dispatcher; then flush — at once under SYNC_FLUSH (one
fdatasync for the whole batch: the group commit), by the flush policy under
ASYNC_FLUSH — and publish the flushed offset. A worker answers a SYNC put
whose client waits only once the published flushed offset covers it, so an
acknowledged SEND_OK under SYNC_FLUSH is on disk.

Writes never go through a map (a full disk would SIGBUS); the CommitLog uses
pwrite into files zero-filled ahead of time (`prepare_next_file`, done when
idle), which halves fdatasync latency (ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from rocketpy import limits
from rocketpy.broker.child import EXIT_OK, Child
from rocketpy.broker.putwire import PutResponse, PutStatus, decode_put_request
from rocketpy.broker.stats_link import StatsLink
from rocketpy.config import FlushDiskType, StoreConfig
from rocketpy.errors import DiskFullError, MessageIllegalError, ProtocolError, StoreError
from rocketpy.ipc.control_block import FLAG_DISK_FULL, ControlBlock, Role
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.ipc.ring import RingConsumer, RingProducer
from rocketpy.metrics.stats import ProcessStats
from rocketpy.store.api import PutRequest
from rocketpy.store.commitlog import CommitLog
from rocketpy.store.flush import AsyncFlushPolicy
from rocketpy.store.retention import (
    DiskGuard,
    RetentionPolicy,
    apply_retention,
    disk_usage_ratio,
    local_hour,
)

log = logging.getLogger("rocketpy.broker.writer")

_I32_SIZE = 4
WRITER_IDLE_WAIT_MS = 1000          # a doorbell wait never exceeds this (heartbeats, orphan check)
DISK_CHECK_INTERVAL_MS = limits.DISK_CHECK_INTERVAL_MS


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _mono_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def split_records(records: memoryview, count: int) -> list[memoryview]:
    """Cut a put request's records (back to back, each starting with its TOTALSIZE)."""
    out: list[memoryview] = []
    pos = 0
    n = len(records)
    for _ in range(count):
        if n - pos < _I32_SIZE:
            raise ProtocolError("put request ends inside a record")
        size = int.from_bytes(records[pos:pos + 4], "big", signed=True)
        if size <= 0 or pos + size > n:
            raise ProtocolError(f"record size {size} at {pos} runs past the put request")
        out.append(records[pos:pos + size])
        pos += size
    if pos != n:
        raise ProtocolError("put request has bytes after its last record")
    return out


class Writer(Child):
    name = "writer"

    def __init__(self, slot: int, store_config: StoreConfig, commitlog: CommitLog, control_buf: Any,
                 put_ring_bufs: list[Any], response_ring_bufs: list[Any], writer_bell: Doorbell,
                 worker_bells: list[Doorbell], dispatcher_bell: Doorbell, generation: int,
                 stats_socket: str | None = None) -> None:
        super().__init__(slot)
        self.stats = ProcessStats("writer")
        self.stats_link = StatsLink(stats_socket) if stats_socket else None
        self._next_stats_ms = 0
        assert len(put_ring_bufs) == len(response_ring_bufs) == len(worker_bells)
        self.store_config = store_config
        self.commitlog = commitlog            # recovered by the supervisor before the fork
        self._control_buf = control_buf
        self._put_ring_bufs = put_ring_bufs
        self._response_ring_bufs = response_ring_bufs
        self.writer_bell = writer_bell
        self.worker_bells = worker_bells
        self.dispatcher_bell = dispatcher_bell
        self.generation = generation
        self.sync_flush = store_config.flush_disk_type is FlushDiskType.SYNC_FLUSH
        self.policy = AsyncFlushPolicy(interval_ms=store_config.flush_interval_commitlog_ms,
                                       least_pages=store_config.flush_commitlog_least_pages,
                                       thorough_interval_ms=store_config.flush_commitlog_thorough_interval_ms)
        self._last_flush_ms = 0
        self._last_thorough_ms = 0
        # Retention (RocketMQ's CleanCommitLogService) runs here: the writer owns the CommitLog files.
        self.retention = RetentionPolicy(store_config)
        self.disk_guard = DiskGuard(store_config)
        self.usage_ratio: Callable[[], float] = lambda: disk_usage_ratio(store_config.store_path_root_dir)
        self._next_disk_check_ms = 0
        self._next_retention_ms = 0
        # Zero-filling the next CommitLog file (1 GiB by default) runs in this thread: pwrite and
        # fdatasync release the GIL, so appends go on meanwhile (ARCHITECTURE.md: warm mapped file).
        self._warm_thread: threading.Thread | None = None
        # Responses a full response ring could not take yet, per worker.
        self._backlog: list[deque[bytes]] = []

    # --- child lifecycle ------------------------------------------------------------

    def setup(self) -> None:
        self.control_block = ControlBlock(self._control_buf, Role.WRITER, slot=self.slot)
        self.put_rings = [RingConsumer(b) for b in self._put_ring_bufs]
        self.response_rings = [RingProducer(b) for b in self._response_ring_bufs]
        self._backlog = [deque() for _ in self.response_rings]
        self._last_flush_ms = self._last_thorough_ms = _mono_ms()
        self._next_retention_ms = _mono_ms() + self.store_config.clean_resource_interval_ms
        self._check_disk()
        self._publish()
        log.info("writer up: generation %d, committed %d, flushed %d, %s", self.generation,
                 self.commitlog.committed_offset, self.commitlog.flushed_offset,
                 "SYNC_FLUSH" if self.sync_flush else "ASYNC_FLUSH")

    def on_stop_requested(self) -> None:
        self.writer_bell.ring()

    def run(self) -> int:
        while True:
            self.beat()
            if self.orphaned():
                log.warning("supervisor gone; writer exits")
                break
            handled = self.turn()
            self.housekeeping()
            if self.stopping and not handled:
                break
            self._maybe_warm()
            if not handled:
                self.writer_bell.wait(self._idle_wait_s())
        self.turn()
        self._flush()
        self._deliver_backlog()
        if self._warm_thread is not None:
            self._warm_thread.join()
        log.info("writer stopped: committed %d, flushed %d", self.commitlog.committed_offset,
                 self.commitlog.flushed_offset)
        return EXIT_OK

    def _idle_wait_s(self) -> float:
        if self.sync_flush or self.commitlog.committed_offset == self.commitlog.flushed_offset:
            return WRITER_IDLE_WAIT_MS / 1000
        due = self._last_flush_ms + self.policy.interval_ms - _mono_ms()
        return max(0.0, min(due, WRITER_IDLE_WAIT_MS)) / 1000

    # --- one loop turn -----------------------------------------------------------------

    def turn(self) -> bool:
        """Drain, append, answer, flush. True when any request was handled."""
        responses: list[list[bytes]] = [[] for _ in self.put_rings]
        handled = 0
        disk_full = self.disk_guard.writes_refused
        now_ms = _now_ms()
        for worker, ring in enumerate(self.put_rings):
            msgs = ring.peek()
            for msg in msgs:
                responses[worker].append(self._handle(msg, now_ms, disk_full).encode())
            handled += len(msgs)
            ring.release()
        if handled:
            self._publish()
            self.dispatcher_bell.ring()
            for worker, out in enumerate(responses):
                if out:
                    self._respond(worker, out)
        self._deliver_backlog()
        if self.sync_flush:
            if self.commitlog.committed_offset > self.commitlog.flushed_offset:
                self._flush()
        else:
            now = _mono_ms()
            decision = self.policy.decide(now, self.commitlog.committed_offset, self.commitlog.flushed_offset,
                                          self._last_flush_ms, self._last_thorough_ms)
            if decision.flush:
                self._flush()
                if decision.thorough:
                    self._last_thorough_ms = now
        return handled > 0

    def _handle(self, msg: memoryview, now_ms: int, disk_full: bool) -> PutResponse:
        try:
            req = decode_put_request(msg)
        except (ProtocolError, UnicodeDecodeError) as exc:
            log.error("dropping a malformed put request from a worker: %s", exc)
            return PutResponse(int.from_bytes(msg[:8], "little") if len(msg) >= 8 else 0,
                               PutStatus.STORE_ERROR)
        rid = req.request_id
        if req.generation != self.generation:
            return PutResponse(rid, PutStatus.STALE_GENERATION)
        if disk_full:
            return PutResponse(rid, PutStatus.SERVICE_NOT_AVAILABLE)
        try:
            parts = split_records(req.records, req.record_count)
            group = [PutRequest(req.topic, req.queue_id, req.sys_flag, bytearray(p)) for p in parts]
            results = self.commitlog.append(group, now_ms)
        except (MessageIllegalError, ProtocolError) as exc:
            log.warning("refused put to %s/%d: %s", req.topic, req.queue_id, exc)
            return PutResponse(rid, PutStatus.MESSAGE_ILLEGAL)
        except DiskFullError as exc:
            log.error("put to %s/%d refused: %s", req.topic, req.queue_id, exc)
            return PutResponse(rid, PutStatus.SERVICE_NOT_AVAILABLE)
        except StoreError as exc:
            log.error("put to %s/%d failed: %s", req.topic, req.queue_id, exc)
            return PutResponse(rid, PutStatus.STORE_ERROR)
        first, last = results[0], results[-1]
        return PutResponse(rid, PutStatus.PUT_OK, len(results), first.phys_offset, first.queue_offset,
                           first.store_timestamp, last.phys_offset + last.size)

    # --- publishing and answering ----------------------------------------------------------

    def _publish(self) -> None:
        assert self.control_block is not None
        cl = self.commitlog
        self.control_block.publish_writer(committed_offset=cl.committed_offset, flushed_offset=cl.flushed_offset,
                                          flushed_store_ts=cl.flushed_store_timestamp,
                                          writer_generation=self.generation, min_phys_offset=cl.min_phys_offset,
                                          flags=FLAG_DISK_FULL if self.disk_guard.writes_refused else 0)

    def _respond(self, worker: int, out: list[bytes]) -> None:
        backlog = self._backlog[worker]
        if backlog:
            backlog.extend(out)
            return
        written = self.response_rings[worker].put_many(out)
        if written < len(out):
            log.warning("response ring of worker %d is full; %d responses wait", worker, len(out) - written)
            backlog.extend(out[written:])
        self.worker_bells[worker].ring()

    def _deliver_backlog(self) -> None:
        for worker, backlog in enumerate(self._backlog):
            if not backlog:
                continue
            pending = list(backlog)
            written = self.response_rings[worker].put_many(pending)
            for _ in range(written):
                backlog.popleft()
            if written:
                self.worker_bells[worker].ring()

    # --- warming the next file -------------------------------------------------------------

    def _maybe_warm(self) -> None:
        thread = self._warm_thread
        if thread is not None:
            if thread.is_alive():
                return
            thread.join()
            self._warm_thread = None
        if self.commitlog.needs_next_file and not self.stopping:
            self._warm_thread = threading.Thread(target=self._warm, name="commitlog-warmer", daemon=True)
            self._warm_thread.start()

    def _warm(self) -> None:
        try:
            while not self.stopping and not self.commitlog.prepare_next_file_step():
                pass
        except StoreError as exc:
            # Not fatal: the append path creates the file itself when it gets there.
            log.error("warming the next CommitLog file failed: %s", exc)

    # --- disk guard and retention ------------------------------------------------------------

    def housekeeping(self) -> None:
        """The disk-full guard every second; a retention pass every cleanResourceInterval."""
        now = _mono_ms()
        if self.stats_link is not None and now >= self._next_stats_ms:
            self._next_stats_ms = now + limits.METRICS_SHIP_INTERVAL_MS
            self.stats_link.ship(self.stats.take())
        if now >= self._next_disk_check_ms:
            self._check_disk()
        if now >= self._next_retention_ms:
            self._next_retention_ms = now + self.store_config.clean_resource_interval_ms
            self.retention_pass(_now_ms())

    def _check_disk(self) -> None:
        self._next_disk_check_ms = _mono_ms() + DISK_CHECK_INTERVAL_MS
        before = self.disk_guard.writes_refused
        ratio = self.usage_ratio()
        if ratio >= 0:
            self.disk_guard.update(ratio)
        if self.disk_guard.writes_refused != before and self.control_block is not None:
            self._publish()

    def retention_pass(self, now_ms: int, *, force: bool = False) -> int:
        """Delete expired CommitLog files, oldest first, never one whose queue entries are not on
        disk yet (the dispatcher publishes how far its ConsumeQueues are flushed)."""
        assert self.control_block is not None
        cl = self.commitlog
        mfq = cl.mfq
        limit = min(self.control_block.consumequeue_flushed_offset, cl.flushed_offset)
        listing = [(os.path.basename(mf.path), cl.io.mtime_ms(mf.path), mf.file_size) for mf in mfq.files]

        def delete_file(name: str) -> bool:
            files = mfq.files
            if len(files) < 2 or os.path.basename(files[0].path) != name or files[0].file_end > limit:
                return False
            return bool(mfq.delete_first(1))

        ratio = self.usage_ratio()
        deleted = apply_retention(self.retention, self.disk_guard, files=listing, delete_file=delete_file,
                                  now_ms=now_ms, usage_ratio=max(ratio, 0.0), local_hour=local_hour(now_ms),
                                  force=force)
        if deleted:
            log.info("retention: deleted %d CommitLog file(s) (%s); min offset now %d", len(deleted),
                     ", ".join(deleted), cl.min_phys_offset)
        self._publish()
        return len(deleted)

    def _flush(self) -> None:
        cl = self.commitlog
        if cl.committed_offset <= cl.flushed_offset:
            return
        started = _mono_ms()
        self.beat(busy_since_ms=started)      # a long fdatasync is a stalled disk, not a hang
        flush_started = time.perf_counter()
        try:
            cl.flush()
            self.stats.observe_flush(time.perf_counter() - flush_started)
        except StoreError:
            log.exception("CommitLog flush failed; the writer exits so recovery can check the log")
            raise SystemExit(1) from None
        finally:
            self.beat(force=True)
        self._last_flush_ms = _mono_ms()
        self._publish()
        # Workers hold SYNC puts until the flushed offset covers them: wake them all.
        for bell in self.worker_bells:
            bell.ring()
