"""Shared parts of bench/produce.py and bench/consume.py.

- `LocalBroker`: a real broker (`python -m rocketpy.cli.broker -c props`) on loopback in a temp
  dir next to the repository (same disk as the store bench), as tests/support/cluster.py starts
  one; stopped with SIGTERM, the tree killed if it lingers.
- `CpuMeter`: CPU seconds of the broker's process tree between two points, per role (writer,
  dispatcher, control, worker, supervisor) from the supervisor's "spawned NAME ... pid P" lines.
- `Percentiles`: latency samples and their summary.
- `machine_header`: nproc, CPU, Python, disk of the store dir, load average.
- connection helpers over rocketpy.client.remoting (a few connections so SO_REUSEPORT spreads
  them over the workers).

Never a test: run by hand, bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from rocketpy.client.remoting import RemotingConnection, connect, next_opaque, parse_address  # noqa: E402
from rocketpy.errors import RemotingConnectError, RemotingTimeoutError  # noqa: E402
from rocketpy.protocol.codes import RequestCode, ResponseCode  # noqa: E402
from rocketpy.protocol.remoting import RemotingCommand, encode_frame  # noqa: E402

MIB = 1 << 20
STARTUP_TIMEOUT_S = 60.0


# --- machine ----------------------------------------------------------------------------------


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def git_state() -> str:
    """HEAD and how many tracked files differ from it (the broker under test is the work tree)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--short", "--untracked-files=no", "--", "rocketpy"],
                               cwd=REPO, capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"HEAD {head}, {len(dirty)} modified files under rocketpy/ in the work tree"


def machine_header(store_dir: Path | None) -> dict[str, str]:
    from store_bench import machine_info  # the store bench's description of the machine

    info = machine_info(store_dir if store_dir is not None else REPO)
    info["git"] = git_state()
    info["loadavg_at_start"] = loadavg()
    return info


# --- latency -----------------------------------------------------------------------------------


class Percentiles:
    """Latencies in seconds; summaries in milliseconds."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    def summary(self) -> dict[str, float]:
        s = sorted(self.samples)
        n = len(s)
        if not n:
            return {"n": 0, "avg": 0.0, "p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}

        def pct(q: float) -> float:
            return s[min(n - 1, int(q * n))] * 1e3

        return {"n": n, "avg": sum(s) / n * 1e3, "p50": pct(0.50), "p99": pct(0.99),
                "p999": pct(0.999), "max": s[-1] * 1e3}


# --- the broker ---------------------------------------------------------------------------------


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


class LocalBroker:
    """A broker of its own on loopback, store in a temp dir on the repository's disk."""

    def __init__(self, *, flush: str = "ASYNC", commitlog_file_size: int = 1024 * MIB,
                 workers: int = 0, base_dir: Path | None = None, extra: dict[str, str] | None = None,
                 keep: bool = False) -> None:
        base = base_dir if base_dir is not None else REPO.parent
        base.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="rocketpy-bench-broker-", dir=base))
        self.port = free_port()
        self.keep = keep
        self.props = {
            "brokerName": "bench-broker",
            "brokerClusterName": "BenchCluster",
            "namesrvAddr": "",
            "listenHost": "127.0.0.1",
            "brokerIP1": "127.0.0.1",
            "listenPort": str(self.port),
            "storePathRootDir": str(self.root / "store"),
            "flushDiskType": "SYNC_FLUSH" if flush.upper().startswith("SYNC") else "ASYNC_FLUSH",
            "mappedFileSizeCommitLog": str(commitlog_file_size),
            "workerCount": str(workers),
            "autoCreateTopicEnable": "true",
            **(extra or {}),
        }
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "broker.log"
        self._final_log: str | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    def log(self) -> str:
        if self._final_log is not None:
            return self._final_log
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> LocalBroker:
        path = self.root / "broker.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.props.items()))
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - owned by the Popen
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen([sys.executable, "-m", "rocketpy.cli.broker", "-c", str(path)],
                                      cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True)
        log_file.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while "broker ready" not in self.log():
            if self.popen.poll() is not None:
                raise RuntimeError(f"the broker exited with {self.popen.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the broker was not ready within {STARTUP_TIMEOUT_S} s:\n"
                                   f"{self.log()[-3000:]}")
            time.sleep(0.05)
        if not port_open(self.port):
            raise RuntimeError(f"the broker says ready but does not listen on {self.port}")
        return self

    def wait_settled(self, timeout_s: float = 90.0) -> float:
        """Wait until the writer has finished warming (zero-filling) the next CommitLog file, as a
        broker that has been up a while has; returns the seconds waited."""
        d = self.store_dir / "commitlog"
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            try:
                names = os.listdir(d)
            except OSError:
                names = []
            if len(names) >= 2 and not any(n.endswith(".tmp") for n in names):
                break
            time.sleep(0.1)
        return time.monotonic() - t0

    def roles(self) -> dict[int, str]:
        return roles_from_log(self.log())

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(psutil.NoSuchProcess):
                    parent = psutil.Process(self.popen.pid)
                    for child in parent.children(recursive=True):
                        with contextlib.suppress(psutil.NoSuchProcess):
                            child.kill()
                    parent.kill()
                self.popen.wait(10)
        self._final_log = self.log()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        return self.popen.returncode

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_SPAWNED = re.compile(r"spawned (\w+) \(slot (\d+)\) pid (\d+)")


