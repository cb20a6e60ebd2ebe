"""`rocketpy store verify` as a real process: a progress line on a terminal, none in a pipe."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.unit.test_store_verify import build_clean

TIMEOUT_S = 120.0
VERIFY = [sys.executable, "-c", "from rocketpy.cli.store import store_app; store_app()", "verify"]


def read_until_closed(fd: int, proc: subprocess.Popen[bytes]) -> bytes:
    """Everything written to a pty until the child exits and the pty drains (bounded in time)."""
    out = bytearray()
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:          # EIO: the child closed its end
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return bytes(out)


def test_verify_prints_progress_on_a_terminal_only(tmp_path: Path) -> None:
    build_clean(tmp_path)
    piped = subprocess.run([*VERIFY, str(tmp_path)], capture_output=True, timeout=TIMEOUT_S)
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert piped.stdout.startswith(b"OK")
    assert b"verify" not in piped.stderr and b"\r" not in piped.stderr and b"B/s" not in piped.stderr

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([*VERIFY, str(tmp_path)], stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        slave = -1
        tty_text = read_until_closed(master, proc)
        stdout, _ = proc.communicate(timeout=TIMEOUT_S)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 0
    assert stdout.startswith(b"OK"), "the report itself still goes to stdout"
    assert b"\r" in tty_text and b"verify" in tty_text, tty_text
    assert b"100%" in tty_text and b"B/s" in tty_text, tty_text
