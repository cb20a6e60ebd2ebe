"""The broker's Prometheus endpoint during a small load: the counters move, the gauges are there."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from rocketpy.cli.app import app
from rocketpy.client.admin import AdminClient
from rocketpy.metrics.prom import parse_samples
from tests.support.cluster import cluster, free_port, wait_for

TOPIC = "MetricsT"
LOAD_MSGS = 40


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    port = free_port()
    with cluster(tmp_path_factory.mktemp("metrics"), metricsPort=str(port)) as c:
        c.metrics_port = port  # type: ignore[attr-defined]
        yield c


def scrape(c) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{c.metrics_port}/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return {(name, tuple(sorted(labels.items()))): value for name, labels, value in parse_samples(text)}


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_under_load(running) -> None:
    before = scrape(running)
    assert value(before, "rocketpy_messages_in_total", topic=TOPIC) == 0
    with AdminClient([running.namesrv_addr]) as admin:
        admin.create_topic(TOPIC, broker=running.broker_addr, read_queues=2)
        wait_for(lambda: TOPIC in admin.topic_list(), 20, "the topic route")
        for i in range(LOAD_MSGS):
            admin.send(TOPIC, f"load {i}".encode())
        addr = running.broker_addr
        # The dispatcher builds the ConsumeQueue after the sends are answered: poll until it caught up.
        wait_for(lambda: sum(len(admin.pull(addr, TOPIC, q, 0, group="MetricsG", max_msgs=32).messages)
                             for q in (0, 1)) == LOAD_MSGS, 20, f"all {LOAD_MSGS} messages to be pullable")

    def moved():
        s = scrape(running)
        ok = (value(s, "rocketpy_messages_in_total", topic=TOPIC) == LOAD_MSGS
              and value(s, "rocketpy_messages_out_total", group="MetricsG", topic=TOPIC) == LOAD_MSGS
              and value(s, "rocketpy_flush_latency_seconds_count") > 0)
        return s if ok else None

    after = wait_for(moved, 30, "the shipped counters to reach control")
    assert value(after, "rocketpy_bytes_in_total", topic=TOPIC) > LOAD_MSGS * len("load 0")
    assert value(after, "rocketpy_put_latency_seconds_count") >= LOAD_MSGS
    assert value(after, "rocketpy_put_latency_seconds_bucket", le="+Inf") >= LOAD_MSGS
    assert value(after, "rocketpy_pull_latency_seconds_count") >= 2
    assert value(after, "rocketpy_queue_depth_messages", topic=TOPIC) == LOAD_MSGS
    assert value(after, "rocketpy_commitlog_max_offset_bytes") > value(before, "rocketpy_commitlog_max_offset_bytes")
    assert value(after, "rocketpy_disk_total_bytes") > 0
    assert 0 < value(after, "rocketpy_commitlog_pagecache_resident_ratio") <= 1
    roles = {dict(k[1])["role"] for k, v in after.items() if k[0] == "rocketpy_child_up" and v == 1}
    assert {"writer", "dispatcher", "control", "worker0", "worker1"} <= roles


def test_lag_runtime_tps_and_broker_status(running) -> None:
    with AdminClient([running.namesrv_addr]) as admin:
        if TOPIC not in admin.topic_list():
            admin.create_topic(TOPIC, broker=running.broker_addr, read_queues=2)
            wait_for(lambda: TOPIC in admin.topic_list(), 20, "the topic route")
        for i in range(4):
            admin.send(TOPIC, f"lag {i}".encode(), queue_id=0)
        admin.call(running.broker_addr, 15, {"consumerGroup": "LagG", "topic": TOPIC, "queueId": 0,
                                             "commitOffset": 1}, what="commit")
        info = wait_for(lambda: (lambda i: i if float(i["putTps"].split()[0]) > 0 else None)(
            admin.broker_runtime_info(running.broker_addr)), 30, "putTps to show the sends")
    assert info["metricsAddr"] == f"127.0.0.1:{running.metrics_port}"
    assert len(info["putTps"].split()) == 3
    lag = wait_for(lambda: value(scrape(running), "rocketpy_consumer_lag_messages", group="LagG", topic=TOPIC),
                   20, "the lag gauge")
    assert lag >= 3
    result = CliRunner().invoke(app, ["admin", "broker-status", "-n", running.namesrv_addr, "--json"])
    assert result.exit_code == 0, result.stderr
    status = json.loads(result.stdout)[running.broker_addr]
    assert status["metrics"]["rocketpy_messages_in_total"] >= 4


def test_endpoint_answers_only_metrics(running) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/other", timeout=10)
    assert info.value.code == 404