def roles_from_log(text: str) -> dict[int, str]:
    roles: dict[int, str] = {}
    for m in _SPAWNED.finditer(text):
        name, slot, pid = m.group(1), m.group(2), int(m.group(3))
        roles[pid] = f"{name}{slot}" if name == "worker" else name
    return roles


# --- CPU of the broker's process tree ------------------------------------------------------------


@dataclasses.dataclass
class CpuSnapshot:
    at: float
    per_pid: dict[int, float]            # user + system seconds, children not yet reaped included
    user: float = 0.0                    # user seconds, all pids
    system: float = 0.0                  # system (kernel) seconds, all pids
    ctx_switches: int = 0                # voluntary + involuntary, all pids


class CpuMeter:
    """CPU seconds used by a process and its descendants between `start()` and `stop()`.

    A child that exits in between (a restart) loses its last interval; the bench reports the
    pids it saw so that shows."""

    def __init__(self, pid: int, roles: dict[int, str] | None = None) -> None:
        self.pid = pid
        self.roles = roles or {}
        self.before: CpuSnapshot | None = None
        self.after: CpuSnapshot | None = None

    def _snap(self) -> CpuSnapshot:
        per: dict[int, float] = {}
        user = system = 0.0
        ctx = 0
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                per[p.pid] = t.user + t.system
                user += t.user
                system += t.system
                c = p.num_ctx_switches()
                ctx += c.voluntary + c.involuntary
        return CpuSnapshot(time.monotonic(), per, user, system, ctx)

    def start(self) -> None:
        self.before = self._snap()

    def stop(self) -> None:
        self.after = self._snap()

    def per_role(self) -> dict[str, float]:
        assert self.before is not None and self.after is not None
        out: dict[str, float] = {}
        for pid, t in self.after.per_pid.items():
            role = self.roles.get(pid, "supervisor" if pid == self.pid else f"pid{pid}")
            out[role] = out.get(role, 0.0) + t - self.before.per_pid.get(pid, 0.0)
        return dict(sorted(out.items()))

    def total(self) -> float:
        return sum(self.per_role().values())

    def wall(self) -> float:
        assert self.before is not None and self.after is not None
        return self.after.at - self.before.at


class SelfCpu:
    """CPU seconds of this (client) process."""

    def __init__(self) -> None:
        self.t0 = self._now()

    @staticmethod
    def _now() -> float:
        t = os.times()
        return t.user + t.system

    def used(self) -> float:
        return self._now() - self.t0


