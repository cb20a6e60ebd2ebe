"""The broker as a family of processes: what `rocketpy broker` runs.

The supervisor (this module's BrokerSupervisor) recovers the store before any
child exists — the only place a store file may be truncated — then creates the
shared segments and doorbells, builds each child and forks it:

| slot | child | owns |
|---|---|---|
| 0 | writer | CommitLog appends and flushes; committed/flushed offsets |
| 1 | dispatcher | ConsumeQueue and IndexFile; queue table; dispatched offset |
| 2 | control | metadata files; NameServer registration; client registry |
| 3.. | workers | client connections (SO_REUSEPORT on the broker port) |

A writer that dies takes the dispatcher down with it: the supervisor stops the
dispatcher, runs recovery again on the files (cutting any torn tail the dead
writer left), bumps the generation — puts sent to the old writer are then
answered SYSTEM_ERROR so clients retry — and starts both again. Any other child
restarts alone. SIGTERM drains workers first (in-flight requests answered), then
the writer (flushed), the dispatcher (caught up), then control (offsets saved,
unregistered from the NameServers); the store is then closed cleanly.
"""

from __future__ import annotations

import logging
import mmap
import os
import signal
import socket
import time
from collections.abc import Callable

from rocketpy import limits
from rocketpy.broker.child import EXIT_CONFIG, EXIT_DATAERR, Child
from rocketpy.broker.dispatcher import Dispatcher
from rocketpy.broker.internal import control_socket_name
from rocketpy.broker.supervisor import HaltBroker, Supervisor, SupervisorTimings
from rocketpy.broker.writer import Writer
from rocketpy.config import BrokerConfig, StoreConfig
from rocketpy.errors import CorruptStoreError, StoreError
from rocketpy.ipc import shm
from rocketpy.ipc.control_block import BrokerState, ControlBlock, Role, control_block_size
from rocketpy.ipc.doorbell import Doorbell
from rocketpy.ipc.queue_table import init_queue_table, queue_table_size
from rocketpy.ipc.ring import init_ring, ring_segment_size
from rocketpy.progress import Progress
from rocketpy.store.checkpoint import StoreLock
from rocketpy.store.file_store import FileStore

log = logging.getLogger("rocketpy.broker")

SLOT_WRITER = 0
SLOT_DISPATCHER = 1
SLOT_CONTROL = 2
SLOT_FIRST_WORKER = 3


