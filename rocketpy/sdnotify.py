"""systemd's notify protocol (READY=1, STOPPING=1, WATCHDOG=1), with no dependency.

Does nothing when the process was not started by systemd with Type=notify
(no NOTIFY_SOCKET in the environment).
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send one notification; True when systemd was told."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]   # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(path)
            sock.sendall(state.encode())
        return True
    except OSError:
        return False


def watchdog_interval_s() -> float | None:
    """Half of WatchdogSec when systemd asked this process for watchdog pings."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