def cpu_lines(meter: CpuMeter, messages: int, client_cpu_s: float | None) -> tuple[list[str], dict[str, object]]:
    roles = meter.per_role()
    total = sum(roles.values())
    wall = meter.wall()
    per100k = total / messages * 100_000 if messages else 0.0
    lines = [f"broker CPU: {total:.2f} s over {wall:.1f} s wall ({total / wall * 100:.0f}% of one core)"
             f" = {per100k:.2f} CPU s per 100k messages ({per100k * 10:.1f} us/msg)",
             "  by role: " + ", ".join(f"{r} {s:.2f} s" for r, s in roles.items()),
             "  by role, us/msg: " + ", ".join(f"{r} {s / max(1, messages) * 1e6:.1f}"
                                               for r, s in roles.items() if s >= 0.005),
             f"  user {meter.after.user - meter.before.user:.2f} s, system {meter.after.system - meter.before.system:.2f} s;"  # type: ignore[union-attr]
             f" context switches {meter.after.ctx_switches - meter.before.ctx_switches:,} "  # type: ignore[union-attr]
             f"({(meter.after.ctx_switches - meter.before.ctx_switches) / max(1, messages):.1f} per message)"]  # type: ignore[union-attr]
    data: dict[str, object] = {"broker_user_s": meter.after.user - meter.before.user,  # type: ignore[union-attr]
                               "broker_system_s": meter.after.system - meter.before.system,  # type: ignore[union-attr]
                               "broker_ctx_switches": meter.after.ctx_switches - meter.before.ctx_switches,  # type: ignore[union-attr]
                               "broker_cpu_s": total, "wall_s": wall, "broker_cpu_s_per_100k": per100k,
                               "broker_cpu_by_role_s": roles}
    if client_cpu_s is not None:
        c100k = client_cpu_s / messages * 100_000 if messages else 0.0
        lines.append(f"client CPU: {client_cpu_s:.2f} s = {c100k:.2f} CPU s per 100k messages "
                     f"({c100k * 10:.1f} us/msg)")
        data["client_cpu_s"] = client_cpu_s
        data["client_cpu_s_per_100k"] = c100k
    return lines, data


# --- connections -----------------------------------------------------------------------------


