"""Interop: the unmodified C++ client (PyPI rocketmq==0.4.4) and the rocketpy SDK through a real
rocketpy broker — C++ producer -> SDK lite pull consumer, SDK producer -> C++ pull consumer —
with tags, keys, user properties and (SDK -> C++) a compressed body intact.

The C++ side runs in the compat venv as a child (tests/compat/cpp_scenarios.py, JSON in argv,
JSON lines out), with its own HOME and a deadline; see test_cpp_client.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rocketpy.client import ConsumeFromWhere, LitePullConsumer, Message, Producer, SendStatus
from tests.support.cluster import cluster, wait_for

SCENARIOS = Path(__file__).resolve().parent / "cpp_scenarios.py"
CHILD_DEADLINE_S = 45
CHILD_KILL_S = 75
WAIT_S = 45.0
PROPS = {"idx": "7", "note": "héllo wörld"}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("interop")) as c:
        yield c


def _cpp(python: Path, home: Path, scenario: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    home.mkdir(parents=True, exist_ok=True)
    args = {"deadline_s": CHILD_DEADLINE_S, **args}
    done = subprocess.run([str(python), str(SCENARIOS), scenario, json.dumps(args)], capture_output=True,
                          text=True, timeout=CHILD_KILL_S, env={**os.environ, "HOME": str(home)},
                          stdin=subprocess.DEVNULL)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, f"C++ {scenario} failed: {done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    return lines


def test_cpp_producer_to_sdk_consumer(cpp_client_python, running, tmp_path):
    topic = "InteropCppToSdk"
    sends = [{"mode": "sync", "topic": topic, "tags": f"Tag{i % 2}", "keys": f"key-{i}", "props": PROPS,
              "body": f"from-cpp-{i}"} for i in range(6)]
    out = _cpp(cpp_client_python, tmp_path / "home", "produce",
               {"group": "InteropCppPG", "namesrv": running.namesrv_addr, "sends": sends})
    results = out[-1]["results"]
    assert all(r.get("status") == 0 for r in results), results
    with LitePullConsumer("InteropSdkReader", namesrv_addr=running.namesrv_addr,
                          consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET) as c:
        c.subscribe(topic)
        got: dict[bytes, Any] = {}
        wait_for(lambda: got.update({m.body: m for m in c.poll(0.2)}) or len(got) >= 6, WAIT_S, "6 messages")
    for i in range(6):
        msg = got[f"from-cpp-{i}".encode()]
        assert (msg.tags, msg.keys) == (f"Tag{i % 2}", [f"key-{i}"])
        assert {k: msg.properties.get(k) for k in PROPS} == PROPS
        assert msg.msg_id == results[i]["msg_id"]


def test_sdk_producer_to_cpp_consumer(cpp_client_python, running, tmp_path):
    topic = "InteropSdkToCpp"
    big = "z" * 20_000                                     # compressed by the SDK
    with Producer("InteropSdkPG", namesrv_addr=running.namesrv_addr) as p:
        ids = {}
        for i in range(4):
            body = big if i == 3 else f"from-sdk-{i}"
            msg = Message(topic, body.encode(), tags=f"Tag{i % 2}", keys=[f"key-{i}", "shared"])
            for k, v in PROPS.items():
                msg.with_property(k, v)
            r = p.send(msg)
            assert r.status is SendStatus.SEND_OK
            ids[body] = r.msg_id

    def pulled() -> list[dict[str, Any]] | None:
        out = _cpp(cpp_client_python, tmp_path / "home2", "pull",
                   {"group": "InteropCppPull", "namesrv": running.namesrv_addr, "topic": topic,
                    "props": list(PROPS), "max_num": 32})
        msgs = out[-1]["messages"]
        return msgs if len(msgs) >= 4 else None
    msgs = {m["body"]: m for m in wait_for(pulled, WAIT_S, "the C++ pull consumer to see 4 messages", 1.0)}
    for i in range(4):
        body = big if i == 3 else f"from-sdk-{i}"
        m = msgs[body]
        assert m["tags"] == f"Tag{i % 2}" and m["keys"] == f"key-{i} shared"
        assert {k: m["props"].get(k) for k in PROPS} == PROPS
        assert m["props"]["UNIQ_KEY"] == ids[body]
