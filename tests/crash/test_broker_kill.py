"""kill -9 of broker processes under a load of sends: no acknowledged message is lost.

Each case starts a real multi-process broker (tests/support/cluster.py), runs a few
sender threads — each on its own connection, spread over both workers — that send
messages of seeded sizes to a 4-queue topic and record every (body, queueId,
queueOffset) answered SUCCESS (failures, timeouts and FLUSH_DISK_TIMEOUT are retried
with a new body, never recorded), and after a seeded number of acknowledged sends
kills with SIGKILL:

- the writer, the dispatcher or a worker (the supervisor restarts it), or
- the whole broker: the supervisor and every child at once; the broker is then
  started again on the same store.

Once the broker serves again (fresh acks after the restart) the load stops and every
queue is pulled from offset 0 to its end: queue offsets are consecutive with no
duplicate, every acknowledged (queue, offset) holds the acknowledged body, and no
body is stored twice (every attempt sends a body of its own, so a duplicate could
only be the broker's). Then SIGTERM must drain to exit 0 and `rocketpy store verify`
must find the store clean.

The invariant under test (ARCHITECTURE.md): an acknowledged SEND_OK survives kill -9
of any process, under SYNC_FLUSH and under ASYNC_FLUSH alike.

The seed (kill point, message sizes, queues, which worker) is printed at the start
of each case: replay with ROCKETPY_SEED=<seed>.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.message import MessageRecord
from tests.support.broker_ops import pull, records, send
from tests.support.cluster import REPO, Cluster, cluster, wait_for
from tests.support.remoting_client import ConnectionClosed, RemotingTestClient

pytestmark = pytest.mark.slow

QUEUES = 4
SENDERS = 4
SEND_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0
ATTEMPTS_MAX = 4000               # bound on the whole load of one case (all senders)
ATTEMPTS_RESERVE = 300            # kept for after the victim is back (senders hold until then)
ACKS_AFTER_RESTART = 100          # the broker "serves again" once this many more sends were acked
KILL_AFTER_ACKS = (100, 700)      # seeded range of the kill point
SERVE_AGAIN_TIMEOUT_S = 30.0
CATCH_UP_TIMEOUT_S = 20.0
PULL_BATCH = 32
BROKER_PROPS = {
    # Small files so that CommitLog and ConsumeQueue files roll during a case.
    "mappedFileSizeCommitLog": str(1024 * 1024),
    "maxMessageSize": str(256 * 1024),
    "mappedFileSizeConsumeQueue": str(20 * 200),
    "syncFlushTimeout": "5000",
}


# --- processes -----------------------------------------------------------------------------


def live_children(c: Cluster, name: str) -> list[psutil.Process]:
    """Every live child playing `name`, from the supervisor's "spawned <name> ... pid N" lines."""
    assert c.broker is not None
    alive = {p.pid: p for p in c.broker.children()}
    found: dict[int, psutil.Process] = {}
    for line in c.broker.log().splitlines():
        if f"spawned {name} " in line:
            pid = int(line.rsplit("pid", 1)[1].split()[0])
            if pid in alive:
                found[pid] = alive[pid]
    return list(found.values())


def worker_holding(workers: list[psutil.Process], broker_port: int, client_port: int) -> int | None:
    """The pid of the worker that accepted the client connection from `client_port`."""
    for w in workers:
        with contextlib.suppress(psutil.Error):
            for conn in w.net_connections(kind="tcp"):
                if conn.laddr and conn.laddr.port == broker_port and conn.raddr and conn.raddr.port == client_port:
                    return w.pid
    return None


def connect(port: int) -> RemotingTestClient:
    return RemotingTestClient("127.0.0.1", port, timeout_s=CONNECT_TIMEOUT_S)


def balanced_connections(c: Cluster, count: int) -> tuple[list[RemotingTestClient], dict[int, int]]:
    """`count` connections, alternating between the workers (SO_REUSEPORT hashes the 4-tuple,
    so reconnect until a connection lands where it should; bounded)."""
    workers = live_children(c, "worker")
    assert len(workers) >= 2, f"want two workers, have {workers}"
    clients: list[RemotingTestClient] = []
    per_worker = {w.pid: 0 for w in workers}
    for i in range(count):
        want = workers[i % len(workers)].pid
        for _attempt in range(40):
            client = connect(c.broker_port)
            port = client.sock.getsockname()[1]
            owner = wait_for(lambda port=port: worker_holding(workers, c.broker_port, port), 5,
                             "the connection to be accepted by a worker")
            if owner == want:
                break
            client.close()
        else:
            client = connect(c.broker_port)
            port = client.sock.getsockname()[1]
            owner = wait_for(lambda port=port: worker_holding(workers, c.broker_port, port), 5,
                             "the connection to be accepted by a worker")
        per_worker[owner] += 1
        clients.append(client)
    assert all(per_worker.values()), f"every worker should hold a sender connection: {per_worker}"
    return clients, per_worker


