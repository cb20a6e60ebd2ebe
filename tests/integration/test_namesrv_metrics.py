"""The NameServer's Prometheus endpoint: a real NameServer and a broker registering with it.

The counters are checked to move by polling the endpoint; nothing is timed.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from rocketpy.metrics.prom import parse_samples
from rocketpy.protocol.codes import RequestCode, ResponseCode
from tests.support.cluster import Cluster, free_port, wait_for
from tests.support.remoting_client import RemotingTestClient

FAKE_BROKER_ADDR = "127.0.0.1:29911"
# A silent registration expires after this; the real broker re-registers every second.
EXPIRY_MS = 4000

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("nsmetrics"))
    metrics_port = free_port()
    try:
        c.start_namesrv(metrics_port=metrics_port, brokerChannelExpiredTime=str(EXPIRY_MS))
        c.start_broker(registerNameServerPeriod="1000")
        c.metrics_port = metrics_port  # type: ignore[attr-defined]
        yield c
    finally:
        for proc in (c.broker, c.namesrv):
            if proc is not None and proc.popen.poll() is None:
                try:
                    proc.stop(20)
                except Exception:  # noqa: BLE001 - teardown must not mask the test's own failure
                    proc.kill_tree()


def scrape(c: Cluster) -> Samples:
    port = c.metrics_port  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return {(name, tuple(sorted(labels.items()))): value for name, labels, value in parse_samples(text)}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_broker_registration_shows(running: Cluster) -> None:
    def registered() -> Samples | None:
        s = scrape(running)
        ok = (value(s, "rocketpy_namesrv_brokers") >= 1
              and value(s, "rocketpy_namesrv_broker_registrations_total", kind="renewal") >= 1
              and value(s, "rocketpy_namesrv_scans_total") >= 1)
        return s if ok else None

    s = wait_for(registered, 30, "the broker's registrations to be counted")
    assert value(s, "rocketpy_namesrv_broker_registrations_total", kind="new") >= 1
    assert value(s, "rocketpy_namesrv_requests_total", code="REGISTER_BROKER", outcome="SUCCESS") >= 2
    assert value(s, "rocketpy_namesrv_request_latency_seconds_count", code="REGISTER_BROKER") >= 2
    assert value(s, "rocketpy_namesrv_clusters") >= 1
    assert value(s, "rocketpy_namesrv_broker_names") >= 1
    assert value(s, "rocketpy_namesrv_topics") >= 1          # the broker's system topics
    assert value(s, "rocketpy_namesrv_connections") >= 1     # the broker's own connection
    assert value(s, "process_resident_memory_bytes") > 0
    assert value(s, "process_cpu_seconds_total") > 0
    assert value(s, "rocketpy_namesrv_uptime_seconds") > 0


def test_requests_by_code_and_outcome(running: Cluster) -> None:
    before = scrape(running)
    missing = value(before, "rocketpy_namesrv_requests_total", code="GET_ROUTEINFO_BY_TOPIC",
                    outcome="TOPIC_NOT_EXIST")
    opened = value(before, "rocketpy_namesrv_connections_opened_total")
    with RemotingTestClient("127.0.0.1", running.namesrv_port) as client:
        for i in range(3):
            resp = client.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": f"NoSuchTopic{i}"})
            assert resp.code == ResponseCode.TOPIC_NOT_EXIST
        assert client.request(RequestCode.GET_BROKER_CLUSTER_INFO).code == ResponseCode.SUCCESS
        assert client.request(9999).code == ResponseCode.REQUEST_CODE_NOT_SUPPORTED
        during = scrape(running)
    assert value(during, "rocketpy_namesrv_requests_total", code="GET_ROUTEINFO_BY_TOPIC",
                 outcome="TOPIC_NOT_EXIST") >= missing + 3
    assert value(during, "rocketpy_namesrv_requests_total", code="GET_BROKER_CLUSTER_INFO", outcome="SUCCESS") >= 1
    assert value(during, "rocketpy_namesrv_requests_total", code="other", outcome="REQUEST_CODE_NOT_SUPPORTED") >= 1
    assert value(during, "rocketpy_namesrv_connections_opened_total") >= opened + 1
    hist = {labels: v for (name, labels), v in during.items()
            if name == "rocketpy_namesrv_request_latency_seconds_bucket"
            and dict(labels).get("code") == "GET_ROUTEINFO_BY_TOPIC"}
    assert hist[(("code", "GET_ROUTEINFO_BY_TOPIC"), ("le", "+Inf"))] >= 3


def test_silent_broker_expires(running: Cluster) -> None:
    """A registration that is never renewed is dropped by the scan and counted as expired."""
    before = value(scrape(running), "rocketpy_namesrv_broker_removals_total", reason="expired")
    wrapper = {"topicConfigTable": {}, "dataVersion": {"timestamp": 1, "counter": 1}}
    with RemotingTestClient("127.0.0.1", running.namesrv_port, timeout_s=10) as fake:
        resp = fake.request(RequestCode.REGISTER_BROKER, {
            "brokerName": "broker-silent", "brokerAddr": FAKE_BROKER_ADDR, "clusterName": "SilentCluster",
            "haServerAddr": "127.0.0.1:29912", "brokerId": 0}, json.dumps(wrapper).encode(), version=36)
        assert resp.code == ResponseCode.SUCCESS, resp.remark
        assert value(scrape(running), "rocketpy_namesrv_clusters") >= 2
        # the connection stays open and silent, so only the scan can drop the broker
        wait_for(lambda: value(scrape(running), "rocketpy_namesrv_broker_removals_total", reason="expired")
                 > before, 60, "the silent broker to expire", interval_s=0.2)
        with RemotingTestClient("127.0.0.1", running.namesrv_port) as client:
            info = client.request(RequestCode.GET_BROKER_CLUSTER_INFO)
        assert b"broker-silent" not in info.body


def test_only_metrics_path_is_served(running: Cluster) -> None:
    port = running.metrics_port  # type: ignore[attr-defined]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    assert err.value.code == 404


def test_port_in_use_leaves_the_namesrv_running(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        c = Cluster(tmp_path)
        try:
            ns = c.start_namesrv(metrics_port=port)
            wait_for(lambda: "metrics endpoint not started" in ns.log(), 30, "the warning about the port")
            with RemotingTestClient("127.0.0.1", c.namesrv_port) as client:
                assert client.request(RequestCode.GET_BROKER_CLUSTER_INFO).code == ResponseCode.SUCCESS
            assert ns.popen.poll() is None
        finally:
            c.stop()
