"""Capture golden frames from the real RocketMQ C++ client (PyPI ``rocketmq==0.4.4``).

Run it with the compat virtualenv's python (tests/compat/setup_clients.sh prints it):

    PY=$(bash tests/compat/setup_clients.sh) && "$PY" tests/compat/capture_vectors.py

It starts tests/support/capture_server.py in this process (loopback, ephemeral
ports), runs each scenario below in a child process of this same interpreter
(so a hang or crash of librocketmq.so stays bounded and killable), waits until
the frames each scenario must produce have arrived, and writes the interesting
ones to tests/vectors/cpp/ plus a manifest.json describing each file. All the
raw frames of a run are kept under --raw-dir for inspection.

The wheel logs to ~/logs/rocketmq-cpp/; children run with HOME set to a
scratch directory so those logs stay out of the real home and can be shown
when a scenario fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))

from capture_server import CapturedFrame, CaptureServer  # noqa: E402

TOPIC = "RocketpyCompatTopic"
PRODUCER_GROUP = "rocketpy_cpp_pg"
PUSH_GROUP = "rocketpy_cpp_push_cg"
ORDERLY_GROUP = "rocketpy_cpp_orderly_cg"
PULL_GROUP = "rocketpy_cpp_pull_cg"
CLIENT_PACKAGE = "rocketmq==0.4.4"
SCENARIO_TIMEOUT_S = 90.0
STOP_WAIT_S = 20.0

# A stored message the stub hands to consumers (queue 0, queue offset 0).
PULLED_BODY = b"pulled by the C++ client"
PULLED_PROPS = {"TAGS": "TagA", "KEYS": "pulled-key",
                "UNIQ_KEY": "7F0000010000000000000000000000AA", "WAIT": "true"}


# --------------------------------------------------------------------------
# Child side: the scenarios, run inside the compat venv with the wheel.
# --------------------------------------------------------------------------

def _wait_for_stop(limit_s: float) -> None:
    """Block until the parent writes a line (or closes stdin), at most ``limit_s``."""
    ready, _, _ = select.select([sys.stdin], [], [], limit_s)
    if ready:
        sys.stdin.readline()


def _emit(**facts: object) -> None:
    print(json.dumps(facts), flush=True)


def child_producer(namesrv: str) -> None:
    from rocketmq.client import Message, Producer

    producer = Producer(PRODUCER_GROUP, timeout=3000)
    producer.set_namesrv_addr(namesrv)
    producer.start()

    msg = Message(TOPIC)
    msg.set_tags("TagA")
    msg.set_keys("key-1")
    msg.set_property("color", "blue")
    msg.set_body(b"hello from the C++ client")
    res = producer.send_sync(msg)
    _emit(step="send_sync", status=int(res.status), msg_id=res.msg_id, offset=res.offset)

    big = Message(TOPIC)
    big.set_tags("TagB")
    big.set_keys("key-big")
    big.set_delay_time_level(3)
    big.set_body(b"0123456789abcdef" * 320)          # 5120 bytes > 4 KiB: zlib-compressed
    res = producer.send_sync(big)
    _emit(step="send_sync_compressed_delay", status=int(res.status), msg_id=res.msg_id)

    one = Message(TOPIC)
    one.set_tags("TagC")
    one.set_keys("key-oneway")
    one.set_body(b"oneway body")
    producer.send_oneway(one)
    _emit(step="send_oneway")

    ordered = Message(TOPIC)
    ordered.set_tags("TagD")
    ordered.set_keys("key-orderly")
    ordered.set_body(b"orderly body")
    res = producer.send_orderly(ordered, 7)
    _emit(step="send_orderly", status=int(res.status), msg_id=res.msg_id)

    items = []
    for i in range(2):
        item = Message(TOPIC)
        item.set_tags("TagE")
        item.set_keys(f"key-batch-{i}")
        item.set_property("idx", str(i))
        item.set_body(f"batch body {i}".encode())
        items.append(item)
    res = producer.send_batch(items)
    _emit(step="send_batch", status=int(res.status), msg_id=res.msg_id)

    _emit(step="sent")
    _wait_for_stop(SCENARIO_TIMEOUT_S)
    producer.shutdown()
    _emit(step="shutdown")


def child_push(namesrv: str, orderly: bool) -> None:
    from rocketmq.client import PushConsumer, RecvMessage
    from rocketmq.ffi import MSG_CALLBACK_FUNC, dll

    received: list[str] = []

    def on_message(msg: object) -> None:
        received.append(repr(msg))
        _emit(step="received", message=repr(msg))

    consumer = PushConsumer(ORDERLY_GROUP if orderly else PUSH_GROUP, orderly=orderly)
    consumer.set_namesrv_addr(namesrv)
    consumer.subscribe(TOPIC, on_message, "TagA||TagB")
    if not orderly:
        # The wrapper reports RECONSUME_LATER only by re-raising the user's exception out
        # of a ctypes callback, whose return value is then whatever ctypes leaves (it did
        # lead to a send-back when tried). Register a raw callback on the same C API that
        # returns RECONSUME_LATER (1) for the first delivery, so the capture is deterministic.
        def raw(_consumer: int, msg: int) -> int:
            on_message(RecvMessage(msg))
            return 1 if len(received) == 1 else 0       # 1 = RECONSUME_LATER

        raw_func = MSG_CALLBACK_FUNC(raw)
        consumer._callback_refs.append(raw_func)
        if dll.RegisterMessageCallback(consumer._handle, raw_func) != 0:
            raise RuntimeError("RegisterMessageCallback failed")
    consumer.start()
    _emit(step="started")
    _wait_for_stop(SCENARIO_TIMEOUT_S)
    consumer.shutdown()
    _emit(step="shutdown", received=len(received))


def child_pull(namesrv: str) -> None:
    from rocketmq.client import PullConsumer

    consumer = PullConsumer(PULL_GROUP)
    consumer.set_namesrv_addr(namesrv)
    consumer.start()
    got = [repr(m) for m in consumer.pull(TOPIC, "*", max_num=32)]
    _emit(step="pulled", messages=got)
    _wait_for_stop(SCENARIO_TIMEOUT_S)
    consumer.shutdown()
    _emit(step="shutdown")


def run_child(name: str, namesrv: str) -> None:
    if name == "producer":
        child_producer(namesrv)
    elif name == "push":
        child_push(namesrv, orderly=False)
    elif name == "push_orderly":
        child_push(namesrv, orderly=True)
    elif name == "pull":
        child_pull(namesrv)
    else:
        raise SystemExit(f"unknown scenario {name!r}")
    sys.stdout.flush()
    # librocketmq.so can hang in its static destructors; the scenario is done.
    os._exit(0)


# --------------------------------------------------------------------------
# Parent side: server, children, selection of vectors.
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Want:
    """One vector: the file name, what it is, and how to find it among a scenario's frames."""

    name: str
    description: str
    match: Callable[[CapturedFrame], bool]
    required: bool = True
    before_stop: bool = True        # must arrive before the child is told to shut down
    # Sends a server-initiated request first and returns the matcher for the client's answer.
    trigger: Callable[[CaptureServer, dict[str, CapturedFrame]], Callable[[CapturedFrame], bool]] | None = None


