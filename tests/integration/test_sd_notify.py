"""systemd's notify protocol from the real processes: READY=1 once serving, WATCHDOG=1 while alive,
STOPPING=1 when a SIGTERM drain starts (the units in systemd/ are Type=notify with WatchdogSec)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.support.cluster import REPO, free_port, wait_for


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    received: list[str] = []

    def drain() -> list[str]:
        while True:
            try:
                received.append(sock.recv(4096).decode())
            except BlockingIOError:
                return received
    yield path, drain
    sock.close()


def _run(args: list[str], notify_path: str, log_path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="1000000")
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)


@pytest.mark.parametrize("server", ["namesrv", "broker"])
def test_ready_watchdog_and_stopping(server, notify_socket, tmp_path):
    path, drain = notify_socket
    port = free_port()
    if server == "namesrv":
        args = ["rocketpy.cli.namesrv", "--listen", f"127.0.0.1:{port}", "--metrics-port", "0"]
    else:
        props = tmp_path / "broker.properties"
        props.write_text(f"listenHost=127.0.0.1\nlistenPort={port}\nstorePathRootDir={tmp_path / 'store'}\n"
                         f"mappedFileSizeCommitLog={8 << 20}\nworkerCount=1\n")
        args = ["rocketpy.cli.broker", "-c", str(props)]
    proc = _run(args, path, tmp_path / "server.log")
    try:
        wait_for(lambda: "READY=1" in drain(), 60, f"{server} to say READY=1")
        wait_for(lambda: drain().count("WATCHDOG=1") >= 2, 30, f"{server} to ping the watchdog")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (tmp_path / "server.log").read_text()
        assert "STOPPING=1" in drain()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
