"""Scenarios for the real C++ RocketMQ client (PyPI rocketmq==0.4.4), run INSIDE the compat venv.

    <compat python> cpp_scenarios.py SCENARIO '<json args>'

This file imports nothing from rocketpy (the venv does not have it). It prints JSON objects, one
per line, on stdout; the last line of `produce` and `pull`, and the `done` event of `consume`,
hold the results. Every scenario is bounded by its own deadline and a watchdog thread that
`os._exit`s the process if the C++ library hangs (in shutdown or a static destructor). The
process always leaves through `os._exit`, because librocketmq.so may hang at interpreter exit.

Scenarios:
  produce  {namesrv, group, timeout_ms?, deadline_s, sends: [SEND...]}
           SEND = {mode: sync|async|oneway|orderly|batch, topic, body, tags?, keys?, props?, arg?}
           batch: {mode: batch, topic, msgs: [{body, tags?, keys?, props?}, ...]}
           -> {"results": [{i, mode, status, msg_id, offset, queue?} | {i, mode, error}]}
  consume  {namesrv, group, topic, expression?, model: CLUSTERING|BROADCASTING, props: [names],
            deadline_s, thread_count?, orderly?: bool (MessageListenerOrderly: LOCK_BATCH_MQ),
            work_ms?: the listener's time per message}
           -> {"event":"started"} once start() returned, {"event":"msg", ...} per delivery,
              {"event":"done", "count", "why"} after "stop" on stdin or the deadline.
  stream   {namesrv, group, topic, keys, max_rounds, pace_ms?, deadline_s}: orderly sends in
           rounds until "stop" on stdin -> {"event":"round",...} per round, {"event":"done",...}
  pull     {namesrv, group, topic, expression?, max_num?, deadline_s}
           -> {"messages": [...]}
"""

from __future__ import annotations

import json
import os
import select
import sys
import threading
import time
import traceback

_print_lock = threading.Lock()
EXIT_WATCHDOG = 3
EXIT_ERROR = 4


def emit(obj: dict) -> None:
    line = json.dumps(obj, sort_keys=True)
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def watchdog(seconds: float) -> None:
    """Leave hard after `seconds`, whatever the C++ library is doing."""
    def run() -> None:
        time.sleep(seconds)
        emit({"event": "watchdog", "after_s": seconds})
        os._exit(EXIT_WATCHDOG)
    threading.Thread(target=run, name="watchdog", daemon=True).start()


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def build_message(topic: str, spec: dict):
    from rocketmq.client import Message
    msg = Message(topic)
    if spec.get("tags"):
        msg.set_tags(spec["tags"])
    if spec.get("keys"):
        msg.set_keys(spec["keys"])
    for key, value in (spec.get("props") or {}).items():
        msg.set_property(key, value)
    if spec.get("delay_level"):
        msg.set_delay_time_level(int(spec["delay_level"]))
    msg.set_body(spec.get("body", "").encode())
    return msg


def describe(msg, prop_names) -> dict:
    """What a consumer saw of one RecvMessage."""
    props = {}
    for name in list(prop_names) + ["UNIQ_KEY"]:
        value = _text(msg.get_property(name))
        if value:
            props[name] = value
    return {
        "topic": msg.topic, "tags": _text(msg.tags), "keys": _text(msg.keys), "body": _text(msg.body),
        "id": msg.id, "queue_id": msg.queue_id, "queue_offset": msg.queue_offset,
        "reconsume_times": msg.reconsume_times, "commit_log_offset": msg.commit_log_offset, "props": props,
    }