def _is(code: int, **ext: str) -> Callable[[CapturedFrame], bool]:
    def match(f: CapturedFrame) -> bool:
        return f.code == code and all(f.ext_str(k) == v for k, v in ext.items())
    return match


def _props_have(code: int, *needles: str, **ext: str) -> Callable[[CapturedFrame], bool]:
    base = _is(code, **ext)
    return lambda f: base(f) and all(n in (f.ext_str("properties") or "") for n in needles)


def _heartbeat(kind: str, *, subscriptions: bool | None = None) -> Callable[[CapturedFrame], bool]:
    def match(f: CapturedFrame) -> bool:
        if f.code != 34:
            return False
        try:
            data = f.body_json()
        except ValueError:
            return False
        if not data.get(kind):
            return False
        if subscriptions is None:
            return True
        has = any("subscriptionDataSet" in c for c in data.get("consumerDataSet", []))
        return has == subscriptions
    return match


def _ask_running_info(server: CaptureServer, found: dict[str, CapturedFrame]) -> Callable[[CapturedFrame], bool]:
    heartbeat = found["heartbeat_consumer.bin"]
    opaque = server.send_request(heartbeat.peer, 307, {
        "consumerGroup": PUSH_GROUP, "clientId": heartbeat.body_json()["clientID"], "jstackEnable": "false",
    })
    return lambda f: bool(f.flag & 1) and f.opaque == opaque


def _pull(sys_flag_bits: int, topic: str = TOPIC) -> Callable[[CapturedFrame], bool]:
    def match(f: CapturedFrame) -> bool:
        return (f.code == 11 and f.ext_str("topic") == topic
                and int(f.ext_str("sysFlag") or 0) & sys_flag_bits == sys_flag_bits)
    return match