def check_port_free(host: str, port: int) -> None:
    """Bind the broker port once without SO_REUSEPORT: the workers share it with SO_REUSEPORT,
    so without this a second broker of the same user could silently share its clients."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise HaltBroker(EXIT_CONFIG, f"cannot listen on {host}:{port}: {exc.strerror}; is another "
                                          "broker running? set listenPort to a free port") from None


def recovery_progress(clock: Callable[[], float] = time.monotonic) -> Progress:
    """Progress of store recovery as log lines, one per PROGRESS_LOG_INTERVAL_S.

    The supervisor runs under systemd, not on a terminal: a large recovery says how far it
    got, how fast and when it should end in the journal; a short one logs nothing extra.
    """
    return Progress("recovery", unit="B", log=log, live=False, clock=clock)


def default_worker_count() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class BrokerSupervisor(Supervisor):
    def __init__(self, broker_config: BrokerConfig, store_config: StoreConfig,
                 timings: SupervisorTimings | None = None) -> None:
        shm.check_platform()
        check_port_free(broker_config.listen_host, broker_config.listen_port)
        self.broker_config = broker_config
        self.store_config = store_config
        self.worker_count = broker_config.worker_count or default_worker_count()
        slot_count = SLOT_FIRST_WORKER + self.worker_count
        assert slot_count <= limits.HEARTBEAT_SLOTS_MAX
        self.boot_id = shm.new_boot_id()
        self._segments: list[tuple[str, mmap.mmap]] = []
        removed = shm.sweep_stale_segments(broker_config.broker_name)
        if removed:
            log.info("removed %d shared-memory segments left by an earlier run", len(removed))
        control_buf = self._segment("control", control_block_size(slot_count))
        control_block = ControlBlock(control_buf, Role.SUPERVISOR, initialize=True, slot_count=slot_count)
        super().__init__(control_block, slot_count, timings or SupervisorTimings(
            child_timeout_ms=broker_config.heartbeat_timeout_ms))
        self.control_buf = control_buf
        self.queue_table_buf = self._segment("queues", queue_table_size(limits.QUEUE_TABLE_SLOTS))
        init_queue_table(self.queue_table_buf, limits.QUEUE_TABLE_SLOTS)
        self.put_ring_bufs = []
        self.response_ring_bufs = []
        for i in range(self.worker_count):
            put = self._segment(f"put_{i}", ring_segment_size(limits.PUT_RING_CAPACITY))
            init_ring(put, limits.PUT_RING_CAPACITY)
            resp = self._segment(f"resp_{i}", ring_segment_size(limits.RESPONSE_RING_CAPACITY))
            init_ring(resp, limits.RESPONSE_RING_CAPACITY)
            self.put_ring_bufs.append(put)
            self.response_ring_bufs.append(resp)
        # Control's own puts (the delay scheduler's re-puts): one more ring pair the writer drains
        # like a worker's, answered on control's response doorbell.
        self.control_put_ring_buf = self._segment("put_ctl", ring_segment_size(limits.CONTROL_PUT_RING_CAPACITY))
        init_ring(self.control_put_ring_buf, limits.CONTROL_PUT_RING_CAPACITY)
        self.control_response_ring_buf = self._segment(
            "resp_ctl", ring_segment_size(limits.CONTROL_RESPONSE_RING_CAPACITY))
        init_ring(self.control_response_ring_buf, limits.CONTROL_RESPONSE_RING_CAPACITY)
        self.control_response_bell = Doorbell()
        self.writer_bell = Doorbell()
        self.dispatcher_bell = Doorbell()
        self.response_bells = [Doorbell() for _ in range(self.worker_count)]
        self.pull_bells = [Doorbell() for _ in range(self.worker_count)]
        self.generation = 0
        self.store: FileStore | None = None
        # Held for the supervisor's whole life, across store reopenings after a writer crash.
        os.makedirs(store_config.store_path_root_dir, exist_ok=True)
        self.store_lock = StoreLock(store_config.store_path_root_dir)
        try:
            self.store_lock.acquire()
        except StoreError as exc:
            self.release_segments()
            raise HaltBroker(EXIT_CONFIG, str(exc)) from exc
        self._stopping_on_purpose: set[int] = set()   # slots stopped by the supervisor itself
        self.boot_time_ms = time.time_ns() // 1_000_000
        record_max = store_config.max_message_size + limits.MESSAGE_RECORD_OVERHEAD_MAX
        if store_config.mapped_file_size_commitlog < record_max:
            log.warning("mappedFileSizeCommitLog=%d cannot hold a message of maxMessageSize=%d: larger "
                        "messages will be refused as illegal", store_config.mapped_file_size_commitlog,
                        store_config.max_message_size)
        try:
            self._recover()
        except BaseException:
            self.store_lock.release()
            self.release_segments()
            raise

    # --- shared segments ----------------------------------------------------------------

    def _segment(self, what: str, size: int) -> mmap.mmap:
        name = shm.segment_name(self.broker_config.broker_name, self.boot_id, what)
        buf = shm.create_segment(name, size)
        self._segments.append((name, buf))
        return buf

    def release_segments(self) -> None:
        for name, _buf in self._segments:
            shm.unlink_segment(name)
        self._segments.clear()

    # --- recovery and generations ------------------------------------------------------------

    def _recover(self) -> None:
        """(Re)open the store: recovery cuts a torn tail and rebuilds missing queue entries."""
        if self.store is not None:
            self.store.abandon()       # keep the abort marker: the next open is an abnormal recovery
            self.store = None
        try:
            self.store = FileStore.open(self.store_config, lock=self.store_lock,
                                        recovery_progress=recovery_progress().report)
        except CorruptStoreError as exc:
            raise HaltBroker(EXIT_DATAERR, f"the store cannot be recovered: {exc}") from exc
        except StoreError as exc:
            raise HaltBroker(EXIT_CONFIG, f"the store cannot be opened: {exc}") from exc
        report = self.store.recovery_report
        if report.truncated_bytes or report.deleted_files:
            log.warning("recovery cut %d bytes and %d files at phys %d: %s", report.truncated_bytes,
                        len(report.deleted_files), report.commitlog_end, "; ".join(report.reasons))
        else:
            log.info("recovery: CommitLog ends at %d (%s)", report.commitlog_end,
                     "after a crash" if report.abnormal else "clean")
        cl = self.store.commitlog
        self.generation += 1
        self.control_block.set_supervisor(generation=self.generation, state=BrokerState.STARTING,
                                          writer_pid=0, boot_time_ms=self.boot_time_ms)
        self.control_block.reset_torn_records()
        self.control_block.publish_writer(committed_offset=cl.committed_offset, flushed_offset=cl.flushed_offset,
                                          flushed_store_ts=cl.flushed_store_timestamp,
                                          writer_generation=self.generation, min_phys_offset=cl.min_phys_offset)
        # Recovery synced the ConsumeQueues up to the end of the log.
        self.control_block.publish_dispatched(cl.committed_offset, cl.committed_offset)

    # --- hooks ---------------------------------------------------------------------------------

    def build_child(self, slot: int) -> Child:
        if slot == SLOT_WRITER:
            assert self.store is not None
            return Writer(slot, self.store_config, self.store.commitlog, self.control_buf,
                          [*self.put_ring_bufs, self.control_put_ring_buf],
                          [*self.response_ring_bufs, self.control_response_ring_buf], self.writer_bell,
                          [*self.response_bells, self.control_response_bell], self.dispatcher_bell,
                          self.generation, stats_socket=control_socket_name(self.broker_config.broker_name,
                                                                            self.boot_id))
        if slot == SLOT_DISPATCHER:
            return Dispatcher(slot, self.store_config, self.control_buf, self.queue_table_buf,
                              self.dispatcher_bell, self.pull_bells)
        if slot == SLOT_CONTROL:
            from rocketpy.broker.control.process import Control

            return Control(slot, self.broker_config, self.store_config, self.control_buf, self.queue_table_buf,
                           self.boot_id, put_ring_buf=self.control_put_ring_buf,
                           response_ring_buf=self.control_response_ring_buf, writer_bell=self.writer_bell,
                           response_bell=self.control_response_bell)
        from rocketpy.broker.worker import Worker

        index = slot - SLOT_FIRST_WORKER
        return Worker(slot, index, self.broker_config, self.store_config, self.boot_id, self.control_buf,
                      self.queue_table_buf, self.put_ring_bufs[index], self.response_ring_bufs[index],
                      self.writer_bell, self.response_bells[index], self.pull_bells[index])

    def on_child_exit(self, slot: int, child: Child, code: int) -> None:
        if slot in self._stopping_on_purpose:
            self._stopping_on_purpose.discard(slot)
            log.info("%s (slot %d) stopped with %d", child.name, slot, code)
            return
        if slot == SLOT_WRITER and not self.draining and code not in (EXIT_DATAERR, EXIT_CONFIG):
            self._restart_writer(code)
            return
        super().on_child_exit(slot, child, code)

    def _restart_writer(self, code: int) -> None:
        """The writer died: stop the dispatcher, recover the files, start both in a new generation."""
        log.warning("writer exited with %d: recovering the CommitLog tail before restarting it", code)
        self._count_restart()
        if SLOT_DISPATCHER in self.running:
            run = self.running[SLOT_DISPATCHER]
            self._stopping_on_purpose.add(SLOT_DISPATCHER)
            os.kill(run.pid, signal.SIGTERM)
            self._wait_slots([SLOT_DISPATCHER], self.timings.drain_phase_timeout_ms)
        self._recover()
        self.spawn(SLOT_WRITER, code)
        if SLOT_DISPATCHER not in self.running:
            self.spawn(SLOT_DISPATCHER, 0)

    def on_tick(self) -> None:
        if self.ready_notified and self.control_block.state is not BrokerState.RUNNING:
            self.control_block.set_supervisor(generation=self.generation, state=BrokerState.RUNNING,
                                              writer_pid=self.running[SLOT_WRITER].pid
                                              if SLOT_WRITER in self.running else 0,
                                              boot_time_ms=self.boot_time_ms)

    def drain_phases(self) -> list[list[int]]:
        workers = list(range(SLOT_FIRST_WORKER, self.slot_count))
        return [workers, [SLOT_WRITER], [SLOT_DISPATCHER], [SLOT_CONTROL]]

    def on_drained(self) -> None:
        if self.store is not None:
            self.store.close()          # checkpoint, abort marker removed: the next start is clean
            self.store = None

    def run(self) -> int:
        try:
            code = super().run()
        finally:
            if self.store is not None:
                self.store.abandon()
                self.store = None
            self.store_lock.release()
            self.release_segments()
        return code


def run_broker(broker_config: BrokerConfig, store_config: StoreConfig) -> int:
    try:
        supervisor = BrokerSupervisor(broker_config, store_config)
    except HaltBroker as halt:
        log.error("%s", halt)
        return halt.code
    except shm.IpcError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    return supervisor.run()
