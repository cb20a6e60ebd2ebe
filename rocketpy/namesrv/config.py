"""NameServer settings (RocketMQ's NamesrvConfig plus the NettyServerConfig bits it uses).

Durations are milliseconds (`*_ms`) so tests can shorten them; the RocketMQ key
each field loads from is in its metadata, as in `rocketpy.config`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rocketpy import limits
from rocketpy.config import config_from_properties, parse_properties
from rocketpy.errors import ConfigError

NAMESRV_PORT_DEFAULT = 9876
NAMESRV_HOST_DEFAULT = "0.0.0.0"
# RouteInfoManager: scan every 10 s, first 5 s after start, drop a broker silent 120 s.
SCAN_NOT_ACTIVE_BROKER_INTERVAL_MS_DEFAULT = 10_000
SCAN_FIRST_DELAY_MS_DEFAULT = 5_000
BROKER_CHANNEL_EXPIRED_TIME_MS_DEFAULT = 120_000
# NettyServerConfig.serverChannelMaxIdleTimeSeconds
SERVER_CHANNEL_MAX_IDLE_TIME_MS_DEFAULT = 120_000
# Bound on simultaneous connections; brokers and clients hold one each.
CONNECTION_COUNT_MAX_DEFAULT = 4096


def _key(name: str, *aliases: str, doc: str = "") -> dict[str, Any]:
    return {"key": name, "aliases": aliases, "doc": doc}


@dataclasses.dataclass(frozen=True, slots=True)
class NamesrvConfig:
    """What `rocketpy namesrv` runs with; loads RocketMQ's namesrv.properties keys."""

    listen_host: str = dataclasses.field(
        default=NAMESRV_HOST_DEFAULT, metadata=_key("listenHost", doc="address to bind"))
    listen_port: int = dataclasses.field(
        default=NAMESRV_PORT_DEFAULT, metadata=_key("listenPort", doc="port to bind; 0 picks a free one"))
    scan_not_active_broker_interval_ms: int = dataclasses.field(
        default=SCAN_NOT_ACTIVE_BROKER_INTERVAL_MS_DEFAULT,
        metadata=_key("scanNotActiveBrokerInterval", doc="how often silent brokers are looked for"))
    scan_first_delay_ms: int = dataclasses.field(
        default=SCAN_FIRST_DELAY_MS_DEFAULT,
        metadata=_key("scanNotActiveBrokerFirstDelay", doc="delay of the first scan after start"))
    broker_channel_expired_time_ms: int = dataclasses.field(
        default=BROKER_CHANNEL_EXPIRED_TIME_MS_DEFAULT,
        metadata=_key("brokerChannelExpiredTime", doc="a broker silent this long is dropped"))
    server_channel_max_idle_time_ms: int = dataclasses.field(
        default=SERVER_CHANNEL_MAX_IDLE_TIME_MS_DEFAULT,
        metadata=_key("serverChannelMaxIdleTime", doc="a connection with no request this long is closed"))
    connection_count_max: int = dataclasses.field(
        default=CONNECTION_COUNT_MAX_DEFAULT, metadata=_key("connectionCountMax"))
    order_message_enable: bool = dataclasses.field(
        default=False, metadata=_key("orderMessageEnable", doc="add orderTopicConf to routes from KV"))
    metrics_port: int = dataclasses.field(
        default=-1, metadata=_key("metricsPort", doc="rocketpy: Prometheus GET /metrics port "
                                  "(-1 = listenPort + 5, 0 = off)"))

    def __post_init__(self) -> None:
        if not 0 <= self.listen_port <= 65535:
            raise ConfigError(f"listenPort={self.listen_port} is not a TCP port; pick 0-65535")
        for name, key in (("scan_not_active_broker_interval_ms", "scanNotActiveBrokerInterval"),
                          ("broker_channel_expired_time_ms", "brokerChannelExpiredTime"),
                          ("server_channel_max_idle_time_ms", "serverChannelMaxIdleTime"),
                          ("connection_count_max", "connectionCountMax")):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{key}={getattr(self, name)} must be positive")
        if not -1 <= self.metrics_port <= 65535:
            raise ConfigError(f"metricsPort={self.metrics_port} is not a TCP port; pick 1-65535, "
                              "0 to turn metrics off or -1 for listenPort + 5")
        if self.scan_first_delay_ms < 0:
            raise ConfigError(f"scanNotActiveBrokerFirstDelay={self.scan_first_delay_ms} must not be negative")

    @property
    def listen_address(self) -> str:
        return f"{self.listen_host}:{self.listen_port}"

    def metrics_listen_port(self, listen_port: int) -> int:
        """The metrics endpoint's port (0 = off) given the port the listener got.

        Takes the bound port because listenPort=0 picks one at start and the default
        (listenPort + 5) must follow the port actually served.
        """
        if self.metrics_port >= 0:
            return self.metrics_port
        port = listen_port + limits.METRICS_PORT_OFFSET
        return port if 0 < listen_port and port <= 65535 else 0


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT`, `PORT` or `[v6]:PORT` -> (host, port); ConfigError when malformed."""
    raw = text.strip()
    host, sep, port_text = raw.rpartition(":")
    if not sep:
        host, port_text = "", raw
    host = host.strip("[]") or NAMESRV_HOST_DEFAULT
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"--listen {text!r} is not HOST:PORT; write e.g. 127.0.0.1:9876") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--listen {text!r}: port {port} is outside 0-65535")
    return host, port


def load_namesrv_config(properties_path: str | Path | None = None,
                        overrides: Mapping[str, str] | None = None,
                        listen: str | None = None, metrics_port: int | None = None) -> NamesrvConfig:
    """Config from a namesrv.properties file, then `key=value` overrides, then `--listen`
    and `--metrics-port`."""
    props: dict[str, str] = {}
    if properties_path is not None:
        path = Path(properties_path)
        try:
            props.update(parse_properties(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    props.update(overrides or {})
    if listen is not None:
        host, port = parse_listen(listen)
        props["listenHost"] = host
        props["listenPort"] = str(port)
    if metrics_port is not None:
        props["metricsPort"] = str(metrics_port)
    return config_from_properties(NamesrvConfig, props)