def kill_whole_broker(c: Cluster) -> list[int]:
    """SIGKILL the supervisor and every child at once (its process group, then every pid left)."""
    assert c.broker is not None
    procs = [psutil.Process(c.broker.pid), *psutil.Process(c.broker.pid).children(recursive=True)]
    pids = [p.pid for p in procs]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(c.broker.pid, signal.SIGKILL)     # the broker runs in a session of its own
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    c.broker.popen.wait(10)
    _, alive = psutil.wait_procs(procs, timeout=10)
    assert not alive, f"still alive after SIGKILL: {alive}"
    return pids


# --- the load ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Ack:
    body: bytes
    queue_id: int
    queue_offset: int


class Load:
    """Sender threads; each records what was acknowledged SUCCESS, retries everything else."""

    def __init__(self, port: int, topic: str, seed: int, size_max: int, clients: list[RemotingTestClient]) -> None:
        self.port = port
        self.topic = topic
        self.seed = seed
        self.size_max = size_max
        self.stop_event = threading.Event()
        self.recovered = threading.Event()     # set once the victim is back: the reserve is open
        self.lock = threading.Lock()
        self.acks: list[Ack] = []
        self.attempts = 0
        self.codes: dict[str, int] = {}
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i, client), name=f"sender-{i}", daemon=True)
                        for i, client in enumerate(clients)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def acked(self) -> int:
        with self.lock:
            return len(self.acks)

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(SEND_TIMEOUT_S + CONNECT_TIMEOUT_S + 5)
        stuck = [t.name for t in self.threads if t.is_alive()]
        assert not stuck, f"sender threads did not stop: {stuck}"

    def _count(self, what: str) -> None:
        with self.lock:
            self.codes[what] = self.codes.get(what, 0) + 1

    def _run(self, index: int, client: RemotingTestClient | None) -> None:
        rng = random.Random(f"{self.seed}:{index}")
        seq = 0
        try:
            while not self.stop_event.is_set():
                if client is None:
                    try:
                        client = connect(self.port)
                    except OSError:
                        self._count("connect failed")      # the broker is restarting: back off
                        time.sleep(0.05)
                        continue
                with self.lock:
                    if self.attempts >= ATTEMPTS_MAX:
                        return
                    hold = self.attempts >= ATTEMPTS_MAX - ATTEMPTS_RESERVE and not self.recovered.is_set()
                    if not hold:
                        self.attempts += 1
                if hold:
                    time.sleep(0.01)
                    continue
                seq += 1
                head = b"s%d-%d|" % (index, seq)
                size = rng.randrange(0, self.size_max)
                body = head + rng.randbytes(max(0, size - len(head)))
                queue_id = rng.randrange(QUEUES)
                try:
                    reply = send(client, self.topic, body, queue_id=queue_id, timeout_s=SEND_TIMEOUT_S)
                except (OSError, TimeoutError, ConnectionClosed) as exc:
                    self._count(type(exc).__name__)
                    client.close()
                    client = None
                    continue
                if reply.code == ResponseCode.SUCCESS:
                    qid = int(reply.ext_str("queueId"))
                    ack = Ack(body, qid, int(reply.ext_str("queueOffset")))
                    with self.lock:
                        self.acks.append(ack)
                        if qid != queue_id:
                            self.errors.append(f"sent to queue {queue_id}, acked for queue {qid}")
                    continue
                self._count(f"code {reply.code}")
                if reply.code in (ResponseCode.SYSTEM_BUSY, ResponseCode.SERVICE_NOT_AVAILABLE):
                    time.sleep(0.005)
        except Exception as exc:  # noqa: BLE001 - reported by the test, never swallowed
            with self.lock:
                self.errors.append(f"sender {index}: {type(exc).__name__}: {exc}")
        finally:
            if client is not None:
                client.close()


# --- reading the queues back -----------------------------------------------------------------