SCENARIOS: dict[str, dict[str, object]] = {
    "producer": {
        "server": {},
        "wants": [
            Want("get_route_info.bin", "GET_ROUTEINFO_BY_TOPIC (105) for the topic, to the NameServer",
                 _is(105, topic=TOPIC)),
            Want("send_message.bin", "SEND_MESSAGE (10) from send_sync: tags TagA, keys key-1, "
                 "user property color=blue, body 'hello from the C++ client'",
                 _props_have(10, "color\x01blue", batch="0")),
            Want("send_message_compressed_delay.bin", "SEND_MESSAGE (10) from send_sync: 5120-byte "
                 "body zlib-compressed (sysFlag bit 0), delay level 3 (DELAY property)",
                 _props_have(10, "DELAY\x013", batch="0")),
            Want("send_oneway.bin", "SEND_MESSAGE (10) from send_oneway; the oneway bit is NOT set "
                 "(flag 0, client bug)", _props_have(10, "key-oneway", batch="0")),
            Want("send_orderly.bin", "SEND_MESSAGE (10) from send_orderly(msg, 7): queueId 3 "
                 "(7 % 4 queues)", _props_have(10, "key-orderly", batch="0")),
            Want("send_batch.bin", "SEND_MESSAGE (10) from send_batch of 2 messages: batch '1', "
                 "body = 2 batch items", _is(10, batch="1")),
            Want("heartbeat_producer.bin", "HEART_BEAT (34) with producerDataSet; sent shortly after the sends (none precedes the first send)",
                 _heartbeat("producerDataSet")),
            Want("unregister_client_producer.bin", "UNREGISTER_CLIENT (35) at producer shutdown",
                 _is(35, producerGroup=PRODUCER_GROUP), before_stop=False),
        ],
    },
    "push": {
        "server": {"query_offset_found": False,
                   "pull_messages": [(PULLED_BODY, PULLED_PROPS)]},
        "wants": [
            Want("get_route_info_retry.bin", "GET_ROUTEINFO_BY_TOPIC (105) for %RETRY%<group>",
                 _is(105, topic=f"%RETRY%{PUSH_GROUP}")),
            Want("heartbeat_consumer.bin", "HEART_BEAT (34) of a clustering push consumer "
                 "subscribed to 'TagA||TagB' (enums as ordinals)",
                 _heartbeat("consumerDataSet", subscriptions=True)),
            Want("get_consumer_list.bin", "GET_CONSUMER_LIST_BY_GROUP (38)",
                 _is(38, consumerGroup=PUSH_GROUP)),
            Want("query_consumer_offset.bin", "QUERY_CONSUMER_OFFSET (14) for a queue of the topic "
                 "(answered 22 QUERY_NOT_FOUND)", _is(14, topic=TOPIC)),
            Want("get_max_offset.bin", "GET_MAX_OFFSET (30), asked after QUERY_NOT_FOUND",
                 _is(30, topic=TOPIC)),
            Want("pull_message.bin", "PULL_MESSAGE (11) of the push consumer on queue 0 from offset 0 "
                 "(sysFlag 6 = SUSPEND|SUBSCRIPTION, commitOffset '-1' after QUERY_NOT_FOUND)",
                 lambda f: _pull(0x6)(f) and f.ext_str("queueId") == "0"
                 and f.ext_str("queueOffset") == "0"),
            Want("pull_message_retry.bin", "PULL_MESSAGE (11) on %RETRY%<group>",
                 _pull(0x2, topic=f"%RETRY%{PUSH_GROUP}")),
            Want("consumer_send_msg_back.bin", "CONSUMER_SEND_MSG_BACK (36): the consume callback returned "
                 "RECONSUME_LATER for the stub's message at CommitLog offset 4096; the client sends it "
                 "to the message's STOREHOST address, not to the route's broker address",
                 _is(36)),
            Want("update_consumer_offset.bin", "UPDATE_CONSUMER_OFFSET (15) for queue 0 of the topic, "
                 "commitOffset '1' after one consumed message; flag 0 although the client logs it as oneway", _is(15, topic=TOPIC, queueId="0", commitOffset="1")),
            Want("consumer_running_info_response.bin", "the client's RESPONSE to a broker-initiated "
                 "GET_CONSUMER_RUNNING_INFO (307): flag 1, the broker's opaque echoed, body = "
                 "ConsumerRunningInfo JSON", lambda f: False, trigger=_ask_running_info),
            Want("unregister_client_consumer.bin", "UNREGISTER_CLIENT (35) at push consumer shutdown",
                 _is(35, consumerGroup=PUSH_GROUP), before_stop=False),
        ],
    },
    "push_orderly": {
        "server": {},
        "wants": [
            Want("heartbeat_consumer_orderly.bin", "HEART_BEAT (34) of an orderly push consumer",
                 _heartbeat("consumerDataSet", subscriptions=True)),
            Want("lock_batch_mq.bin", "LOCK_BATCH_MQ (41) of the orderly push consumer", _is(41)),
            Want("unlock_batch_mq.bin", "UNLOCK_BATCH_MQ (42) at orderly consumer shutdown",
                 _is(42), required=False, before_stop=False),
        ],
    },
    "pull": {
        "server": {"pull_messages": [(PULLED_BODY, PULLED_PROPS)]},
        "wants": [
            Want("pull_message_pull_consumer.bin", "PULL_MESSAGE (11) of PullConsumer.pull on queue 0 "
                 "from offset 0 (sysFlag SUBSCRIPTION only, no SUSPEND)",
                 lambda f: _pull(0x4)(f) and f.ext_str("queueId") == "0"
                 and f.ext_str("queueOffset") == "0"),
            Want("heartbeat_pull_consumer.bin", "HEART_BEAT (34) of a pull consumer "
                 "(no subscriptionDataSet key)", _heartbeat("consumerDataSet", subscriptions=False),
                 required=False),
        ],
    },
}