def produce(args: dict) -> None:
    from rocketmq.client import Producer, hashing_queue_selector

    producer = Producer(args["group"], timeout=args.get("timeout_ms", 10000))
    producer.set_namesrv_addr(args["namesrv"])
    producer.start()
    deadline = time.monotonic() + args["deadline_s"]
    results: list[dict] = []
    lock = threading.Condition()
    pending_async = [0]
    keep = []   # messages must outlive their async sends

    def record(entry: dict) -> None:
        with lock:
            results.append(entry)

    for i, spec in enumerate(args["sends"]):
        mode = spec["mode"]
        try:
            if mode == "batch":
                msgs = [build_message(spec["topic"], m) for m in spec["msgs"]]
                res = producer.send_batch(msgs)
                record({"i": i, "mode": mode, "status": int(res.status), "msg_id": res.msg_id, "offset": res.offset})
                continue
            msg = build_message(spec["topic"], spec)
            if mode == "sync":
                res = producer.send_sync(msg)
                record({"i": i, "mode": mode, "status": int(res.status), "msg_id": res.msg_id, "offset": res.offset})
            elif mode == "oneway":
                producer.send_oneway(msg)
                record({"i": i, "mode": mode, "status": None})
            elif mode == "orderly":
                chosen: dict[str, int] = {}

                def selector(mq_size, m, arg, chosen=chosen):
                    chosen["queue"] = hashing_queue_selector(mq_size, m, arg)
                    chosen["mq_size"] = mq_size
                    return chosen["queue"]
                res = producer.send_orderly(msg, int(spec["arg"]), queue_selector=selector)
                record({"i": i, "mode": mode, "status": int(res.status), "msg_id": res.msg_id,
                        "offset": res.offset, "arg": spec["arg"], **chosen})
            elif mode == "async":
                def on_ok(res, i=i):
                    record({"i": i, "mode": "async", "status": int(res.status), "msg_id": res.msg_id,
                            "offset": res.offset})
                    with lock:
                        pending_async[0] -= 1
                        lock.notify_all()

                def on_exc(exc, i=i):
                    record({"i": i, "mode": "async", "error": repr(exc)})
                    with lock:
                        pending_async[0] -= 1
                        lock.notify_all()
                with lock:
                    pending_async[0] += 1
                keep.append(msg)
                try:
                    producer.send_async(msg, on_ok, on_exc)
                except Exception:
                    with lock:
                        pending_async[0] -= 1
                    raise
            else:
                raise ValueError(f"unknown mode {mode}")
        except Exception as exc:  # noqa: BLE001 - reported, the test decides
            record({"i": i, "mode": mode, "error": repr(exc)})
        if time.monotonic() > deadline:
            record({"i": i, "mode": mode, "error": "scenario deadline passed"})
            break
    with lock:
        lock.wait_for(lambda: pending_async[0] <= 0, max(0.0, deadline - time.monotonic()))
        missing = pending_async[0]
        done = sorted(results, key=lambda r: r["i"])
    emit({"results": done, "async_missing": missing})
    producer.shutdown()


def _stop_requested(buf: list[bytes], timeout_s: float) -> bool:
    """True once "stop" arrived on stdin (or stdin closed); waits at most timeout_s."""
    ready, _, _ = select.select([sys.stdin], [], [], max(0.0, timeout_s))
    if not ready:
        return False
    chunk = os.read(sys.stdin.fileno(), 1024)
    buf[0] += chunk
    return not chunk or b"stop" in buf[0]


def stream(args: dict) -> None:
    """Orderly sends in rounds until "stop" on stdin, max_rounds or the deadline: round s sends
    body "k<key>:<s>" with keys "k<key>" for every key, arg = key index (the hash selector puts
    each key on one queue). Emits {"event":"round","seq":s,"queues":{key:queue}} after each
    round and {"event":"done","rounds":n,"errors":[...]} at the end."""
    from rocketmq.client import Producer, hashing_queue_selector

    producer = Producer(args["group"], timeout=args.get("timeout_ms", 10000))
    producer.set_namesrv_addr(args["namesrv"])
    producer.start()
    deadline = time.monotonic() + args["deadline_s"]
    pace_s = float(args.get("pace_ms", 0)) / 1000
    buf = [b""]
    errors: list[str] = []
    rounds = 0
    while rounds < int(args["max_rounds"]) and time.monotonic() < deadline and not errors:
        queues = {}
        for key in range(int(args["keys"])):
            msg = build_message(args["topic"], {"body": f"k{key}:{rounds}", "keys": f"k{key}"})
            chosen = {}

            def selector(mq_size, m, arg, chosen=chosen):
                chosen["queue"] = hashing_queue_selector(mq_size, m, arg)
                return chosen["queue"]
            try:
                res = producer.send_orderly(msg, key, queue_selector=selector)
                if int(res.status) != 0:
                    errors.append(f"k{key}:{rounds} status {int(res.status)}")
            except Exception as exc:  # noqa: BLE001 - reported, the test decides
                errors.append(f"k{key}:{rounds} {exc!r}")
            queues[key] = chosen.get("queue")
        if errors:
            break       # a round is whole or the stream ends before it: the test knows what was sent
        emit({"event": "round", "seq": rounds, "queues": queues})
        rounds += 1
        if _stop_requested(buf, pace_s):
            break
    emit({"event": "done", "rounds": rounds, "errors": errors})
    producer.shutdown()