def read_queue(client: RemotingTestClient, topic: str, queue_id: int) -> tuple[list[MessageRecord], list[str]]:
    """Every message of one queue from offset 0 to its end, and what is wrong with the offsets."""
    out: list[MessageRecord] = []
    problems: list[str] = []
    offset = 0
    for _ in range(ATTEMPTS_MAX):     # each turn moves at least one offset, or stops
        reply = pull(client, topic, queue_id, offset, max_msgs=PULL_BATCH, timeout_s=10)
        if reply.code == ResponseCode.PULL_NOT_FOUND:
            return out, problems
        if reply.code == ResponseCode.SUCCESS:
            got = records(reply)
            for rec in got:
                if rec.queue_offset != offset:
                    problems.append(f"queue {queue_id}: expected queue offset {offset}, found {rec.queue_offset}")
                out.append(rec)
                offset = rec.queue_offset + 1
            nxt = int(reply.ext_str("nextBeginOffset"))
            if nxt != offset:
                problems.append(f"queue {queue_id}: nextBeginOffset {nxt} after reading up to {offset}")
                offset = max(offset, nxt)
            if not got:
                problems.append(f"queue {queue_id}: FOUND with no message at {offset}")
                return out, problems
            continue
        if reply.code == ResponseCode.PULL_RETRY_IMMEDIATELY:
            nxt = int(reply.ext_str("nextBeginOffset"))
            problems.append(f"queue {queue_id}: offsets {offset}..{nxt - 1} hold no matching message")
            if nxt <= offset:
                return out, problems
            offset = nxt
            continue
        problems.append(f"queue {queue_id}: pull at {offset} answered {reply.code} {reply.remark!r}")
        return out, problems
    problems.append(f"queue {queue_id}: more than {ATTEMPTS_MAX} pulls")
    return out, problems


def check_acks(c: Cluster, topic: str, acks: list[Ack]) -> tuple[list[str], dict[int, int]]:
    """Everything wrong with the stored topic against the acknowledgements; the queue lengths."""
    with connect(c.broker_port) as client:
        client.timeout_s = 10
        stored: dict[int, dict[int, bytes]] = {}
        problems: list[str] = []
        for q in range(QUEUES):
            recs, issues = read_queue(client, topic, q)
            problems += issues
            stored[q] = {}
            for rec in recs:
                if rec.queue_offset in stored[q]:
                    problems.append(f"queue {q}: queue offset {rec.queue_offset} returned twice")
                stored[q][rec.queue_offset] = rec.body
    lengths = {q: len(m) for q, m in stored.items()}
    missing = []
    wrong = []
    for ack in acks:
        body = stored.get(ack.queue_id, {}).get(ack.queue_offset)
        if body is None:
            missing.append((ack.queue_id, ack.queue_offset, ack.body[:16]))
        elif body != ack.body:
            wrong.append((ack.queue_id, ack.queue_offset, ack.body[:16], body[:16]))
    if missing:
        problems.append(f"{len(missing)} acknowledged messages missing (queue, offset, body head): {missing[:20]}")
    if wrong:
        problems.append(f"{len(wrong)} acknowledged offsets hold another body (queue, offset, acked, stored): "
                        f"{wrong[:20]}")
    seen: dict[bytes, tuple[int, int]] = {}
    for q, msgs in stored.items():
        for off, body in msgs.items():
            key = body.split(b"|", 1)[0]
            if key in seen:
                problems.append(f"body {key!r} stored twice: at {seen[key]} and {(q, off)}")
            seen[key] = (q, off)
    return problems, lengths


