"""The real C++ client (PyPI rocketmq==0.4.4) runs here and talks to a loopback stub.

Proves, in CI, that the compat venv works and that the client's frames decode
with rocketpy's codec: one send_sync, and one PullConsumer pull that receives
a stored message the stub hands out. The client runs in a child process of the
compat venv's python, bounded by a timeout and killed if it overruns; its HOME
is a temporary directory, so its logs (~/logs/rocketmq-cpp/) land there and
are shown on failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from rocketpy.protocol.remoting import decode_frame
from tests.support.capture_server import CaptureServer

CHILD_TIMEOUT_S = 60
FRAME_WAIT_S = 10
TOPIC = "RocketpySmokeTopic"

SEND_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from rocketmq.client import Message, Producer
    producer = Producer("rocketpy_smoke_pg", timeout=3000)
    producer.set_namesrv_addr(sys.argv[1])
    producer.start()
    msg = Message(sys.argv[2])
    msg.set_tags("TagA")
    msg.set_keys("smoke-key")
    msg.set_property("smoke", "yes")
    msg.set_body(b"smoke body")
    res = producer.send_sync(msg)
    print(json.dumps({"status": int(res.status), "msg_id": res.msg_id}), flush=True)
    producer.shutdown()
    os._exit(0)   # librocketmq.so may hang in static destructors at interpreter exit
""")

PULL_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from rocketmq.client import PullConsumer
    consumer = PullConsumer("rocketpy_smoke_cg")
    consumer.set_namesrv_addr(sys.argv[1])
    consumer.start()
    got = [{"body": m.body.decode(), "tags": m.tags.decode(), "queue_offset": m.queue_offset}
           for m in consumer.pull(sys.argv[2], "*", max_num=32)]
    print(json.dumps(got), flush=True)
    consumer.shutdown()
    os._exit(0)
""")


def _run_client(python: Path, script: str, server: CaptureServer, home: Path) -> str:
    env = dict(os.environ, HOME=str(home), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [str(python), "-c", script, server.namesrv_addr, TOPIC],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    try:
        out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"C++ client did not finish within {CHILD_TIMEOUT_S} s\n{_diagnostics(out, err, server, home)}")
    if proc.returncode != 0:
        pytest.fail(f"C++ client exited {proc.returncode}\n{_diagnostics(out, err, server, home)}")
    return out


def _diagnostics(out: str, err: str, server: CaptureServer, home: Path) -> str:
    logs = "\n".join(p.read_text(errors="replace")[-2000:]
                     for p in sorted(home.rglob("*.log*")) if p.is_file())
    return (f"stdout: {out}\nstderr: {err[-2000:]}\nframes: {[(f.seq, f.code) for f in server.frames]}\n"
            f"server errors: {server.errors}\nclient log tail:\n{logs}")


def test_cpp_client_send_sync_frame_decodes(cpp_client_python: Path, tmp_path: Path) -> None:
    with CaptureServer(tmp_path / "frames") as server:
        out = _run_client(cpp_client_python, SEND_SCRIPT, server, tmp_path / "home")
        frame = server.wait_for_code(10, FRAME_WAIT_S)
        assert frame is not None, _diagnostics(out, "", server, tmp_path / "home")
        assert frame.path is not None and frame.path.read_bytes() == frame.raw
        assert not server.errors

    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == 0                      # SEND_OK

    cmd = decode_frame(frame.raw[4:])
    assert cmd.code == 10
    assert (cmd.language, cmd.version, cmd.flag) == ("CPP", 63, 0)
    assert cmd.ext_str("topic") == TOPIC
    assert cmd.ext_str("producerGroup") == "rocketpy_smoke_pg"
    assert cmd.body == b"smoke body"
    props = dict(pair.split("\x01", 1) for pair in (cmd.ext_str("properties") or "").split("\x02") if pair)
    assert props["TAGS"] == "TagA"
    assert props["KEYS"] == "smoke-key"
    assert props["smoke"] == "yes"
    assert props["UNIQ_KEY"] == result["msg_id"]     # send_sync returns the client's UNIQ_KEY


def test_cpp_pull_consumer_receives_stub_message(cpp_client_python: Path, tmp_path: Path) -> None:
    stored = [(b"stored for the smoke test", {"TAGS": "TagS", "KEYS": "k", "WAIT": "true"})]
    with CaptureServer(None, pull_messages=stored) as server:
        out = _run_client(cpp_client_python, PULL_SCRIPT, server, tmp_path / "home")
        pulls = [f for f in server.frames if f.code == 11]
        assert not server.errors

    got = json.loads(out.strip().splitlines()[-1])
    assert got == [{"body": "stored for the smoke test", "tags": "TagS", "queue_offset": 0}]
    assert pulls, "no PULL_MESSAGE frame"
    for frame in pulls:
        cmd = decode_frame(frame.raw[4:])
        assert cmd.ext_fields["sysFlag"] == 4         # no SUSPEND bit for PullConsumer.pull