class CoalescingConnection(RemotingConnection):
    """rocketpy.client.remoting.RemotingConnection whose requests made in one event-loop turn go
    out in one transport.write (the broker's ClientConnection.flush does the same for
    responses). The stock `request` writes each frame at once: one send(2) per request, which
    profiling shows as the client's largest cost (27% of its samples, half its CPU) at 64 senders."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._out: list[bytes] = []
        self._flush_scheduled = False

    def _flush_out(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if out and self._transport is not None:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    async def request(self, cmd: RemotingCommand, timeout_ms: int) -> RemotingCommand:
        if not self.is_open:
            raise RemotingConnectError(self.close_reason or f"connection to {self.addr} is closed")
        cmd.opaque = next_opaque()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[RemotingCommand] = loop.create_future()
        self._pending[cmd.opaque] = fut
        self._out.append(encode_frame(cmd))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush_out)
        try:
            return await asyncio.wait_for(fut, timeout_ms / 1000)
        except TimeoutError:
            raise RemotingTimeoutError(
                f"no response from {self.addr} to request code {cmd.code} within {timeout_ms} ms") from None
        finally:
            self._pending.pop(cmd.opaque, None)


COALESCE = True      # set from the command line (--no-coalesce): the stock RemotingConnection


async def open_connections(addr: str, n: int) -> list[RemotingConnection]:
    conns = []
    for _ in range(n):
        if COALESCE:
            host, port = parse_address(addr)
            _, conn = await asyncio.get_running_loop().create_connection(
                lambda: CoalescingConnection(addr), host, port)
        else:
            conn = await connect(addr, timeout_ms=5000)
        tr = conn._transport  # noqa: SLF001 - TCP_NODELAY as RocketMQ's Netty client sets it
        if tr is not None:
            sock = tr.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(conn)
    return conns


def _worker_of_local_ports(broker_pid: int, port: int, roles: dict[int, str]) -> dict[int, str]:
    """client local port -> the broker child (role) holding the accepted end."""
    owner: dict[int, str] = {}
    try:
        procs = psutil.Process(broker_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return owner
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            for c in p.net_connections(kind="tcp"):
                if c.laddr and c.laddr.port == port and c.raddr:
                    owner[c.raddr.port] = roles.get(p.pid, f"pid{p.pid}")
    return owner


async def open_balanced(addr: str, n: int, broker_pid: int | None, roles: dict[int, str],
                        workers: int) -> list[RemotingConnection]:
    """`n` connections spread as evenly as SO_REUSEPORT allows over `workers` workers: open more,
    keep an even share per worker, close the rest (bounded tries). Without a pid, just `n`."""
    if broker_pid is None or workers <= 1:
        return await open_connections(addr, n)
    port = int(addr.rsplit(":", 1)[1])
    share = -(-n // workers)
    kept: dict[str, list[RemotingConnection]] = {}
    spare: list[RemotingConnection] = []
    for _ in range(8 * n):
        if sum(len(v) for v in kept.values()) >= n:
            break
        conn = (await open_connections(addr, 1))[0]
        await asyncio.sleep(0.01)
        sock = conn._transport.get_extra_info("sockname") if conn._transport else None  # noqa: SLF001
        owner = _worker_of_local_ports(broker_pid, port, roles).get(sock[1] if sock else -1, "?")
        if len(kept.setdefault(owner, [])) < share:
            kept[owner].append(conn)
        else:
            spare.append(conn)
    for c in spare:
        c.close()
    conns = [c for v in kept.values() for c in v]
    return conns[:n] if len(conns) >= n else conns + await open_connections(addr, n - len(conns))


def connection_spread(broker_pid: int, port: int, roles: dict[int, str]) -> str:
    """Which worker holds how many established client connections on `port`."""
    counts: dict[str, int] = {}
    try:
        procs = psutil.Process(broker_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return "?"
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            n = sum(1 for c in p.net_connections(kind="tcp")
                    if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
            if n:
                counts[roles.get(p.pid, f"pid{p.pid}")] = n
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none seen"


async def create_topic(conn: RemotingConnection, topic: str, queues: int) -> None:
    cmd = RemotingCommand.request(RequestCode.UPDATE_AND_CREATE_TOPIC, {
        "topic": topic, "defaultTopic": "TBW102", "readQueueNums": str(queues),
        "writeQueueNums": str(queues), "perm": "6", "topicFilterType": "SINGLE_TAG"})
    resp = await conn.request(cmd, 10_000)
    if resp.code != ResponseCode.SUCCESS:
        raise RuntimeError(f"UPDATE_AND_CREATE_TOPIC {topic}: code {resp.code} {resp.remark}")


async def sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# --- results table ---------------------------------------------------------------------------


def _target(kind: str, args: dict[str, str]) -> tuple[str, str, float, bool]:
    """(label, metric key, target value, higher is better) for a bench run, by its arguments."""
    if kind == "consume":
        return "consume backlog >= 150,000 msg/s", "msgs_per_s", 150_000, True
    flush, batch, conc = args.get("flush"), int(args.get("batch", "1")), int(args.get("concurrency", "64"))
    if flush == "SYNC" and conc == 1:
        return "SYNC_FLUSH, 1 in flight: p50 <= 0.350 ms", "p50", 0.350, False
    if flush == "SYNC":
        return f"SYNC_FLUSH, {conc} senders >= 30,000 msg/s", "tps", 30_000, True
    if batch > 1:
        return f"ASYNC batches of {batch} >= 150,000 msg/s", "tps", 150_000, True
    return f"ASYNC 1 msg/request, {conc} senders >= 40,000 msg/s", "tps", 40_000, True


def results_table(paths: list[str]) -> str:
    """A markdown table of produce/consume --json files: the figures as the tools wrote them."""
    import json

    rows = ["| run | target | measured | verdict | RT p50 / p99 / p999 ms | broker CPU s /100k msgs "
            "(us/msg) | client us/msg | loadavg start -> end |",
            "|---|---|---|---|---|---|---|---|"]
    for path in paths:
        rep = json.loads(Path(path).read_text())
        res, args = rep["result"], rep["args"]
        kind = "consume" if "max_msgs" in args else "produce"
        label, key, target, higher = _target(kind, args)
        if kind == "consume":
            rate, rt = res["msgs_per_s"], res["pull_rt_ms"]
        else:
            rate, rt = res["tps"], res["rt_ms"]
        value = rt["p50"] if key == "p50" else rate
        ok = value >= target if higher else value <= target
        shown = f"p50 {value:.3f} ms" if key == "p50" else f"{value:,.0f} msg/s"
        if key == "p50":
            shown += f" ({rate:,.0f} msg/s)"
        cpu = res.get("broker_cpu_s_per_100k")
        cpu_s = f"{cpu:.2f} ({cpu * 10:.1f})" if cpu is not None else "-"
        client = res.get("client_cpu_s_per_100k")
        client_s = f"{client * 10:.1f}" if client is not None else "-"
        rows.append(f"| `{Path(path).stem}` | {label} | {shown} | {'MET' if ok else 'MISSED'} | "
                    f"{rt['p50']:.3f} / {rt['p99']:.3f} / {rt['p999']:.3f} | {cpu_s} | {client_s} | "
                    f"{res.get('loadavg_start', '?')} -> {res.get('loadavg_end', '?')} |")
    return "\n".join(rows)


def roles_table(paths: list[str]) -> str:
    """Broker CPU per message by role (us/msg), from produce/consume --json files."""
    import json

    reps = [(Path(p).stem, json.loads(Path(p).read_text())["result"]) for p in paths]
    roles = sorted({r for _, res in reps for r in res.get("broker_cpu_by_role_s", {})})
    roles = [r for r in roles if r not in ("control", "supervisor")] + ["control", "supervisor"]
    rows = ["| run | " + " | ".join(roles) + " | total | client |", "|---" * (len(roles) + 3) + "|"]
    for name, res in reps:
        n = max(1, int(res.get("messages", 0)))
        by = res.get("broker_cpu_by_role_s", {})
        cells = [f"{by.get(r, 0.0) / n * 1e6:.1f}" for r in roles]
        client = res.get("client_cpu_s", 0.0) / n * 1e6
        rows.append(f"| `{name}` | " + " | ".join(cells) + f" | {res.get('broker_cpu_s', 0.0) / n * 1e6:.1f} | "
                    f"{client:.1f} |")
    return "\n".join(rows)


def collapse_summary(path: str, top: int = 20, inclusive: tuple[str, ...] = ()) -> str:
    """Self time per leaf function of a py-spy `-f raw` (collapsed stacks) file, as
    `share  dir/file.py:function`; a dataclass __init__ (py-spy shows `<string>`) is named
    after its caller."""
    counts: dict[str, int] = {}
    incl = dict.fromkeys(inclusive, 0)
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, n_s = line.rstrip().rpartition(" ")
        if not stack or not n_s.isdigit():
            continue
        n = int(n_s)
        total += n
        for name in incl:
            if name in stack:
                incl[name] += n
        names = []
        for frame in stack.split(";"):
            fn, sep, loc = frame.partition(" (")
            if sep:
                file = "/".join(loc.rstrip(")").rsplit(":", 1)[0].split("/")[-2:])
                names.append(f"{file}:{fn}")
            else:
                names.append(frame)
        leaf = names[-1]
        if leaf.startswith("<string>") and len(names) > 1:
            leaf = f"{names[-2]} -> {leaf.rsplit(':', 1)[-1]}"
        counts[leaf] = counts.get(leaf, 0) + n
    out = [f"{path}: {total} samples, self time by function"]
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {n / total * 100:5.1f}%  {name}")
    for name, n in incl.items():
        out.append(f"  inclusive: {n / max(1, total) * 100:5.1f}% of samples under {name}")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "table":
        print(results_table(sys.argv[2:]))
    elif len(sys.argv) > 2 and sys.argv[1] == "roles":
        print(roles_table(sys.argv[2:]))
    elif len(sys.argv) > 2 and sys.argv[1] == "collapse":
        files = [a for a in sys.argv[2:] if not a.startswith("--incl=")]
        names = tuple(a.split("=", 1)[1] for a in sys.argv[2:] if a.startswith("--incl="))
        for f in files:
            print(collapse_summary(f, inclusive=names))
    else:
        print("usage: python bench/common.py table RESULT.json ...  (files from produce/consume --json)\n"
              "       python bench/common.py roles RESULT.json ...  (broker CPU us/msg by role)\n"
              "       python bench/common.py collapse PYSPY_RAW.txt ... [--incl=FUNCTION]  (py-spy -f raw)")
