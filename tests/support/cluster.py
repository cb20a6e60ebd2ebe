"""Real NameServer and broker processes on loopback for integration, crash and compat tests.

Every process gets a free port, its own store directory and a log file; every wait is
bounded and polls a condition; `stop` kills whatever is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond, timeout_s: float = 10.0, what: str = "condition", interval_s: float = 0.02):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclasses.dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill_tree()
        return self.popen.returncode

    def kill_tree(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(self.popen.pid)
            for child in parent.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            parent.kill()
        self.popen.wait(10)

    def children(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            return psutil.Process(self.popen.pid).children(recursive=False)
        return []


def _spawn(name: str, args: list[str], log_path: Path) -> Proc:
    log_file = open(log_path, "ab")  # noqa: SIM115 - owned by the Popen for its lifetime
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    popen = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
                             env=env, start_new_session=True)
    log_file.close()
    return Proc(name, popen, log_path)


@dataclasses.dataclass
class Cluster:
    root: Path
    namesrv_port: int = 0
    broker_port: int = 0
    namesrv: Proc | None = None
    broker: Proc | None = None
    broker_props: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def namesrv_addr(self) -> str:
        return f"127.0.0.1:{self.namesrv_port}"

    @property
    def broker_addr(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    def start_namesrv(self, *, metrics_port: int = 0, **props: str) -> Proc:
        """metrics_port 0 keeps GET /metrics off, so parallel clusters never fight over listenPort + 5."""
        self.namesrv_port = self.namesrv_port or free_port()
        sets = {"scanNotActiveBrokerInterval": "1000", **props}
        args = ["rocketpy.cli.namesrv", "--listen", self.namesrv_addr, "--metrics-port", str(metrics_port)]
        for key, value in sets.items():
            args += ["--set", f"{key}={value}"]
        self.namesrv = _spawn("namesrv", args, self.root / "namesrv.log")
        wait_for(lambda: port_open(self.namesrv_port) or self.namesrv.popen.poll() is not None,
                 STARTUP_TIMEOUT_S, "the NameServer to listen")
        assert self.namesrv.popen.poll() is None, self.namesrv.log()
        return self.namesrv

    def start_broker(self, **props: str) -> Proc:
        self.broker_port = self.broker_port or free_port()
        self.broker_props = {
            "brokerName": "broker-a",
            "brokerClusterName": "DefaultCluster",
            "namesrvAddr": self.namesrv_addr if self.namesrv else "",
            "listenHost": "127.0.0.1",
            "brokerIP1": "127.0.0.1",
            "listenPort": str(self.broker_port),
            "storePathRootDir": str(self.store_dir),
            "mappedFileSizeCommitLog": str(8 * 1024 * 1024),
            "mappedFileSizeConsumeQueue": str(20 * 1000),
            "workerCount": "2",
            "registerNameServerPeriod": "2000",
            "childHeartbeatTimeout": "10000",
            "metricsPort": "0",
            **self.broker_props,
            **props,
        }
        path = self.root / "broker.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.broker_props.items()))
        self.broker = _spawn("broker", ["rocketpy.cli.broker", "-c", str(path)], self.root / "broker.log")
        self.wait_broker_ready()
        return self.broker

    def wait_broker_ready(self) -> None:
        assert self.broker is not None
        broker = self.broker
        wait_for(lambda: port_open(self.broker_port) or broker.popen.poll() is not None,
                 STARTUP_TIMEOUT_S, "the broker to listen")
        assert broker.popen.poll() is None, broker.log()
        wait_for(lambda: "broker ready" in broker.log() or broker.popen.poll() is not None,
                 STARTUP_TIMEOUT_S, "every broker child to run")
        assert broker.popen.poll() is None, broker.log()

    def broker_child(self, name: str) -> psutil.Process:
        """The live child process playing `name` (writer, dispatcher, control, worker)."""
        assert self.broker is not None
        pids = {p.pid: p for p in self.broker.children()}
        marker = {"writer": "writer up", "dispatcher": "dispatcher up"}.get(name)
        for line in reversed(self.broker.log().splitlines()):
            if f"spawned {name}" in line:
                pid = int(line.rsplit("pid", 1)[1].split()[0])
                if pid in pids:
                    return pids[pid]
        raise AssertionError(f"no live {name} child (marker {marker}); log:\n{self.broker.log()[-3000:]}")

    def stop(self) -> None:
        for proc in (self.broker, self.namesrv):
            if proc is not None and proc.popen.poll() is None:
                proc.stop()


@contextlib.contextmanager
def cluster(root: Path, *, namesrv: bool = True, **broker_props: str) -> Iterator[Cluster]:
    root.mkdir(parents=True, exist_ok=True)
    c = Cluster(root)
    try:
        if namesrv:
            c.start_namesrv()
        c.start_broker(**broker_props)
        yield c
    finally:
        for proc in (c.broker, c.namesrv):
            if proc is not None and proc.popen.poll() is None:
                try:
                    proc.stop(20)
                except Exception:  # noqa: BLE001 - teardown must not mask the test's own failure
                    proc.kill_tree()
