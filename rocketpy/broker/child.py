"""The base of every broker child process (writer, dispatcher, workers, control).

A child object is built in the supervisor before the fork (so it can take the
inherited shared maps and doorbells) and set up in the child after it (open
files, start loops). It beats into its heartbeat slot, exits when orphaned,
and tells the supervisor through its exit code whether a restart can help.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from types import FrameType

from rocketpy.ipc.control_block import ControlBlock

# Exit codes a child (and the broker) uses. Any other code means "restart me".
EXIT_OK = 0
EXIT_DATAERR = 65     # corrupt store: restarting would not help (sysexits EX_DATAERR)
EXIT_CONFIG = 78      # bad configuration or boot failure (sysexits EX_CONFIG)
HALT_EXIT_CODES = frozenset({EXIT_DATAERR, EXIT_CONFIG})


class Child:
    """Subclass and implement `setup` and `run`; `run` returns an exit code."""

    name = "child"

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.pid = 0
        self.supervisor_pid = 0
        self.control_block: ControlBlock | None = None  # set by the subclass before the fork
        self.stopping = False
        self._last_beat_ms = 0
        self.log = logging.getLogger(f"rocketpy.broker.{self.name}")

    # --- called in the child, after the fork -------------------------------------

    def bootstrap(self) -> int:
        """Entry point in the forked child: signals, setup, run. Returns the exit code."""
        self.pid = os.getpid()
        self._install_signals()
        try:
            self.setup()
            self.beat(force=True)
            return self.run()
        except SystemExit as exc:
            return int(exc.code or 0)
        except BaseException:  # noqa: BLE001 - a child must report, never hang
            self.log.error("%s crashed:\n%s", self.name, traceback.format_exc())
            return 1

    def _install_signals(self) -> None:
        # Reset the supervisor's handlers; keep handlers that only set flags.
        signal.signal(signal.SIGTERM, self._handle_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the supervisor, which drains us
        signal.signal(signal.SIGQUIT, self._handle_term)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGABRT, self._handle_abort)
        signal.set_wakeup_fd(-1)

    def _handle_term(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        self.on_stop_requested()

    def _handle_abort(self, signum: int, frame: FrameType | None) -> None:
        # The supervisor found us late on our heartbeat: dump where we are and die.
        sys.stderr.write(f"rocketpy {self.name} (pid {os.getpid()}) aborted by supervisor; stack:\n")
        traceback.print_stack(frame, file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)

    def on_stop_requested(self) -> None:
        """Hook run inside the SIGTERM handler: only set flags or ring doorbells here."""

    def setup(self) -> None:
        """Open files and maps, build loops. Runs in the child."""

    def run(self) -> int:
        raise NotImplementedError

    # --- helpers for the child's loop ------------------------------------------

    def orphaned(self) -> bool:
        return self.supervisor_pid != 0 and os.getppid() != self.supervisor_pid

    def beat(self, *, busy_since_ms: int = 0, force: bool = False) -> None:
        """Heartbeat; cheap enough to call every loop turn (rate-limited to ~100 ms)."""
        now = time.monotonic_ns() // 1_000_000
        if not force and busy_since_ms == 0 and now - self._last_beat_ms < 100:
            return
        self._last_beat_ms = now
        if self.control_block is not None:
            self.control_block.beat(self.pid or os.getpid(), now, busy_since_ms)