def store_verify(store_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rocketpy.cli.app", "store", "verify", str(store_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def stop_broker(c: Cluster, timeout_s: float = 30.0) -> str | None:
    """SIGTERM and wait for the drain; None when the broker exited 0, else what went wrong
    (the children still alive at the bound are named, then everything is killed)."""
    assert c.broker is not None
    popen = c.broker.popen
    popen.send_signal(signal.SIGTERM)
    try:
        code = popen.wait(timeout_s)
    except subprocess.TimeoutExpired:
        names = {}
        for line in c.broker.log().splitlines():
            if "spawned " in line and " pid " in line:
                names[int(line.rsplit("pid", 1)[1].split()[0])] = line.split("spawned ", 1)[1].split(" pid")[0]
        stuck = [f"{names.get(p.pid, '?')} pid {p.pid}" for p in c.broker.children()]
        c.broker.kill_tree()
        return f"the broker did not exit within {timeout_s:.0f} s of SIGTERM; still running: {stuck}"
    return None if code == 0 else f"the broker exited {code} after SIGTERM"


def log_excerpt(c: Cluster, before: str = "", lines: int = 60) -> str:
    text = c.broker.log() if c.broker is not None else ""
    interesting = [ln for ln in (before + text).splitlines()
                   if any(w in ln for w in ("WARNING", "ERROR", "recover", "spawned", "exited", "up:", "Trace"))]
    return "\n".join(interesting[-lines:])


# --- the cases -------------------------------------------------------------------------------


CASES = [
    ("SYNC_FLUSH", "writer"),
    ("SYNC_FLUSH", "dispatcher"),
    ("SYNC_FLUSH", "worker"),
    ("SYNC_FLUSH", "control"),
    ("SYNC_FLUSH", "broker"),
    ("ASYNC_FLUSH", "writer"),
    ("ASYNC_FLUSH", "dispatcher"),
    ("ASYNC_FLUSH", "worker"),
    ("ASYNC_FLUSH", "broker"),
]


@pytest.mark.parametrize(("flush", "victim"), CASES, ids=[f"{f}-{v}" for f, v in CASES])
def test_acked_sends_survive_kill_9(tmp_path, flush, victim):
    seed = int(os.environ.get("ROCKETPY_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"seed={seed}")
    print(f"case {flush} kill -9 {victim} (replay: ROCKETPY_SEED={seed})")
    rng = random.Random(f"{seed}:{flush}:{victim}")
    kill_after = rng.randrange(*KILL_AFTER_ACKS)
    size_max = rng.choice([64, 1024, 4096, 16384])
    topic = f"Crash{victim.capitalize()}{flush.split('_')[0].capitalize()}"
    where = f"seed={seed} case={flush}/{victim} kill_after={kill_after} size_max={size_max}"
    print(where)
    started = time.monotonic()
    with cluster(tmp_path, namesrv=False, flushDiskType=flush, **BROKER_PROPS) as c:
        # The topic (4 queues) exists before the load: the first send auto-creates it.
        with connect(c.broker_port) as client:
            client.timeout_s = 10
            first = send(client, topic, b"s-1-0|first", queue_id=0)
            assert first.code == ResponseCode.SUCCESS, first.remark
        acks_before = [Ack(b"s-1-0|first", 0, int(first.ext_str("queueOffset")))]
        clients, per_worker = balanced_connections(c, SENDERS)
        print(f"sender connections per worker pid: {per_worker}")
        load = Load(c.broker_port, topic, seed, size_max, clients)
        load.start()
        old_log = ""
        try:
            wait_for(lambda: load.acked() >= kill_after or load.errors, 30, f"{kill_after} acked sends")
            assert not load.errors, load.errors
            if victim == "broker":
                acked_at_kill = load.acked()
                pids = kill_whole_broker(c)
                print(f"killed the whole broker {pids} after {acked_at_kill} acks")
                old_log = c.broker.log()
                shutil.move(c.root / "broker.log", c.root / "broker-killed.log")
                c.start_broker()
                wait_for(lambda: "broker ready" in c.broker.log(), 30, "the restarted broker to be ready")
            else:
                if victim == "worker":
                    # A worker that holds sender connections, picked by the seed.
                    target = sorted(p for p, n in per_worker.items() if n)[rng.randrange(2)]
                    proc = psutil.Process(target)
                else:
                    proc = c.broker_child(victim)
                acked_at_kill = load.acked()
                os.kill(proc.pid, signal.SIGKILL)
                print(f"killed the {victim} pid {proc.pid} after {acked_at_kill} acks")

                expected = 2 if victim == "worker" else 1

                def respawned() -> bool:
                    live = {p.pid for p in live_children(c, victim)}
                    return proc.pid not in live and len(live) >= expected
                wait_for(respawned, SERVE_AGAIN_TIMEOUT_S, f"the supervisor to restart the {victim}")
            serving_from = load.acked()
            load.recovered.set()
            wait_for(lambda: load.acked() >= serving_from + ACKS_AFTER_RESTART or load.errors
                     or load.attempts >= ATTEMPTS_MAX, SERVE_AGAIN_TIMEOUT_S,
                     f"{ACKS_AFTER_RESTART} more acked sends after the {victim} came back")
        finally:
            load.stop()
        assert not load.errors, load.errors
        assert load.acked() >= serving_from + ACKS_AFTER_RESTART, \
            f"{where}: the broker did not serve again: {load.acked()} acks, attempts {load.attempts}, {load.codes}"
        acks = acks_before + load.acks
        print(f"{len(acks)} acked of {load.attempts} attempts; other outcomes {load.codes}")

        # Every acked offset must become readable (the dispatcher catches up) ...
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while True:
            problems, lengths = check_acks(c, topic, acks)
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not problems, f"{where}\n" + "\n".join(problems[:30]) + f"\nqueue lengths {lengths}\n" \
            f"broker log:\n{log_excerpt(c, old_log)}"
        print(f"queue lengths {lengths}")

        # ... and the broker must still drain cleanly and leave a store that verifies.
        stopped = stop_broker(c)
        assert stopped is None, f"{where}: {stopped}\n{log_excerpt(c, old_log)}"
    verify = store_verify(c.store_dir)
    assert verify.returncode == 0, f"{where}: store verify exit {verify.returncode}\n{verify.stdout}\n{verify.stderr}"
    print(f"case took {time.monotonic() - started:.1f} s")
