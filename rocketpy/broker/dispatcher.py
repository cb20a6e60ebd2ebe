"""Dispatcher — RocketMQ's ReputMessageService: the only writer of ConsumeQueue and IndexFile.

IndexFile (store.indexfile, when messageIndexEnable): built in setup after the
ConsumeQueues, fed by dispatch_range (which writes each batch's index entries
before its queue entries), fdatasynced with the queues, and its files below the
CommitLog's min offset deleted when retention moves it. Workers query it read-only.

It follows the committed offset the writer publishes, derives each record's
ConsumeQueue entry (and index entries), publishes every changed queue's max
offset in the queue table, then the dispatched offset, and rings the workers'
pull doorbells so parked long-polling pulls re-check at once.

On (re)start it reopens the ConsumeQueues from disk — their tails tell how far
an earlier dispatcher got — drops tail entries that disagree with the CommitLog
(an entry torn by a kill -9 mid-write would otherwise be kept, and never
rewritten since re-dispatch skips entries already present), and resumes from
the lowest point that may be missing: no higher than the end of the last entry
kept in a queue that lost a torn tail, nor than the dispatched offset the
previous dispatcher published (every queue entry of the records below it was
written; above it a batch may have reached some queues and not others).
Dispatching a record twice is harmless (entries already present are skipped).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from rocketpy.broker.child import EXIT_OK, Child
from rocketpy.config import StoreConfig
from rocketpy.ipc.control_block import ControlBlock, Role
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.ipc.queue_table import QueueTableWriter
from rocketpy.store.commitlog import CommitLog
from rocketpy.store.consumequeue import ConsumeQueueSet
from rocketpy.store.indexfile import IndexService
from rocketpy.store.io import RealFileIO
from rocketpy.store.recovery import consumequeue_entry_check, dispatch_range, parse_delay_levels_ms

log = logging.getLogger("rocketpy.broker.dispatcher")

DISPATCH_IDLE_WAIT_MS = 1000


def _mono_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class Dispatcher(Child):
    name = "dispatcher"

    def __init__(self, slot: int, store_config: StoreConfig, control_buf: Any, queue_table_buf: Any,
                 dispatcher_bell: Doorbell, pull_bells: list[Doorbell]) -> None:
        super().__init__(slot)
        self.store_config = store_config
        self._control_buf = control_buf
        self._queue_table_buf = queue_table_buf
        self.bell = dispatcher_bell
        self.pull_bells = pull_bells
        self.dispatched = 0
        self._published: dict[tuple[str, int], int] = {}
        self._last_cq_flush_ms = 0
        self._cq_flushed = 0          # every queue entry of records below this is on disk
        self._min_phys_seen = 0
        self.index: IndexService | None = None

    def setup(self) -> None:
        cfg = self.store_config
        root = cfg.store_path_root_dir
        io = RealFileIO()
        self.control_block = ControlBlock(self._control_buf, Role.DISPATCHER, slot=self.slot)
        self.queue_table = QueueTableWriter(self._queue_table_buf)
        self.commitlog = CommitLog(os.path.join(root, "commitlog"), cfg.mapped_file_size_commitlog, io,
                                   max_message_size=cfg.max_message_size, writable=False)
        self.commitlog.load()
        self.cqs = ConsumeQueueSet(io, os.path.join(root, "consumequeue"), cfg.mapped_file_size_consumequeue)
        self.cqs.load()
        if cfg.message_index_enable:
            # Index files are derived data. Re-dispatch skips records below the index's end, and
            # dispatch_range writes a batch's index entries before its queue entries, so resuming
            # where the queues end never skips keys; slots a killed dispatcher left pointing past
            # a file's indexCount are repaired on the first put.
            self.index = IndexService(os.path.join(root, "index"), slot_count=cfg.max_hash_slot_num,
                                      entry_count=cfg.max_index_num, io=io)
            self.index.load()
        self.delay_levels_ms = parse_delay_levels_ms(cfg.message_delay_level)
        committed = self.control_block.committed_offset
        # A dispatcher killed mid-write may have left a torn entry at a queue's tail: drop it.
        torn, rebuild_from = self.cqs.validate_tails(consumequeue_entry_check(self.commitlog, committed))
        # Resume where the queues end; never past what the writer committed, nor past what the
        # previous dispatcher published, nor past the last entry kept in a queue that lost a tail.
        resume = min(self.cqs.max_phys_covered(), committed, self.control_block.dispatched_offset)
        if rebuild_from is not None:
            resume = min(resume, rebuild_from)
            log.warning("dropped %d torn ConsumeQueue tail entr%s; dispatching again from phys %d",
                        torn, "y" if torn == 1 else "ies", max(resume, self.commitlog.min_phys_offset))
        self.dispatched = max(resume, self.commitlog.min_phys_offset)
        self._min_phys_seen = self.commitlog.min_phys_offset
        self._publish_queues(force=True)
        self._cq_flushed = self.dispatched     # load() found the queue ends on disk
        self.control_block.publish_dispatched(self.dispatched, self._cq_flushed)
        self._last_cq_flush_ms = _mono_ms()
        log.info("dispatcher up: resuming at %d (committed %d), %d queues", self.dispatched, committed,
                 len(self._published))

    def on_stop_requested(self) -> None:
        self.bell.ring()

    def run(self) -> int:
        while True:
            self.beat()
            if self.orphaned():
                log.warning("supervisor gone; dispatcher exits")
                break
            progressed = self.turn()
            if self.stopping and not progressed:
                break
            if not progressed:
                self.bell.wait(DISPATCH_IDLE_WAIT_MS / 1000)
        self.cqs.flush_all()
        if self.index is not None:
            self.index.flush()
            self.index.close()
        log.info("dispatcher stopped at %d", self.dispatched)
        return EXIT_OK

    def turn(self) -> bool:
        assert self.control_block is not None
        committed = self.control_block.committed_offset
        progressed = False
        if committed > self.dispatched:
            files = self.commitlog.mfq.files
            if not files or files[-1].file_end < committed:
                self.commitlog.mfq.refresh()      # the writer rolled to a file we have not mapped
            stats = dispatch_range(self.commitlog, self.cqs, self.index, self.dispatched, committed,
                                   delay_levels_ms=self.delay_levels_ms)
            progressed = stats.end_offset > self.dispatched
            if progressed:
                self.dispatched = stats.end_offset
                self._publish_queues()
                self.control_block.publish_dispatched(self.dispatched, self._cq_flushed)
                for bell in self.pull_bells:
                    bell.ring()
        now = _mono_ms()
        if now - self._last_cq_flush_ms >= self.store_config.flush_interval_consumequeue_ms:
            covered = self.dispatched
            self.cqs.flush_all()
            if self.index is not None:
                self.index.flush()
            self._last_cq_flush_ms = now
            if covered > self._cq_flushed:
                self._cq_flushed = covered
                self.control_block.publish_dispatched(self.dispatched, self._cq_flushed)
        self._follow_retention()
        return progressed

    def _follow_retention(self) -> None:
        """The writer deleted CommitLog files: drop the queue files that only pointed into them."""
        assert self.control_block is not None
        min_phys = self.control_block.min_phys_offset
        if min_phys <= self._min_phys_seen:
            return
        self._min_phys_seen = min_phys
        self.commitlog.mfq.refresh()
        deleted = self.cqs.delete_files_below(min_phys)
        if deleted:
            log.info("retention: deleted %d ConsumeQueue file(s) below phys %d", len(deleted), min_phys)
        if self.index is not None:
            gone = self.index.delete_files_below(min_phys)
            if gone:
                log.info("retention: deleted %d index file(s) below phys %d", len(gone), min_phys)
        self._publish_queues(force=True)

    def _publish_queues(self, *, force: bool = False) -> None:
        published = self._published
        for cq in self.cqs:
            key = (cq.topic, cq.queue_id)
            max_offset = cq.max_offset
            if force or published.get(key) != max_offset:
                self.queue_table.publish(cq.topic, cq.queue_id, max_offset, cq.min_offset, 0)
                published[key] = max_offset
