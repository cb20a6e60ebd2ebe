"""The broker's metrics, served by control at GET /metrics (Prometheus text).

How the numbers reach control:

- workers count puts (on the SEND_OK answer: topic, messages, bytes, latency
  from ring to answer) and pulls (found messages, bytes, read time) in a
  `ProcessStats`; the writer counts flush (fdatasync) latency. Each ships the
  interval's delta once a second as a oneway InternalCode.STATS frame on the
  unix socket it already has to control (the writer opens one just for this).
- control adds the deltas into totals and keeps a per-second history for the
  TPS fields of GET_BROKER_RUNTIME_INFO (putTps / getTotalTps over 10, 60 and
  600 s, like RocketMQ's BrokerStatsManager).
- gauges are read at scrape time from what control already holds: the queue
  table (depth per topic), the offsets table (lag per group), the control
  block (offsets, heartbeats of every child), the store directory (disk use)
  and mincore of the newest CommitLog files (page-cache residency, measured at
  most every METRICS_PAGECACHE_INTERVAL_MS over METRICS_PAGECACHE_FILES_MAX files).

Child restarts are counted by control as heartbeat-slot pid changes it sees,
so a restart of control itself is not in its own count.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import time
from typing import TYPE_CHECKING

from rocketpy import limits
from rocketpy.errors import ProtocolError
from rocketpy.metrics.http import MetricsServer
from rocketpy.metrics.pagecache import resident_pages
from rocketpy.metrics.prom import Exposition
from rocketpy.metrics.stats import Histogram
from rocketpy.protocol.bodies import as_obj, parse_json_lenient
from rocketpy.store.file_store import COMMITLOG_DIR

if TYPE_CHECKING:
    from rocketpy.broker.control.server import ControlServer

log = logging.getLogger("rocketpy.broker.metrics")

SLOT_ROLES = {0: "writer", 1: "dispatcher", 2: "control"}
TPS_WINDOWS_S = (10, 60, 600)


def slot_role(slot: int) -> str:
    return SLOT_ROLES.get(slot, f"worker{slot - 3}")


class BrokerMetrics:
    """Totals of every child's counters, and the rendering of the endpoint."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.put: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        self.get: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
        self.put_latency = Histogram()
        self.pull_latency = Histogram()
        self.flush_latency = Histogram()
        # one entry per second: (second, put msgs, get msgs, {(group, topic): get msgs})
        self.history: collections.deque[tuple[int, int, int, dict[tuple[str, str], int]]] = collections.deque(
            maxlen=limits.METRICS_TPS_WINDOW_S + 1)
        self._pids: dict[int, int] = {}
        self.restarts: dict[int, int] = collections.defaultdict(int)
        self._pagecache: tuple[float, int, int] = (float("-inf"), 0, 0)
        self.http: MetricsServer | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        port = self.server.broker.metrics_listen_port
        if not port:
            return
        http = MetricsServer(self.server.broker.listen_host, port, self.render)
        try:
            await http.start()
        except OSError as exc:
            log.warning("metrics endpoint not started: cannot listen on %s:%d (%s); set metricsPort to a free "
                        "port or 0 to turn it off", self.server.broker.listen_host, port, exc.strerror or exc)
            return
        self.http = http
        log.info("metrics at http://%s:%d/metrics", self.server.broker.listen_host, http.port)

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()

    @property
    def address(self) -> str | None:
        if self.http is None:
            return None
        host = self.server.broker.listen_host
        if host in ("0.0.0.0", "::", ""):
            host = self.server.broker.broker_ip1 or "127.0.0.1"
        return f"{host}:{self.http.port}"

    # --- counters from the children -------------------------------------------------------------

    def add(self, body: bytes) -> None:
        """One STATS body (see metrics/stats.py); ProtocolError if it is not one."""
        doc = as_obj(parse_json_lenient(body), "STATS")
        second = int(time.monotonic())
        put_msgs = get_msgs = 0
        groups: dict[tuple[str, str], int] = {}
        for topic, row in as_obj(doc.get("put") or {}, "STATS.put").items():
            self.put[topic][0] += int(row[0])
            self.put[topic][1] += int(row[1])
            put_msgs += int(row[0])
        for item in doc.get("get") or []:
            if not isinstance(item, list) or len(item) != 4:
                raise ProtocolError("STATS.get entries are [group, topic, messages, bytes]")
            key = (str(item[0]), str(item[1]))
            self.get[key][0] += int(item[2])
            self.get[key][1] += int(item[3])
            get_msgs += int(item[2])
            groups[key] = groups.get(key, 0) + int(item[2])
        for name, hist in (("putLatency", self.put_latency), ("pullLatency", self.pull_latency),
                           ("flushLatency", self.flush_latency)):
            value = doc.get(name)
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], list):
                hist.add(value[0], value[1])
        self._count_second(second, put_msgs, get_msgs, groups)

    def _count_second(self, second: int, put_msgs: int, get_msgs: int,
                      groups: dict[tuple[str, str], int]) -> None:
        if self.history and self.history[-1][0] == second:
            _, p, g, gr = self.history[-1]
            for k, v in groups.items():
                gr[k] = gr.get(k, 0) + v
            self.history[-1] = (second, p + put_msgs, g + get_msgs, gr)
        else:
            self.history.append((second, put_msgs, get_msgs, dict(groups)))

    def tps(self, window_s: int, which: int) -> float:
        """Messages per second over the last window (which: 1 puts, 2 gets)."""
        now = int(time.monotonic())
        total = sum(entry[1] if which == 1 else entry[2] for entry in self.history if now - entry[0] < window_s)
        return total / window_s

    def group_get_tps(self, group: str, topic: str) -> float:
        now = int(time.monotonic())
        total = sum(entry[3].get((group, topic), 0) for entry in self.history if now - entry[0] < 60)
        return total / 60

    def runtime_fields(self) -> dict[str, str]:
        """The TPS fields of GET_BROKER_RUNTIME_INFO (RocketMQ: "10s 60s 600s" averages)."""
        put = " ".join(f"{self.tps(w, 1):.2f}" for w in TPS_WINDOWS_S)
        get = " ".join(f"{self.tps(w, 2):.2f}" for w in TPS_WINDOWS_S)
        out = {"putTps": put, "getFoundTps": get, "getTotalTps": get, "getTransferedTps": get,
               "msgPutTotalTodayNow": str(sum(v[0] for v in self.put.values())),
               "msgGetTotalTodayNow": str(sum(v[0] for v in self.get.values()))}
        if self.address:
            out["metricsAddr"] = self.address
        return out

    # --- the scrape ---------------------------------------------------------------------------------

    def _children(self) -> list[tuple[int, int, float]]:
        """(slot, pid, heartbeat age in s) of every child; counts pid changes as restarts."""
        cb = self.server.control_block
        if cb is None:
            return []
        out = []
        now_ms = time.monotonic_ns() // 1_000_000
        for slot in range(cb.slot_count):
            pid, beat_ms, _busy = cb.heartbeat(slot)
            if pid:
                old = self._pids.get(slot)
                if old is not None and old != pid:
                    self.restarts[slot] += 1
                self._pids[slot] = pid
            out.append((slot, pid, max(0.0, (now_ms - beat_ms) / 1000) if beat_ms else -1.0))
        return out

    def _pagecache_fields(self) -> tuple[int, int]:
        at, resident, total = self._pagecache
        now = time.monotonic()
        if now - at < limits.METRICS_PAGECACHE_INTERVAL_MS / 1000:
            return resident, total
        resident = total = 0
        directory = os.path.join(self.server.store.store_path_root_dir, COMMITLOG_DIR)
        try:
            names = sorted(n for n in os.listdir(directory) if n.isdigit())[-limits.METRICS_PAGECACHE_FILES_MAX:]
            for name in names:
                r, t = resident_pages(os.path.join(directory, name))
                resident += r
                total += t
        except OSError as exc:
            log.debug("page-cache residency not measured: %s", exc)
        self._pagecache = (now, resident, total)
        return resident, total

    def render(self) -> str:
        s = self.server
        e = Exposition()
        e.family("rocketpy_messages_in_total", "counter", "Messages stored (SEND_OK) per topic.",
                 (({"topic": k}, v[0]) for k, v in sorted(self.put.items())))
        e.family("rocketpy_bytes_in_total", "counter", "Stored record bytes per topic.",
                 (({"topic": k}, v[1]) for k, v in sorted(self.put.items())))
        e.family("rocketpy_messages_out_total", "counter", "Messages returned by pulls per group and topic.",
                 (({"group": g, "topic": t}, v[0]) for (g, t), v in sorted(self.get.items())))
        e.family("rocketpy_bytes_out_total", "counter", "Record bytes returned by pulls per group and topic.",
                 (({"group": g, "topic": t}, v[1]) for (g, t), v in sorted(self.get.items())))
        e.histogram("rocketpy_put_latency_seconds", "Send latency in the broker: ring to answer.",
                    [(None, self.put_latency.counts, self.put_latency.sum_us)])
        e.histogram("rocketpy_pull_latency_seconds", "Time to read a pull's messages (not the long-poll wait).",
                    [(None, self.pull_latency.counts, self.pull_latency.sum_us)])
        e.histogram("rocketpy_flush_latency_seconds", "CommitLog flush (fdatasync) latency in the writer.",
                    [(None, self.flush_latency.counts, self.flush_latency.sum_us)])
        depth: dict[str, int] = {}
        qt = s.queue_table
        for name, config in s.topics.table.items():
            total = 0
            for qid in range(config.read_queue_nums):
                entry = qt.get(name, qid) if qt is not None else None
                if entry is not None:
                    total += max(0, entry[0] - entry[1])
            depth[name] = total
        e.family("rocketpy_queue_depth_messages", "gauge", "Messages held per topic (max - min offset).",
                 (({"topic": k}, v) for k, v in sorted(depth.items())[:limits.METRICS_TOPIC_SERIES_MAX]))
        e.family("rocketpy_consumer_lag_messages", "gauge", "Messages not yet consumed per group and topic.",
                 (({"group": g, "topic": t}, v) for (g, t), v in self._lags()))
        e.family("rocketpy_put_tps", "gauge", "Messages stored per second over the last 10 s.",
                 [(None, self.tps(10, 1))])
        e.family("rocketpy_get_tps", "gauge", "Messages pulled per second over the last 10 s.",
                 [(None, self.tps(10, 2))])
        cb = s.control_block
        if cb is not None:
            committed, flushed, _, generation, min_phys, _ = cb.writer_fields()
            e.family("rocketpy_commitlog_max_offset_bytes", "gauge", "CommitLog committed offset.",
                     [(None, committed)])
            e.family("rocketpy_commitlog_min_offset_bytes", "gauge", "CommitLog first offset kept.",
                     [(None, min_phys)])
            e.family("rocketpy_flush_behind_bytes", "gauge", "Committed but not yet flushed.",
                     [(None, max(0, committed - flushed))])
            e.family("rocketpy_dispatch_behind_bytes", "gauge", "Committed but not yet in the ConsumeQueues.",
                     [(None, max(0, committed - cb.dispatched_offset))])
            e.family("rocketpy_writer_generation", "gauge", "Writer restarts since boot (generation).",
                     [(None, generation)])
        children = self._children()
        e.family("rocketpy_child_up", "gauge", "1 when the child has a live heartbeat slot.",
                 (({"slot": str(sl), "role": slot_role(sl)}, 1 if pid else 0) for sl, pid, _ in children))
        e.family("rocketpy_child_heartbeat_age_seconds", "gauge", "Seconds since the child's last heartbeat.",
                 (({"slot": str(sl), "role": slot_role(sl)}, age) for sl, pid, age in children if pid))
        e.family("rocketpy_child_restarts_total", "counter", "Child restarts control has seen (pid changes).",
                 (({"slot": str(sl), "role": slot_role(sl)}, self.restarts.get(sl, 0)) for sl, _, _ in children))
        try:
            usage = shutil.disk_usage(s.store.store_path_root_dir)
            e.family("rocketpy_disk_used_bytes", "gauge", "Used bytes of the store's file system.",
                     [(None, usage.used)])
            e.family("rocketpy_disk_total_bytes", "gauge", "Size of the store's file system.", [(None, usage.total)])
        except OSError:
            pass
        resident, total = self._pagecache_fields()
        e.family("rocketpy_commitlog_pagecache_resident_ratio", "gauge",
                 f"Share of the newest {limits.METRICS_PAGECACHE_FILES_MAX} CommitLog files' pages in the page cache.",
                 [(None, resident / total if total else 0.0)])
        return e.text()

    def _lags(self) -> list[tuple[tuple[str, str], int]]:
        qt = self.server.queue_table
        out: list[tuple[tuple[str, str], int]] = []
        for key, queues in sorted(self.server.offsets.table.items()):
            topic, _, group = key.partition("@")
            lag = 0
            for qid, offset in queues.items():
                max_offset = qt.max_offset(topic, int(qid)) if qt is not None else 0
                lag += max(0, max_offset - int(offset))
            out.append(((group, topic), lag))
            if len(out) >= limits.METRICS_TOPIC_SERIES_MAX:
                break
        return out

    def __repr__(self) -> str:  # pragma: no cover
        return f"BrokerMetrics(topics={len(self.put)})"

