"""The unmodified C++ RocketMQ client (PyPI rocketmq==0.4.4) against the real rocketpy broker.

One NameServer + multi-process broker (ASYNC_FLUSH, the default) serves the whole module; the
last test stops it with SIGTERM (exit 0) and runs `rocketpy store verify` on its store. One more
test runs its own SYNC_FLUSH broker.

Covered: send_sync / send_async / send_oneway / send_orderly (queue selector) / send_batch, with
tags, keys, user properties (UTF-8) and a compressed body, checked in the store; push consumers in
CLUSTERING mode (two processes of one group split the queues, every message consumed; a TagA
subscription started after the sends gets only TagA, from offset 0), in BROADCASTING mode, and
orderly (LOCK_BATCH_MQ); PullConsumer.pull; committed offsets and unregistration on shutdown.
Delayed messages and a failing listener (retry, DLQ) are in test_cpp_delay_retry.py.

The client runs in child processes of the compat venv's python (tests/compat/cpp_scenarios.py,
JSON in argv, JSON lines out). Every child has its own HOME, so the C++ logs
(~/logs/rocketmq-cpp/) stay apart and are shown on failure; every child is bounded by a deadline
and a watchdog of its own, and killed in teardown if it is still there. Waits poll conditions.

What the client needs from the broker, and its quirks, are in
shared/reference/real-clients.md (`rocketmq==0.4.4`).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.message import MessageRecord
from tests.support.broker_ops import pull, records, send
from tests.support.cluster import REPO, Cluster, cluster, wait_for
from tests.support.remoting_client import RemotingTestClient

SCENARIOS = Path(__file__).resolve().parent / "cpp_scenarios.py"
CHILD_DEADLINE_S = 45        # a scenario's own deadline; its watchdog adds 15 s
CHILD_KILL_S = 75            # the test's bound on a child (after which it is killed)
DELIVERY_WAIT_S = 45         # generous: other engineers run crash tests and benchmarks here
QUEUES = 4
UNIQ_KEY_RE = re.compile(r"^[0-9A-F]{32}$")
SEND_OK = 0
PROP_NAMES = ["idx", "scenario", "note"]
BIG_BODY_CHARS = 20_000      # the client zlib-compresses bodies over 4 KiB (sysFlag bit 0)
SYSFLAG_COMPRESSED = 0x1


# --- client processes -----------------------------------------------------------------------

class Child:
    """One compat-venv process running a scenario; its stdout is read line by line as JSON."""

    def __init__(self, python: Path, scenario: str, args: dict[str, Any], home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.name = f"{scenario}:{home.name}"
        self.home = home
        env = dict(os.environ, HOME=str(home), PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(
            [str(python), str(SCENARIOS), scenario, json.dumps(args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=home, start_new_session=True,
        )
        self.events: list[dict[str, Any]] = []
        self.stderr = b""
        self._lock = threading.Lock()
        self._out = threading.Thread(target=self._read_stdout, daemon=True)
        self._err = threading.Thread(target=self._read_stderr, daemon=True)
        self._out.start()
        self._err.start()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line.decode(errors="replace")}
            with self._lock:
                self.events.append(event)

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        self.stderr = self.popen.stderr.read()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def has(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.snapshot())

    def messages(self) -> list[dict[str, Any]]:
        return [e for e in self.snapshot() if e.get("event") == "msg"]

    def stop(self) -> None:
        """Ask a consumer to shut down (it persists its offsets and unregisters)."""
        if self.popen.poll() is None and self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.write(b"stop\n")
                self.popen.stdin.flush()

    def wait(self, timeout_s: float = CHILD_KILL_S) -> int:
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not finish within {timeout_s} s\n{self.diagnostics()}") from None
        self._out.join(10)
        self._err.join(10)
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)

    def result(self) -> dict[str, Any]:
        """The last JSON line of a finished produce/pull scenario; fails loudly otherwise."""
        rc = self.wait()
        events = self.snapshot()
        if rc != 0 or not events:
            raise AssertionError(f"{self.name} exited {rc}\n{self.diagnostics()}")
        return events[-1]

    def diagnostics(self) -> str:
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.home.rglob("*rocketmq-cpp.log*")) if p.is_file())
        tail = [e for e in self.snapshot() if e.get("event") != "msg"][-5:]
        return (f"[{self.name}] rc={self.popen.poll()} events(non-msg)={tail}\n"
                f"stderr: {self.stderr.decode(errors='replace')[-2000:]}\nclient log tail:\n{logs}")


class Clients:
    """Starts scenario children for one test and kills whatever is left at teardown."""

    def __init__(self, python: Path, root: Path, c: Cluster) -> None:
        self.python = python
        self.root = root
        self.cluster = c
        self.children: list[Child] = []
        self._n = 0

    def start(self, scenario: str, **args: Any) -> Child:
        self._n += 1
        args.setdefault("namesrv", self.cluster.namesrv_addr)
        args.setdefault("deadline_s", CHILD_DEADLINE_S)
        child = Child(self.python, scenario, args, self.root / f"home{self._n}-{scenario}")
        self.children.append(child)
        return child

    def produce(self, group: str, sends: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = self.start("produce", group=group, sends=sends).result()
        assert out.get("async_missing") == 0, f"async callbacks missing: {out}"
        return out["results"]

    def consumer(self, group: str, topic: str, **args: Any) -> Child:
        return self.start("consume", group=group, topic=topic, props=PROP_NAMES, **args)

    def diagnostics(self) -> str:
        broker = self.cluster.broker.log()[-4000:] if self.cluster.broker else ""
        return "\n".join(c.diagnostics() for c in self.children) + f"\nbroker log tail:\n{broker}"

    def close(self) -> None:
        for child in self.children:
            child.stop()
        deadline = time.monotonic() + 15
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(max(0.1, deadline - time.monotonic()))
            child.kill()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("cpp-broker")) as c:
        yield c


# --- broker-side helpers (rocketpy's own test client, to check what the C++ client did) -----

def broker_client(c: Cluster) -> RemotingTestClient:
    return RemotingTestClient("127.0.0.1", c.broker_port, timeout_s=10)


def create_topic(c: Cluster, topic: str, queues: int = QUEUES) -> None:
    """Create the topic and wait until the NameServer routes it (consumers need a route)."""
    with broker_client(c) as b:
        r = b.request(RequestCode.UPDATE_AND_CREATE_TOPIC, {
            "topic": topic, "defaultTopic": "TBW102", "readQueueNums": queues, "writeQueueNums": queues,
            "perm": 6, "topicFilterType": "SINGLE_TAG"})
        assert r.code == ResponseCode.SUCCESS, r.remark
    with RemotingTestClient("127.0.0.1", c.namesrv_port, timeout_s=10) as ns:
        wait_for(lambda: ns.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic}).code
                 == ResponseCode.SUCCESS, 20, f"{topic} to be routed by the NameServer")


def stored(c: Cluster, topic: str, queues: int = QUEUES) -> dict[int, list[MessageRecord]]:
    """Every message of every queue of `topic`, in queue order (CRC checked by the decoder)."""
    out: dict[int, list[MessageRecord]] = {}
    with broker_client(c) as b:
        for q in range(queues):
            msgs: list[MessageRecord] = []
            while True:
                r = pull(b, topic, q, len(msgs), max_msgs=32)
                got = records(r) if r.code == ResponseCode.SUCCESS else []
                if not got:
                    break
                msgs.extend(got)
            out[q] = msgs
    return out


def consumer_ids(c: Cluster, group: str) -> list[str]:
    with broker_client(c) as b:
        r = b.request(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": group})
    if r.code != ResponseCode.SUCCESS:
        return []
    return list(orjson.loads(r.body).get("consumerIdList", []))


def committed_offsets(c: Cluster, group: str, topic: str) -> list[int | None]:
    out: list[int | None] = []
    with broker_client(c) as b:
        for q in range(QUEUES):
            r = b.request(RequestCode.QUERY_CONSUMER_OFFSET, {"consumerGroup": group, "topic": topic, "queueId": q})
            out.append(int(r.ext_str("offset") or "-1") if r.code == ResponseCode.SUCCESS else None)
    return out


def max_offsets(c: Cluster, topic: str) -> list[int]:
    with broker_client(c) as b:
        return [int(b.request(RequestCode.GET_MAX_OFFSET, {"topic": topic, "queueId": q}).ext_str("offset") or "-1")
                for q in range(QUEUES)]


def message_specs(scenario: str, n: int, *, tags: tuple[str, ...] = ("TagA", "TagB")) -> list[dict[str, Any]]:
    return [{"topic": "", "body": f"{scenario}-{i}", "tags": tags[i % len(tags)], "keys": f"{scenario}-key-{i} k{i}",
             "props": {"idx": str(i), "scenario": scenario, "note": f"ünïcödé ✓ {i}"}} for i in range(n)]


def big_spec(scenario: str) -> dict[str, Any]:
    """A body the client compresses; its text is unique, so it still names the message."""
    filler = "".join(f"{scenario}:{i:05d};" for i in range(BIG_BODY_CHARS // (len(scenario) + 7)))
    return {"topic": "", "body": f"{scenario}-big-{filler}", "tags": "TagA", "keys": f"{scenario}-big",
            "props": {"idx": "big", "scenario": scenario, "note": "compressed"}}


def plain_body(m: MessageRecord) -> str:
    return (zlib.decompress(m.body) if m.sys_flag & SYSFLAG_COMPRESSED else m.body).decode()


def check_intact(got: dict[str, Any], spec: dict[str, Any], msg_id: str | None) -> None:
    """A consumed message carries what was sent: tags, keys, user properties, UNIQ_KEY."""
    assert got["tags"] == spec["tags"], (got, spec)
    assert got["keys"] == spec["keys"], (got, spec)
    for k, v in spec["props"].items():
        assert got["props"].get(k) == v, (got, spec)
    if msg_id:
        assert got["props"].get("UNIQ_KEY") == msg_id, (got, msg_id)


def stop_and_verify(c: Cluster) -> None:
    assert c.broker is not None
    rc = c.broker.stop(60)
    assert rc == 0, f"broker exited {rc} on SIGTERM\n{c.broker.log()[-4000:]}"
    verify = subprocess.run([sys.executable, "-m", "rocketpy.cli.app", "store", "verify", str(c.store_dir)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, f"store verify exited {verify.returncode}:\n{verify.stdout}\n{verify.stderr}"


# --- 1. sends -------------------------------------------------------------------------------

def test_every_send_mode(clients: Clients, running: Cluster) -> None:
    """sync (tags, keys, properties), async with callbacks, oneway, orderly with a queue selector
    and batch, to a topic the client auto-creates through TBW102; checked in the store."""
    topic = "CppSendTopic"
    sync = [{**s, "mode": "sync", "topic": topic} for s in [*message_specs("sync", 8), big_spec("sync")]]
    asyn = [{**s, "mode": "async", "topic": topic} for s in message_specs("async", 8)]
    oneway = [{**s, "mode": "oneway", "topic": topic} for s in message_specs("oneway", 4)]
    orderly = [{**s, "mode": "orderly", "topic": topic, "arg": i % 3, "body": f"orderly-{i % 3}-{i // 3}"}
               for i, s in enumerate(message_specs("orderly", 12))]
    batch: list[dict[str, Any]] = [{"mode": "batch", "topic": topic, "msgs": message_specs("batch", 5)}]
    sends = sync + asyn + oneway + orderly + batch
    results = clients.produce("cpp_send_pg", sends)

    assert [r["i"] for r in results] == list(range(len(sends)))
    errors = [r for r in results if "error" in r]
    assert not errors, f"{errors}\n{clients.diagnostics()}"
    for r in results:
        if r["mode"] == "oneway":
            continue
        assert r["status"] == SEND_OK, r
        if r["mode"] == "batch":
            # the client's batch SendResult carries no id (SendResult.msgId is the batch's own
            # UNIQ_KEY, which a batch does not have); the ids are checked in the store below
            assert r["msg_id"] == "", r
        else:
            assert UNIQ_KEY_RE.match(r["msg_id"]), r
    ids = {sends[r["i"]]["body"]: r for r in results if r.get("msg_id")}

    # every message is in the store exactly once, intact; oneway ones arrive without an answer
    specs = {s["body"]: s for s in sync + asyn + oneway + orderly + batch[0]["msgs"]}

    def all_stored() -> dict[int, list[MessageRecord]] | None:
        queues = stored(running, topic)
        return queues if sum(len(v) for v in queues.values()) >= len(specs) else None
    queues = wait_for(all_stored, DELIVERY_WAIT_S, f"{len(specs)} messages stored in {topic}", interval_s=0.2)
    where: dict[str, tuple[int, MessageRecord]] = {}
    for q, msgs in queues.items():
        for offset, m in enumerate(msgs):
            body = plain_body(m)
            assert body not in where, f"{body[:80]} stored twice"
            where[body] = (q, m)
            assert m.queue_offset == offset
    assert set(where) == set(specs)
    for body, (_q, m) in where.items():
        spec, props = specs[body], m.property_map()
        assert props.get("TAGS") == spec["tags"] and props.get("KEYS") == spec["keys"], (body, props)
        for k, v in spec["props"].items():
            assert props.get(k) == v, (body, props)
        assert UNIQ_KEY_RE.match(props.get("UNIQ_KEY", "")), (body, props)
        if body in ids:
            assert props["UNIQ_KEY"] == ids[body]["msg_id"], (body, props, ids[body])
            assert m.queue_offset == ids[body]["offset"], (body, m.queue_offset, ids[body])
    big = where[sync[-1]["body"]][1]
    assert big.sys_flag & SYSFLAG_COMPRESSED and len(big.body) < BIG_BODY_CHARS, "big body not stored compressed"
    batch_uniq = {where[s["body"]][1].property_map()["UNIQ_KEY"] for s in batch[0]["msgs"]}
    assert len(batch_uniq) == len(batch[0]["msgs"]), "batch messages share a UNIQ_KEY"

    # orderly: every message of one arg on one queue (the one the selector chose), in send order
    by_arg: dict[int, list[str]] = collections.defaultdict(list)
    for s in orderly:
        by_arg[s["arg"]].append(s["body"])
    chosen = {r["arg"]: r["queue"] for r in results if r["mode"] == "orderly"}
    for arg, bodies in by_arg.items():
        qs = {where[b][0] for b in bodies}
        assert qs == {chosen[arg]}, f"arg {arg}: messages on queues {qs}, selector chose {chosen[arg]}"
        assert [plain_body(m) for m in queues[chosen[arg]] if plain_body(m) in bodies] == bodies
    assert len(set(chosen.values())) == len(chosen), f"args {sorted(chosen)} should land on distinct queues: {chosen}"


# --- 2. push consumers, CLUSTERING ------------------------------------------------------------

def test_clustering_two_consumers_split_queues_and_tag_filter(clients: Clients, running: Cluster) -> None:
    """Two consumers of one group in two processes split the queues and together consume every
    message (duplicates allowed, reported); a third group, started only after the messages were
    sent (so it must begin at offset 0, not at the tail), subscribes to TagA and gets only TagA."""
    topic, group, tag_group = "CppClusterTopic", "cpp_cluster_cg", "cpp_cluster_tag_cg"
    create_topic(running, topic)
    a = clients.consumer(group, topic, model="CLUSTERING")
    b = clients.consumer(group, topic, model="CLUSTERING")
    wait_for(lambda: all(x.has("started") or x.popen.poll() is not None for x in (a, b)),
             DELIVERY_WAIT_S, "two consumers to start", interval_s=0.05)
    assert all(x.popen.poll() is None for x in (a, b)), clients.diagnostics()

    def two_ids() -> list[str] | None:
        ids = consumer_ids(running, group)
        return ids if len(ids) == 2 else None
    ids = wait_for(two_ids, DELIVERY_WAIT_S, f"two consumers in {group}", interval_s=0.1)
    assert len(set(ids)) == 2

    by_body: dict[str, dict[str, Any]] = {}
    msg_ids: dict[str, str] = {}
    deadline = time.monotonic() + 2 * DELIVERY_WAIT_S
    rounds = 0
    while True:
        # one round is normally enough; if the rebalance was slow and one consumer got nothing,
        # more rounds follow (the client rebalances every 10 s) until both have something
        rounds += 1
        specs = message_specs(f"cluster{rounds}", 40 if rounds == 1 else 8)
        sends = [{**s, "topic": topic, "mode": "sync" if i % 2 else "async"} for i, s in enumerate(specs)]
        results = clients.produce("cpp_cluster_pg", sends)
        assert not [r for r in results if "error" in r or r["status"] != SEND_OK], results
        msg_ids.update({sends[r["i"]]["body"]: r["msg_id"] for r in results})
        by_body.update({s["body"]: s for s in specs})

        def union() -> set[str]:
            return {m["body"] for x in (a, b) for m in x.messages()}
        try:
            wait_for(lambda: union() >= set(by_body), DELIVERY_WAIT_S, "every message to be consumed",
                     interval_s=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: missing {sorted(set(by_body) - union())}\n{clients.diagnostics()}") from None
        if (a.messages() and b.messages()) or time.monotonic() > deadline:
            break

    t = clients.consumer(tag_group, topic, model="CLUSTERING", expression="TagA")
    tag_a = {body for body, s in by_body.items() if s["tags"] == "TagA"}
    try:
        wait_for(lambda: {m["body"] for m in t.messages()} >= tag_a, DELIVERY_WAIT_S,
                 "the TagA consumer to get every TagA message", interval_s=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: missing {sorted(tag_a - {m['body'] for m in t.messages()})}"
                             f"\n{clients.diagnostics()}") from None
    for x in (a, b, t):
        x.stop()
    for x in (a, b, t):
        assert x.wait() == 0, x.diagnostics()
    wait_for(lambda: consumer_ids(running, group) == [] and consumer_ids(running, tag_group) == [],
             DELIVERY_WAIT_S, "the stopped consumers to be unregistered", interval_s=0.1)

    got_a, got_b = a.messages(), b.messages()
    queues_a, queues_b = {m["queue_id"] for m in got_a}, {m["queue_id"] for m in got_b}
    bodies = [m["body"] for m in got_a + got_b]
    dups = {k: n for k, n in collections.Counter(bodies).items() if n > 1}
    print(f"clustering ({rounds} round(s)): a got {len(got_a)} from queues {sorted(queues_a)}, b got {len(got_b)} "
          f"from queues {sorted(queues_b)}; duplicates: {dups or 'none'}")
    assert got_a and got_b, f"one consumer got nothing after {rounds} rounds: a={len(got_a)} b={len(got_b)}"
    assert set(bodies) == set(by_body)
    for m in got_a + got_b:
        assert m["topic"] == topic
        check_intact(m, by_body[m["body"]], msg_ids[m["body"]])

    tagged = t.messages()
    assert {m["body"] for m in tagged} == tag_a
    assert all(m["tags"] == "TagA" for m in tagged), [m for m in tagged if m["tags"] != "TagA"]
    for m in tagged:
        check_intact(m, by_body[m["body"]], msg_ids[m["body"]])

    # the consumers committed what they consumed (UPDATE_CONSUMER_OFFSET on the way out)
    for g in (group, tag_group):
        wait_for(lambda g=g: committed_offsets(running, g, topic) == max_offsets(running, topic),
                 DELIVERY_WAIT_S, f"{g}'s committed offsets to reach the queues' max offsets", interval_s=0.2)


# --- 3. push consumers, BROADCASTING ----------------------------------------------------------

def test_broadcasting_each_consumer_gets_every_message(clients: Clients, running: Cluster) -> None:
    """Broadcasting consumers start at the queues' max offsets (local offsets, GET_MAX_OFFSET), so
    "started" is proven by a probe on every queue reaching both; then every message sent reaches both."""
    topic, group = "CppBroadcastTopic", "cpp_broadcast_cg"
    create_topic(running, topic)
    consumers = [clients.consumer(group, topic, model="BROADCASTING") for _ in range(2)]
    wait_for(lambda: all(x.has("started") or x.popen.poll() is not None for x in consumers),
             DELIVERY_WAIT_S, "two consumers to start", interval_s=0.05)
    assert all(x.popen.poll() is None for x in consumers), clients.diagnostics()

    probes = [0]
    with broker_client(running) as bc:
        def probed_everywhere() -> bool:
            for x in consumers:
                seen = {m["queue_id"] for m in x.messages() if m["body"].startswith("probe-")}
                if seen != set(range(QUEUES)):
                    for q in set(range(QUEUES)) - seen:
                        probes[0] += 1
                        assert send(bc, topic, b"probe-%d" % probes[0], queue_id=q).code == ResponseCode.SUCCESS
                    return False
            return True
        wait_for(probed_everywhere, DELIVERY_WAIT_S, "a probe on every queue to reach both consumers",
                 interval_s=0.5)

    specs = message_specs("broadcast", 24)
    sends = [{**s, "topic": topic, "mode": "sync"} for s in specs]
    results = clients.produce("cpp_broadcast_pg", sends)
    assert not [r for r in results if "error" in r or r["status"] != SEND_OK], results
    msg_ids = {sends[r["i"]]["body"]: r["msg_id"] for r in results}
    by_body = {s["body"]: s for s in specs}

    def everyone_has_all() -> bool:
        return all({m["body"] for m in x.messages()} >= set(by_body) for x in consumers)
    try:
        wait_for(everyone_has_all, DELIVERY_WAIT_S, "both consumers to get every message", interval_s=0.1)
    except AssertionError as exc:
        missing = [sorted(set(by_body) - {m["body"] for m in x.messages()}) for x in consumers]
        raise AssertionError(f"{exc}: missing {missing}\n{clients.diagnostics()}") from None
    for x in consumers:
        x.stop()
    for x in consumers:
        assert x.wait() == 0, x.diagnostics()
        real = [m for m in x.messages() if not m["body"].startswith("probe-")]
        dups = {k: n for k, n in collections.Counter(m["body"] for m in real).items() if n > 1}
        print(f"broadcasting: {x.name} got {len(real)} messages; duplicates: {dups or 'none'}")
        assert {m["body"] for m in real} == set(by_body)
        for m in real:
            check_intact(m, by_body[m["body"]], msg_ids[m["body"]])


def test_orderly_push_consumer_sees_each_queue_in_order(clients: Clients, running: Cluster) -> None:
    """send_orderly by key + an orderly push consumer (LOCK_BATCH_MQ): each key's messages arrive
    on one queue in send order. Started after the sends, so it also begins at offset 0."""
    topic, group = "CppOrderlyTopic", "cpp_orderly_cg"
    create_topic(running, topic)
    specs = message_specs("orderly", 24)
    sends = [{**s, "topic": topic, "mode": "orderly", "arg": i % 3} for i, s in enumerate(specs)]
    results = clients.produce("cpp_orderly_pg", sends)
    assert not [r for r in results if "error" in r or r["status"] != SEND_OK], results
    c = clients.consumer(group, topic, model="CLUSTERING", orderly=True)
    try:
        wait_for(lambda: {m["body"] for m in c.messages()} >= {s["body"] for s in specs}, DELIVERY_WAIT_S,
                 "the orderly consumer to get every message", interval_s=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{clients.diagnostics()}") from None
    c.stop()
    assert c.wait() == 0, c.diagnostics()
    got = c.messages()
    for arg in range(3):
        sent = [s["body"] for s in sends if s["arg"] == arg]
        seen = [m for m in got if m["body"] in sent]
        assert len({m["queue_id"] for m in seen}) == 1, seen
        first = list(dict.fromkeys(m["body"] for m in seen))     # first deliveries, in order
        assert first == sent, f"arg {arg}: delivered {first}, sent {sent}"


# --- 4. PullConsumer --------------------------------------------------------------------------

def test_pull_consumer_returns_the_topic(clients: Clients, running: Cluster) -> None:
    topic = "CppPullTopic"
    create_topic(running, topic)
    specs = [*message_specs("pull", 20), big_spec("pull")]
    results = clients.produce("cpp_pull_pg", [{**s, "topic": topic, "mode": "sync"} for s in specs])
    assert not [r for r in results if "error" in r or r["status"] != SEND_OK], results
    msg_ids = {specs[r["i"]]["body"]: r["msg_id"] for r in results}
    by_body = {s["body"]: s for s in specs}

    got = clients.start("pull", group="cpp_pull_cg", topic=topic, props=PROP_NAMES).result()["messages"]
    assert sorted(m["body"] for m in got) == sorted(by_body), clients.diagnostics()
    for m in got:
        check_intact(m, by_body[m["body"]], msg_ids[m["body"]])
    per_queue: dict[int, list[int]] = collections.defaultdict(list)
    for m in got:
        per_queue[m["queue_id"]].append(m["queue_offset"])
    assert all(offsets == list(range(len(offsets))) for offsets in per_queue.values()), per_queue

    tag_a = clients.start("pull", group="cpp_pull_tag_cg", topic=topic, expression="TagA").result()["messages"]
    assert sorted(m["body"] for m in tag_a) == sorted(s["body"] for s in specs if s["tags"] == "TagA")


# --- SYNC_FLUSH -------------------------------------------------------------------------------

def test_sync_flush_broker(cpp_client_python: Path, tmp_path: Path) -> None:
    """A SYNC_FLUSH broker acknowledges the C++ client's sync, async and batch sends after
    fdatasync; a PullConsumer reads them back; SIGTERM exits 0 and the store verifies clean."""
    topic = "CppSyncFlushTopic"
    with cluster(tmp_path / "sync-broker", flushDiskType="SYNC_FLUSH") as c:
        cl = Clients(cpp_client_python, tmp_path, c)
        try:
            specs = message_specs("syncflush", 12)
            sends = [{**s, "topic": topic, "mode": ("sync", "async")[i % 2]} for i, s in enumerate(specs)]
            sends.append({"mode": "batch", "topic": topic, "msgs": message_specs("syncbatch", 4)})
            results = cl.produce("cpp_syncflush_pg", sends)
            assert not [r for r in results if "error" in r or r["status"] != SEND_OK], \
                f"{results}\n{cl.diagnostics()}"
            expected = {s["body"] for s in specs} | {s["body"] for s in sends[-1]["msgs"]}
            got = cl.start("pull", group="cpp_syncflush_cg", topic=topic).result()["messages"]
            assert sorted(m["body"] for m in got) == sorted(expected), cl.diagnostics()
        finally:
            cl.close()
        assert "SYNC_FLUSH" in (c.root / "broker.properties").read_text()
        stop_and_verify(c)


# --- 5. last: SIGTERM and store verify --------------------------------------------------------

def test_zz_sigterm_exits_0_and_store_verifies(running: Cluster) -> None:
    """Runs last in this module (pytest keeps file order): stop the broker every test above used."""
    stop_and_verify(running)