def consume(args: dict) -> None:
    from rocketmq.client import PushConsumer
    from rocketmq.ffi import MessageModel

    model = MessageModel[args.get("model", "CLUSTERING")]
    consumer = PushConsumer(args["group"], orderly=bool(args.get("orderly")), message_model=model)
    consumer.set_namesrv_addr(args["namesrv"])
    if args.get("thread_count"):
        consumer.set_thread_count(int(args["thread_count"]))
    count = [0]
    names = args.get("props", [])

    work_s = float(args.get("work_ms", 0)) / 1000

    def on_message(msg) -> None:
        # "mono" is CLOCK_MONOTONIC, one clock for every process of the host, so deliveries of
        # two consumer processes can be put in one order (tests/compat/test_cpp_orderly_rebalance.py)
        mono = time.monotonic()
        entry = describe(msg, names)
        with _print_lock:
            count[0] += 1
        emit({"event": "msg", "at": time.time(), "mono": mono, **entry})
        if work_s:
            time.sleep(work_s)      # a listener that takes a while, so a backlog builds up

    if args.get("fail"):
        # A listener that fails every message: the callback answers RECONSUME_LATER itself. (The
        # wheel's own wrapper re-raises a listener's exception inside the ctypes callback, which
        # then returns 0 = CONSUME_SUCCESS, so raising would not make the client retry.)
        from rocketmq.client import dll, ffi_check
        from rocketmq.ffi import _CConsumeStatus

        def failing(_consumer, cmsg) -> int:
            from rocketmq.client import RecvMessage
            on_message(RecvMessage(cmsg))
            return _CConsumeStatus.RECONSUME_LATER.value
        ffi_check(dll.Subscribe(consumer._handle, args["topic"].encode(), args.get("expression", "*").encode()))
        consumer._register_callback(failing)
    else:
        consumer.subscribe(args["topic"], on_message, args.get("expression", "*"))
    consumer.start()
    emit({"event": "started", "pid": os.getpid()})
    deadline = time.monotonic() + args["deadline_s"]
    why = "deadline"
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sys.stdin], [], [], min(0.2, max(0.0, deadline - time.monotonic())))
        if ready:
            chunk = os.read(sys.stdin.fileno(), 1024)
            if not chunk:
                why = "stdin closed"
                break
            buf += chunk
            if b"stop" in buf:
                why = "stop"
                break
    consumer.shutdown()     # persists offsets, unregisters
    emit({"event": "done", "count": count[0], "why": why})


def pull(args: dict) -> None:
    from rocketmq.client import PullConsumer

    consumer = PullConsumer(args["group"])
    consumer.set_namesrv_addr(args["namesrv"])
    consumer.start()
    got = [describe(m, args.get("props", []))
           for m in consumer.pull(args["topic"], args.get("expression", "*"), max_num=args.get("max_num", 32))]
    emit({"messages": got})
    consumer.shutdown()


SCENARIOS = {"produce": produce, "stream": stream, "consume": consume, "pull": pull}


def main() -> None:
    name, args = sys.argv[1], json.loads(sys.argv[2])
    watchdog(float(args["deadline_s"]) + float(args.get("grace_s", 15)))
    try:
        SCENARIOS[name](args)
    except BaseException:  # noqa: BLE001 - the test reads the traceback from stdout
        emit({"event": "error", "traceback": traceback.format_exc()})
        sys.stdout.flush()
        os._exit(EXIT_ERROR)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
