"""Client configuration: RocketMQ's ClientConfig, with its defaults.

Producers and consumers made with equal client ids (client IP, instance name, unit name)
in one event loop share one `ClientInstance`: one connection per broker, one route
cache, one heartbeat. The instance name defaults to the process id, as Java's
`changeInstanceNameToPID` does, so every client of a process shares one instance unless
told otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from rocketpy import limits
from rocketpy.errors import ConfigError
from rocketpy.protocol.msgid import local_ip

NAMESRV_ADDR_ENV = "NAMESRV_ADDR"
DEFAULT_INSTANCE_NAME = "DEFAULT"


def parse_namesrv_addr(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """ "h:p;h:p" (RocketMQ's form), or a list of "h:p"; empty items dropped."""
    if value is None:
        value = os.environ.get(NAMESRV_ADDR_ENV, "")
    items = value.split(";") if isinstance(value, str) else list(value)
    addrs = tuple(a.strip() for a in items if a and a.strip())
    for addr in addrs:
        host, sep, port = addr.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"NameServer address {addr!r} is not host:port; write e.g. 127.0.0.1:9876")
    return addrs


@dataclasses.dataclass(frozen=True, slots=True)
class ClientConfig:
    """What every producer and consumer is configured with (Java's ClientConfig).

    `namesrv_addr` accepts "h:p;h:p" or a list; when omitted, the NAMESRV_ADDR environment
    variable is read, as RocketMQ clients do.
    """

    namesrv_addr: tuple[str, ...] = ()
    instance_name: str = DEFAULT_INSTANCE_NAME
    client_ip: str = dataclasses.field(default_factory=local_ip)
    unit_name: str | None = None
    unit_mode: bool = False
    language: str = "PYTHON"
    poll_name_server_interval_ms: int = limits.CLIENT_POLL_NAME_SERVER_INTERVAL_MS_DEFAULT
    heartbeat_broker_interval_ms: int = limits.CLIENT_HEARTBEAT_BROKER_INTERVAL_MS_DEFAULT
    persist_consumer_offset_interval_ms: int = limits.CLIENT_PERSIST_CONSUMER_OFFSET_INTERVAL_MS_DEFAULT
    pull_time_delay_ms_when_exception: int = limits.CLIENT_PULL_TIME_DELAY_MS_WHEN_EXCEPTION_DEFAULT
    request_timeout_ms: int = limits.CLIENT_API_TIMEOUT_MS_DEFAULT
    connect_timeout_ms: int = limits.CLIENT_CONNECT_TIMEOUT_MS_DEFAULT

    @classmethod
    def make(cls, namesrv_addr: str | Sequence[str] | None = None, **kwargs: object) -> ClientConfig:
        """A config from keyword arguments, with namesrv_addr parsed and the values checked."""
        return cls(namesrv_addr=parse_namesrv_addr(namesrv_addr), **kwargs)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if isinstance(self.namesrv_addr, str) or not isinstance(self.namesrv_addr, tuple) or not self.namesrv_addr:
            object.__setattr__(self, "namesrv_addr", parse_namesrv_addr(self.namesrv_addr or None))
        if not self.namesrv_addr:
            raise ConfigError("no NameServer address: pass namesrv_addr='host:9876' or set NAMESRV_ADDR")
        for name in ("poll_name_server_interval_ms", "heartbeat_broker_interval_ms",
                     "persist_consumer_offset_interval_ms", "request_timeout_ms", "connect_timeout_ms"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be positive")
        if "@" in self.instance_name or not self.instance_name:
            raise ConfigError(f"instance_name {self.instance_name!r} must be non-empty and hold no '@'")

    @property
    def resolved_instance_name(self) -> str:
        """DEFAULT becomes the process id (Java's changeInstanceNameToPID)."""
        if self.instance_name == DEFAULT_INSTANCE_NAME:
            return str(os.getpid())
        return self.instance_name

    def client_id(self) -> str:
        """clientIP@instanceName[@unitName] (Java's buildMQClientId)."""
        cid = f"{self.client_ip}@{self.resolved_instance_name}"
        if self.unit_name:
            cid += f"@{self.unit_name}"
        return cid
