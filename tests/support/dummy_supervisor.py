"""A supervisor with dummy children, driven through files in a control directory.

Run: python -m tests.support.dummy_supervisor DIR SLOTS [TIMEOUT_MS]
Each child writes DIR/pid-<slot> with its pid at start and DIR/stopped-<slot> on a clean stop,
and obeys these files:  hang-<slot> (stop beating), busy-<slot> (announce a long syscall and stop
beating), exit-<slot> (contents: exit code to exit with).
"""

from __future__ import annotations

import logging
import mmap
import os
import sys
import time
from pathlib import Path

from rocketpy.broker.child import Child
from rocketpy.broker.supervisor import Supervisor, SupervisorTimings
from rocketpy.ipc.control_block import ControlBlock, Role, control_block_size


class DummyChild(Child):
    name = "dummy"

    def __init__(self, slot: int, buf: mmap.mmap, ctl_dir: Path) -> None:
        super().__init__(slot)
        self.name = f"dummy{slot}"
        self.buf = buf
        self.dir = ctl_dir

    def setup(self) -> None:
        self.control_block = ControlBlock(self.buf, Role.WORKER, slot=self.slot)
        (self.dir / f"pid-{self.slot}").write_text(str(os.getpid()))

    def run(self) -> int:
        while not self.stopping:
            if self.orphaned():
                return 0
            exit_file = self.dir / f"exit-{self.slot}"
            if exit_file.exists():
                code = int(exit_file.read_text())
                exit_file.unlink()
                return code
            if (self.dir / f"busy-{self.slot}").exists():
                self.beat(busy_since_ms=time.monotonic_ns() // 1_000_000 - 1, force=True)
                while (self.dir / f"busy-{self.slot}").exists() and not self.stopping:
                    time.sleep(0.02)
            elif not (self.dir / f"hang-{self.slot}").exists():
                self.beat()
            time.sleep(0.02)
        (self.dir / f"stopped-{self.slot}").write_text("ok")
        return 0


class DummySupervisor(Supervisor):
    def __init__(self, buf: mmap.mmap, slots: int, ctl_dir: Path, timings: SupervisorTimings) -> None:
        super().__init__(ControlBlock(buf, Role.SUPERVISOR, initialize=True, slot_count=slots), slots, timings)
        self.buf = buf
        self.dir = ctl_dir

    def build_child(self, slot: int) -> Child:
        return DummyChild(slot, self.buf, self.dir)

    def before_spawn(self, slot: int, previous_exit_code: int | None) -> None:
        if previous_exit_code is not None:
            with open(self.dir / "respawns", "a") as f:
                f.write(f"{slot} {previous_exit_code}\n")

    def drain_phases(self) -> list[list[int]]:
        return [[s] for s in reversed(range(self.slot_count))]

    def on_drained(self) -> None:
        (self.dir / "drained").write_text("ok")


def main() -> int:
    ctl_dir = Path(sys.argv[1])
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s",
                        handlers=[logging.StreamHandler(sys.stderr),
                                  logging.FileHandler(ctl_dir / "supervisor.log")])
    slots = int(sys.argv[2])
    timeout_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    buf = mmap.mmap(-1, control_block_size(slots), flags=mmap.MAP_SHARED)
    timings = SupervisorTimings(tick_s=0.05, child_timeout_ms=timeout_ms, kill_grace_ms=300,
                                drain_phase_timeout_ms=3000, restarts_max_in_window=5)
    return DummySupervisor(buf, slots, ctl_dir, timings).run()


if __name__ == "__main__":
    sys.exit(main())
