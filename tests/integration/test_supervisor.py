"""The supervisor with real forked children: restart on kill -9, hung-child abort, stalled disk,
halt codes, restart-loop guard, and a SIGTERM drain in phase order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def wait_for(cond, timeout_s: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def read_pid(d: Path, slot: int) -> int:
    f = d / f"pid-{slot}"
    return int(f.read_text()) if f.exists() and f.read_text() else 0


@pytest.fixture
def supervisor(tmp_path):
    procs = []

    def start(slots: int, timeout_ms: int = 1000):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.dummy_supervisor", str(tmp_path), str(slots), str(timeout_ms)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        for slot in range(slots):
            wait_for(lambda s=slot: read_pid(tmp_path, s), what=f"child {slot} to start")
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    # no child may outlive its supervisor for long (they exit when orphaned)
    for f in tmp_path.glob("pid-*"):
        pid = int(f.read_text() or 0)
        if pid:
            wait_for(lambda p=pid: not _alive(p), 5, f"orphan {pid} to exit")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of another parent counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_kill_9_child_is_restarted(supervisor, tmp_path):
    proc = supervisor(2)
    old = read_pid(tmp_path, 1)
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: (p := read_pid(tmp_path, 1)) != old and p, what="restart")
    assert new != old and _alive(new)
    assert (tmp_path / "respawns").read_text().strip() == f"1 {-signal.SIGKILL}"
    assert proc.poll() is None


def test_hung_child_gets_abort_then_restart(supervisor, tmp_path):
    proc = supervisor(1, timeout_ms=400)
    old = read_pid(tmp_path, 0)
    (tmp_path / "hang-0").write_text("")
    wait_for(lambda: read_pid(tmp_path, 0) != old, what="hung child replaced")
    (tmp_path / "hang-0").unlink()
    assert f"0 {-signal.SIGABRT}" in (tmp_path / "respawns").read_text() or \
        "0 1" in (tmp_path / "respawns").read_text()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert "missed its heartbeat" in err


def test_child_in_long_syscall_is_reported_not_killed(supervisor, tmp_path):
    proc = supervisor(1, timeout_ms=300)
    pid = read_pid(tmp_path, 0)
    (tmp_path / "busy-0").write_text("")
    log = tmp_path / "supervisor.log"
    wait_for(lambda: "disk is stalled" in log.read_text(), what="stalled-disk report")
    assert read_pid(tmp_path, 0) == pid and _alive(pid)
    (tmp_path / "busy-0").unlink()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert "disk is stalled" in err
    assert proc.returncode == 0


def test_halt_code_stops_the_broker_with_that_code(supervisor, tmp_path):
    proc = supervisor(2)
    (tmp_path / "exit-0").write_text("78")
    assert proc.wait(timeout=10) == 78
    assert not (tmp_path / "respawns").exists()


def test_restart_loop_is_bounded(supervisor, tmp_path):
    proc = supervisor(1)
    for _ in range(8):
        if proc.poll() is not None:
            break
        pid = read_pid(tmp_path, 0)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    assert proc.wait(timeout=10) == 1
    _, err = proc.communicate(timeout=5)
    assert "restarts within" in err


def test_sigterm_drains_in_phase_order_and_exits_0(supervisor, tmp_path):
    proc = supervisor(3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    for slot in range(3):
        assert (tmp_path / f"stopped-{slot}").exists(), f"child {slot} did not stop cleanly"
    assert (tmp_path / "drained").exists()
    _, err = proc.communicate(timeout=5)
    # phases run last slot first (the dummy's drain order)
    order = [line for line in err.splitlines() if "stopped with" in line]
    assert [line.split()[1] for line in order] == ["dummy2", "dummy1", "dummy0"]
