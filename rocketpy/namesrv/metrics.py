"""The NameServer's metrics, served at GET /metrics (Prometheus text) on metricsPort.

Everything runs in the NameServer's one event loop, so the counters are plain
ints bumped where the event happens (no locks, no shipping as in the broker).
Gauges (brokers, clusters, topics, connections, CPU, RSS) are read from the
route table, the connection table and psutil at scrape time. Label values are
bounded: request codes and response codes are the names of the protocol's
enums, anything else is counted as "other", so a client sending junk codes
cannot grow the series without bound.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import TYPE_CHECKING

import psutil

from rocketpy.metrics.http import MetricsServer
from rocketpy.metrics.prom import Exposition
from rocketpy.metrics.stats import Histogram
from rocketpy.protocol.codes import RequestCode, ResponseCode

if TYPE_CHECKING:
    from rocketpy.namesrv.server import NameServer

log = logging.getLogger("rocketpy.namesrv")

OTHER = "other"
ONEWAY = "ONEWAY"
# Why a broker address left the route table.
REMOVAL_REASONS = ("expired", "disconnected", "unregistered")


def request_code_name(code: int) -> str:
    try:
        return RequestCode(code).name
    except ValueError:
        return OTHER


def response_code_name(code: int) -> str:
    try:
        return ResponseCode(code).name
    except ValueError:
        return OTHER


class NamesrvMetrics:
    """Counters of one NameServer and the rendering of its endpoint."""

    def __init__(self, server: NameServer) -> None:
        self.server = server
        self.started_monotonic = time.monotonic()
        self.requests: dict[tuple[str, str], int] = collections.defaultdict(int)
        self.latency: dict[str, Histogram] = collections.defaultdict(Histogram)
        self.registrations: dict[str, int] = {"new": 0, "renewal": 0}
        self.removals: dict[str, int] = dict.fromkeys(REMOVAL_REASONS, 0)
        self.scans = 0
        self.connections_opened = 0
        self.connections_refused = 0
        self.frames_refused = 0
        self._process = psutil.Process()
        self.http: MetricsServer | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        """Serve on host:port; a port in use logs a warning and the NameServer runs on without it."""
        if not port:
            return
        http = MetricsServer(host, port, self.render)
        try:
            await http.start()
        except OSError as exc:
            log.warning("metrics endpoint not started: cannot listen on %s:%d (%s); set metricsPort to a free "
                        "port or 0 to turn it off", host, port, exc.strerror or exc)
            return
        self.http = http
        log.info("metrics at http://%s:%d/metrics", host, http.port)

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None

    # --- events -----------------------------------------------------------------------------------

    def observe_request(self, code: int, response_code: int | None, seconds: float) -> None:
        """One request handled; response_code None for a oneway request (never answered)."""
        name = request_code_name(code)
        outcome = ONEWAY if response_code is None else response_code_name(response_code)
        self.requests[(name, outcome)] += 1
        self.latency[name].observe_s(seconds)

    def observe_registration(self, new: bool) -> None:
        self.registrations["new" if new else "renewal"] += 1

    def observe_removals(self, reason: str, count: int) -> None:
        assert reason in self.removals, reason
        self.removals[reason] += count

    # --- the scrape -------------------------------------------------------------------------------

    def render(self) -> str:
        routes = self.server.routes
        e = Exposition()
        e.family("rocketpy_namesrv_requests_total", "counter", "Requests handled per request code and answer.",
                 (({"code": c, "outcome": o}, v) for (c, o), v in sorted(self.requests.items())))
        e.histogram("rocketpy_namesrv_request_latency_seconds", "Time to handle a request (decode to answer).",
                    [({"code": c}, h.counts, h.sum_us) for c, h in sorted(self.latency.items())])
        e.family("rocketpy_namesrv_brokers", "gauge", "Broker addresses registered and alive.",
                 [(None, len(routes.broker_live_table))])
        e.family("rocketpy_namesrv_broker_names", "gauge", "Broker names (master/slave sets) known.",
                 [(None, len(routes.broker_addr_table))])
        e.family("rocketpy_namesrv_clusters", "gauge", "Clusters known.", [(None, len(routes.cluster_addr_table))])
        e.family("rocketpy_namesrv_topics", "gauge", "Topics with a route.", [(None, len(routes.topic_queue_table))])
        e.family("rocketpy_namesrv_broker_registrations_total", "counter",
                 "REGISTER_BROKER accepted: the first of an address (new) or a periodic one (renewal).",
                 (({"kind": k}, v) for k, v in self.registrations.items()))
        e.family("rocketpy_namesrv_broker_removals_total", "counter",
                 "Broker addresses dropped: silent past brokerChannelExpiredTime (expired), connection "
                 "closed (disconnected) or UNREGISTER_BROKER.",
                 (({"reason": r}, v) for r, v in self.removals.items()))
        e.family("rocketpy_namesrv_scans_total", "counter", "Scans for silent brokers run.", [(None, self.scans)])
        e.family("rocketpy_namesrv_connections", "gauge", "Open client and broker connections.",
                 [(None, self.server.connection_count)])
        e.family("rocketpy_namesrv_connections_opened_total", "counter", "Connections accepted.",
                 [(None, self.connections_opened)])
        e.family("rocketpy_namesrv_connections_refused_total", "counter",
                 "Connections refused at connectionCountMax.", [(None, self.connections_refused)])
        e.family("rocketpy_namesrv_connections_closed_bad_frame_total", "counter",
                 "Connections closed for a malformed or oversized frame.", [(None, self.frames_refused)])
        self._process_families(e)
        return e.text()

    def _process_families(self, e: Exposition) -> None:
        try:
            with self._process.oneshot():
                cpu = self._process.cpu_times()
                rss = self._process.memory_info().rss
                started = self._process.create_time()
        except psutil.Error as exc:
            log.debug("process metrics not read: %s", exc)
        else:
            e.family("process_cpu_seconds_total", "counter", "User and system CPU time of the NameServer.",
                     [(None, cpu.user + cpu.system)])
            e.family("process_resident_memory_bytes", "gauge", "Resident set size.", [(None, rss)])
            e.family("process_start_time_seconds", "gauge", "Start time, seconds since the epoch.",
                     [(None, started)])
        e.family("rocketpy_namesrv_uptime_seconds", "gauge", "Seconds since the NameServer started.",
                 [(None, time.monotonic() - self.started_monotonic)])
