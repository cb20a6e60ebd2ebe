"""`rocketpy up`, the README's first command: a NameServer and a broker that serve, and a clean stop."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

from rocketpy.protocol.codes import RequestCode
from tests.support.broker_ops import pull, records, send
from tests.support.cluster import REPO, free_port, wait_for
from tests.support.remoting_client import RemotingTestClient


def test_up_serves_and_stops_cleanly(tmp_path):
    ns_port, broker_port = free_port(), free_port()
    out = tmp_path / "up.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "rocketpy.cli.app", "up", "--home", str(tmp_path / "home"),
                                 "--namesrv-port", str(ns_port), "--broker-port", str(broker_port)],
                                cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Ctrl-C stops both" in out.read_text() or proc.poll() is not None, 60,
                 "rocketpy up to report where it listens")
        assert proc.poll() is None, out.read_text()
        assert (tmp_path / "home" / "broker.properties").exists()
        with RemotingTestClient("127.0.0.1", broker_port) as c:
            assert send(c, "UpTopic", b"hello").code == 0
            r = wait_for(lambda: (r := pull(c, "UpTopic", 0, 0)).code == 0 and r, 10, "the message")
            assert records(r)[0].body == b"hello"
        with RemotingTestClient("127.0.0.1", ns_port) as ns:
            wait_for(lambda: ns.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "UpTopic"}).code == 0, 20,
                     "the topic's route")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, out.read_text()
        text = out.read_text()
        assert "rocketpy up: stopped" in text and "drained; exiting 0" in text
        assert "unregister broker from namesrv" not in text, "the broker unregisters before the NameServer stops"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_killed_up_takes_its_namesrv_and_broker_down(tmp_path):
    """kill -9 of `rocketpy up` must not leave its NameServer and broker running on their own."""
    import psutil

    ns_port, broker_port = free_port(), free_port()
    out = tmp_path / "up.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "rocketpy.cli.app", "up", "--home", str(tmp_path / "home"),
                                 "--namesrv-port", str(ns_port), "--broker-port", str(broker_port)],
                                cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    children: list[psutil.Process] = []
    try:
        wait_for(lambda: "Ctrl-C stops both" in out.read_text() or proc.poll() is not None, 60,
                 "rocketpy up to report where it listens")
        assert proc.poll() is None, out.read_text()
        children = psutil.Process(proc.pid).children()
        assert len(children) == 2, [c.cmdline() for c in children]
        proc.kill()
        proc.wait()
        gone, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, f"still running after `up` was killed: {[c.pid for c in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