class ScenarioFailed(Exception):
    pass


def run_scenario(name: str, raw_dir: Path, home: Path) -> tuple[dict[str, CapturedFrame], list[str]]:
    spec = SCENARIOS[name]
    wants: list[Want] = spec["wants"]  # type: ignore[assignment]
    server = CaptureServer(raw_dir / name, **spec["server"])  # type: ignore[arg-type]
    server.start()
    env = dict(os.environ, HOME=str(home), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--namesrv", server.namesrv_addr]
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env, text=True)
    found: dict[str, CapturedFrame] = {}
    deadline = time.monotonic() + SCENARIO_TIMEOUT_S
    try:
        for want in (w for w in wants if w.before_stop):
            match = want.trigger(server, found) if want.trigger else want.match
            frame = server.wait_for(match, max(0.0, deadline - time.monotonic()))
            if frame is not None:
                found[want.name] = frame
            elif want.required:
                raise ScenarioFailed(f"{name}: no frame for {want.name} within {SCENARIO_TIMEOUT_S} s")
            if child.poll() is not None:
                break
        assert child.stdin is not None
        child.stdin.write("stop\n")
        child.stdin.flush()
        for want in (w for w in wants if not w.before_stop):
            frame = server.wait_for(want.match, STOP_WAIT_S)
            if frame is not None:
                found[want.name] = frame
            elif want.required:
                raise ScenarioFailed(f"{name}: no frame for {want.name} after shutdown")
        out, err = child.communicate(timeout=STOP_WAIT_S)
    except (ScenarioFailed, subprocess.TimeoutExpired) as exc:
        child.kill()
        out, err = child.communicate(timeout=10)
        logs = "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted((home / "logs").rglob("*")) if p.is_file())
        raise ScenarioFailed(f"{exc}\n--- child stdout\n{out}\n--- child stderr\n{err[-3000:]}\n"
                             f"--- frames {[(f.seq, f.code) for f in server.frames]}\n"
                             f"--- wheel logs\n{logs}") from exc
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        server.stop()
    if server.errors:
        raise ScenarioFailed(f"{name}: capture server errors: {server.errors}")
    return found, out.splitlines()


def main() -> int:
    parser = argparse.ArgumentParser(description="capture golden frames from rocketmq==0.4.4")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--namesrv", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "vectors" / "cpp")
    parser.add_argument("--raw-dir", type=Path, default=None,
                        help="keep every raw frame here (default: a temporary directory)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run only these scenarios (default: all)")
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.namesrv)
        return 0

    import rocketmq.client  # noqa: F401  (fail early outside the compat venv)

    raw_dir = args.raw_dir or Path(tempfile.mkdtemp(prefix="rocketpy-capture-"))
    home = Path(tempfile.mkdtemp(prefix="rocketpy-capture-home-"))
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"vectors": {}}
    try:
        for name in args.scenario or list(SCENARIOS):
            found, child_out = run_scenario(name, raw_dir, home)
            for file_name, frame in found.items():
                (args.out / file_name).write_bytes(frame.raw)
                want = next(w for w in SCENARIOS[name]["wants"] if w.name == file_name)  # type: ignore[attr-defined]
                manifest["vectors"][file_name] = {
                    "code": frame.code,
                    "scenario": name,
                    "description": want.description,
                    "bytes": len(frame.raw),
                    "sha256": hashlib.sha256(frame.raw).hexdigest(),
                    "captured_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                print(f"{name:13} {file_name:36} code={frame.code:<4} {len(frame.raw)} bytes")
            for line in child_out:
                print(f"{name:13} child: {line}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    manifest["client"] = f"PyPI {CLIENT_PACKAGE} (librocketmq.so, rocketmq-client-cpp 1.2.x)"
    manifest["command"] = 'PY=$(bash tests/compat/setup_clients.sh) && "$PY" tests/compat/capture_vectors.py'
    manifest["python"] = sys.version.split()[0]
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"raw frames kept in {raw_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
