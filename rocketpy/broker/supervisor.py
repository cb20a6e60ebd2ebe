"""The supervisor: a plain synchronous loop that forks, watches and restarts the broker's children.

Modelled on gunicorn's arbiter: no threads and no asyncio, so forking is safe;
signal handlers only queue the signal and wake the loop through a pipe; the
loop dispatches `handle_<signal>`. A child late on its heartbeat gets SIGABRT,
then SIGKILL — except one inside a long syscall it announced (the writer's
fdatasync), which is reported as a stalled disk instead. A child exiting with a
halt code (bad config, corrupt store) stops the whole broker with that code, so
systemd does not restart it in a loop; any other exit is restarted, within a
bounded rate.

The broker-specific parts (which children, what to do before a respawn, the
order of the drain) are hooks a subclass fills in (`broker.runtime`).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import select
import signal
import sys
import time
from collections import deque
from types import FrameType

from rocketpy import sdnotify
from rocketpy.broker.child import EXIT_OK, HALT_EXIT_CODES, Child
from rocketpy.ipc.control_block import ControlBlock

log = logging.getLogger("rocketpy.broker.supervisor")

_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD, signal.SIGHUP)


@dataclasses.dataclass(frozen=True, slots=True)
class SupervisorTimings:
    tick_s: float = 1.0                    # loop wakes at least this often
    child_timeout_ms: int = 30_000         # heartbeat older than this: the child is hung
    kill_grace_ms: int = 5_000             # SIGABRT -> SIGKILL
    drain_phase_timeout_ms: int = 30_000   # per drain phase, then SIGKILL
    restart_window_s: float = 60.0
    restarts_max_in_window: int = 20       # more restarts than this: halt instead of looping
    stalled_disk_log_interval_ms: int = 10_000


@dataclasses.dataclass(slots=True)
class _Running:
    child: Child
    pid: int
    spawned_ms: int
    aborted_ms: int = 0
    last_stall_log_ms: int = 0


class HaltBroker(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Supervisor:
    """Subclass: implement `build_child`; optionally `before_spawn`, `drain_phases`, `on_drained`."""

    def __init__(self, control_block: ControlBlock, slot_count: int,
                 timings: SupervisorTimings = SupervisorTimings()) -> None:
        self.control_block = control_block
        self.slot_count = slot_count
        self.timings = timings
        self.pid = os.getpid()
        self.running: dict[int, _Running] = {}          # slot -> running child
        self._pids: dict[int, int] = {}                 # pid -> slot
        self._sig_queue: deque[int] = deque(maxlen=32)
        self._wake_r, self._wake_w = -1, -1
        self._restarts: deque[float] = deque()
        self._exit_code: int | None = None
        self.draining = False
        self.ready_notified = False

    # --- hooks -------------------------------------------------------------------

    def build_child(self, slot: int) -> Child:
        raise NotImplementedError

    def before_spawn(self, slot: int, previous_exit_code: int | None) -> None:
        """Runs in the supervisor before (re)spawning a slot, e.g. to recover the CommitLog tail."""

    def drain_phases(self) -> list[list[int]]:
        """Slots to stop together, in order, on SIGTERM."""
        return [list(range(self.slot_count))]

    def on_drained(self) -> None:
        """Every child has stopped: write the checkpoint, remove the abort marker."""

    def on_tick(self) -> None:
        """Once per loop turn."""

    def is_ready(self) -> bool:
        """True once the broker serves (for READY=1); default: every child has beaten once."""
        for slot, run in self.running.items():
            pid, _, _ = self.control_block.heartbeat(slot)
            if pid != run.pid:
                return False
        return len(self.running) == self.slot_count

    # --- main loop ------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        try:
            for slot in range(self.slot_count):
                self.spawn(slot, None)
            while self._exit_code is None:
                self._wait_for_signal_or_tick()
                self._dispatch_signals()
                self.reap()
                if self._exit_code is not None:
                    break
                if not self.draining:
                    self.check_heartbeats()
                    if not self.ready_notified and self.is_ready():
                        self.ready_notified = True
                        sdnotify.notify("READY=1")
                        log.info("broker ready: %d children running", len(self.running))
                    self.on_tick()
                sdnotify.notify("WATCHDOG=1")
        except HaltBroker as halt:
            log.error("halting the broker: %s", halt)
            self.draining = True   # nothing that exits from now on is restarted
            self._kill_all(signal.SIGTERM)
            self._wait_all(self.timings.drain_phase_timeout_ms)
            self._exit_code = halt.code
        finally:
            self._restore_signals()
        return self._exit_code if self._exit_code is not None else EXIT_OK

    # --- signals ---------------------------------------------------------------------

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for sig in _HANDLED_SIGNALS:
            signal.signal(sig, self._queue_signal)

    def _restore_signals(self) -> None:
        for sig in _HANDLED_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _queue_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only queue and wake: nothing else is safe inside a handler.
        self._sig_queue.append(signum)
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass

    def _wait_for_signal_or_tick(self) -> None:
        if self._sig_queue:
            return
        try:
            ready, _, _ = select.select([self._wake_r], [], [], self.timings.tick_s)
        except InterruptedError:
            return
        if ready:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass

    def _dispatch_signals(self) -> None:
        while self._sig_queue:
            signum = self._sig_queue.popleft()
            name = signal.Signals(signum).name.lower()
            handler = getattr(self, f"handle_{name[3:]}", None)
            if handler is not None:
                handler()

    def handle_term(self) -> None:
        """Graceful stop: drain children phase by phase, then exit 0."""
        if self.draining:
            return
        self.drain()

    def handle_int(self) -> None:
        self.handle_term()

    def handle_quit(self) -> None:
        """Quick stop: every child at once."""
        log.info("SIGQUIT: stopping every child at once")
        self.draining = True
        self._kill_all(signal.SIGTERM)
        self._wait_all(self.timings.kill_grace_ms)
        self._exit_code = EXIT_OK

    def handle_chld(self) -> None:
        pass  # reaped by the loop

    def handle_hup(self) -> None:
        log.info("SIGHUP ignored (reload is not supported; restart the broker)")

    # --- children --------------------------------------------------------------------

    def spawn(self, slot: int, previous_exit_code: int | None) -> None:
        self.before_spawn(slot, previous_exit_code)
        child = self.build_child(slot)
        child.supervisor_pid = self.pid
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                for fd in (self._wake_r, self._wake_w):
                    os.close(fd)
                code = child.bootstrap()
            finally:
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        child.pid = pid
        self.running[slot] = _Running(child, pid, _now_ms())
        self._pids[pid] = slot
        log.info("spawned %s (slot %d) pid %d", child.name, slot, pid)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self._pids.pop(pid, None)
            if slot is None:
                continue
            run = self.running.pop(slot)
            code = os.waitstatus_to_exitcode(status)
            self.on_child_exit(slot, run.child, code)

    def on_child_exit(self, slot: int, child: Child, code: int) -> None:
        if self.draining:
            log.info("%s (slot %d) stopped with %d", child.name, slot, code)
            return
        if code in HALT_EXIT_CODES:
            raise HaltBroker(code, f"{child.name} exited with {code}: it cannot be restarted")
        self._count_restart()
        how = f"signal {-code}" if code < 0 else f"code {code}"
        log.warning("%s (slot %d) exited with %s; restarting", child.name, slot, how)
        self.spawn(slot, code)

    def _count_restart(self) -> None:
        """Record a restart; too many within the window halts the broker instead of looping."""
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and now - self._restarts[0] > self.timings.restart_window_s:
            self._restarts.popleft()
        if len(self._restarts) > self.timings.restarts_max_in_window:
            raise HaltBroker(1, f"{len(self._restarts)} child restarts within "
                                f"{self.timings.restart_window_s:.0f} s; stopping instead of looping")

    def check_heartbeats(self) -> None:
        now = _now_ms()
        t = self.timings
        for slot, run in list(self.running.items()):
            pid, beat_ms, busy_since_ms = self.control_block.heartbeat(slot)
            last = beat_ms if pid == run.pid else run.spawned_ms
            if now - last <= t.child_timeout_ms:
                continue
            if busy_since_ms and pid == run.pid:
                if now - run.last_stall_log_ms >= t.stalled_disk_log_interval_ms:
                    run.last_stall_log_ms = now
                    log.error("%s (pid %d) has been inside a disk sync for %d ms: the disk is stalled",
                              run.child.name, run.pid, now - busy_since_ms)
                continue
            if not run.aborted_ms:
                log.error("%s (pid %d) missed its heartbeat for %d ms; sending SIGABRT",
                          run.child.name, run.pid, now - last)
                run.aborted_ms = now
                _signal(run.pid, signal.SIGABRT)
            elif now - run.aborted_ms > t.kill_grace_ms:
                log.error("%s (pid %d) ignored SIGABRT; sending SIGKILL", run.child.name, run.pid)
                _signal(run.pid, signal.SIGKILL)

    # --- stopping ------------------------------------------------------------------------

    def drain(self) -> None:
        log.info("draining: stopping children phase by phase")
        self.draining = True
        sdnotify.notify("STOPPING=1")
        for phase in self.drain_phases():
            slots = [s for s in phase if s in self.running]
            for slot in slots:
                _signal(self.running[slot].pid, signal.SIGTERM)
            self._wait_slots(slots, self.timings.drain_phase_timeout_ms)
        self._kill_all(signal.SIGTERM)
        self._wait_all(self.timings.kill_grace_ms)
        self.on_drained()
        self._exit_code = EXIT_OK
        log.info("drained; exiting 0")

    def _wait_slots(self, slots: list[int], timeout_ms: int) -> None:
        deadline = _now_ms() + timeout_ms
        while any(s in self.running for s in slots):
            self.reap()
            if _now_ms() > deadline:
                for s in slots:
                    if s in self.running:
                        log.error("%s did not stop within %d ms; SIGKILL", self.running[s].child.name,
                                  timeout_ms)
                        _signal(self.running[s].pid, signal.SIGKILL)
                deadline = _now_ms() + timeout_ms
            time.sleep(0.01)

    def _kill_all(self, sig: int) -> None:
        for run in self.running.values():
            _signal(run.pid, sig)

    def _wait_all(self, timeout_ms: int) -> None:
        self._wait_slots(list(self.running), timeout_ms)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000
