"""Registration with every NameServer (RocketMQ's BrokerOuterAPI.registerBrokerAll).

REGISTER_BROKER goes to each address in `namesrvAddr`, concurrently, at start,
every `registerNameServerPeriod`, and soon after any topic change
(`request_soon`, debounced so a burst of auto-created topics costs one round);
UNREGISTER_BROKER at shutdown (remoting-protocol.md §8.2). A NameServer that
cannot be reached costs one log line per attempt and never stops the broker;
each call is bounded by `registerBrokerTimeoutMills`.

Addresses. `brokerAddr` = brokerIP1:listenPort. When brokerIP1 is not set, a
broker listening on a specific address advertises that address; one listening
on loopback or on every address (0.0.0.0, the default) advertises 127.0.0.1 --
a deliberate deviation from Java (which picks the first non-loopback IPv4) so
the embedded default works out of the box; set brokerIP1 for clients on other
hosts. haServerAddr = brokerIP2 (default: brokerIP1):listenPort+1, as Java's
haListenPort default.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import zlib
from collections.abc import Callable

from rocketpy import limits
from rocketpy.client.remoting import RemotingClient
from rocketpy.config import BrokerConfig
from rocketpy.protocol import topics as t
from rocketpy.protocol.bodies import RegisterBrokerBody, TopicConfigSerializeWrapper
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.headers import (
    RegisterBrokerRequestHeader,
    RegisterBrokerResponseHeader,
    UnregisterBrokerRequestHeader,
)
from rocketpy.protocol.remoting import RemotingCommand

log = logging.getLogger("rocketpy.broker.control")

REGISTER_PERIOD_MS_MIN = limits.REGISTER_PERIOD_MS_MIN
REGISTER_PERIOD_MS_MAX = limits.REGISTER_PERIOD_MS_MAX
REGISTER_DEBOUNCE_MS = limits.REGISTER_DEBOUNCE_MS
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "127.0.0.1", "localhost", "::1"})


def broker_ip1(config: BrokerConfig) -> str:
    if config.broker_ip1:
        return config.broker_ip1
    if config.listen_host not in _WILDCARD_HOSTS:
        return config.listen_host
    return "127.0.0.1"


def broker_addr(config: BrokerConfig) -> str:
    return f"{broker_ip1(config)}:{config.listen_port}"


def ha_server_addr(config: BrokerConfig) -> str:
    return f"{config.broker_ip2 or broker_ip1(config)}:{config.listen_port + 1}"


def register_period_ms(config: BrokerConfig) -> int:
    return max(REGISTER_PERIOD_MS_MIN, min(REGISTER_PERIOD_MS_MAX, config.register_name_server_period_ms))


def registration_body(config: BrokerConfig, wrapper: TopicConfigSerializeWrapper) -> bytes:
    """RegisterBrokerBody JSON; a broker without R|W registers every topic with its own perm."""
    perm = config.broker_permission
    if not (t.is_readable(perm) and t.is_writeable(perm)):
        table = {name: dataclasses.replace(tc, perm=perm) for name, tc in wrapper.topic_config_table.items()}
        wrapper = TopicConfigSerializeWrapper(table, wrapper.data_version)
    return RegisterBrokerBody(wrapper).to_json()


def register_request(config: BrokerConfig, wrapper: TopicConfigSerializeWrapper) -> RemotingCommand:
    body = registration_body(config, wrapper)
    header = RegisterBrokerRequestHeader(
        broker_name=config.broker_name, broker_addr=broker_addr(config),
        cluster_name=config.broker_cluster_name, ha_server_addr=ha_server_addr(config),
        broker_id=config.broker_id, compressed=False, body_crc32=zlib.crc32(body) & 0x7FFFFFFF)
    return RemotingCommand.request(RequestCode.REGISTER_BROKER, header.to_ext(), body)


def unregister_request(config: BrokerConfig) -> RemotingCommand:
    header = UnregisterBrokerRequestHeader(
        broker_name=config.broker_name, broker_addr=broker_addr(config),
        cluster_name=config.broker_cluster_name, broker_id=config.broker_id)
    return RemotingCommand.request(RequestCode.UNREGISTER_BROKER, header.to_ext())


class Registrar:
    """Keeps this broker registered with every NameServer."""

    def __init__(self, config: BrokerConfig, wrapper: Callable[[], TopicConfigSerializeWrapper],
                 *, client: RemotingClient | None = None) -> None:
        self.config = config
        self.wrapper = wrapper
        self.addrs = config.namesrv_addrs
        self.timeout_ms = config.register_broker_timeout_ms
        self.client = client or RemotingClient(connect_timeout_ms=self.timeout_ms)
        self._soon = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0              # completed registration rounds (tests poll it)
        self.master_addr: str | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="control-register")

    def request_soon(self) -> None:
        """Register again shortly (after a topic change); collapses with other requests."""
        self._soon.set()

    async def _loop(self) -> None:
        period_s = register_period_ms(self.config) / 1000
        while True:
            self._soon.clear()
            await self.register_all()
            try:
                await asyncio.wait_for(self._soon.wait(), period_s)
                await asyncio.sleep(REGISTER_DEBOUNCE_MS / 1000)
            except TimeoutError:
                pass

    async def register_all(self) -> int:
        """One round; the number of NameServers that accepted the registration."""
        if not self.addrs:
            self.rounds += 1
            return 0
        cmd_wrapper = self.wrapper()
        results = await asyncio.gather(*(self._register_one(addr, cmd_wrapper) for addr in self.addrs))
        self.rounds += 1
        return sum(results)

    async def _register_one(self, addr: str, wrapper: TopicConfigSerializeWrapper) -> bool:
        cmd = register_request(self.config, wrapper)
        try:
            response = await asyncio.wait_for(self.client.invoke(addr, cmd, self.timeout_ms),
                                              self.timeout_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - a NameServer being down is never fatal
            log.warning("register broker with namesrv %s failed: %s", addr, exc or type(exc).__name__)
            self.client.close_connection(addr)
            return False
        if response.code != ResponseCode.SUCCESS:
            log.warning("register broker with namesrv %s refused: code %d %s", addr, response.code,
                        response.remark or "")
            return False
        try:
            result = RegisterBrokerResponseHeader.from_ext(response.ext_fields)
            if result.master_addr:
                self.master_addr = result.master_addr
        except Exception:  # noqa: BLE001 - optional header
            pass
        log.debug("registered with namesrv %s: %d topics, dataVersion %d", addr,
                  len(wrapper.topic_config_table), wrapper.data_version.counter)
        return True

    async def unregister_all(self) -> int:
        if not self.addrs:
            return 0
        results = await asyncio.gather(*(self._unregister_one(addr) for addr in self.addrs))
        return sum(results)

    async def _unregister_one(self, addr: str) -> bool:
        try:
            response = await asyncio.wait_for(
                self.client.invoke(addr, unregister_request(self.config), self.timeout_ms),
                self.timeout_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - best effort at shutdown
            log.warning("unregister broker from namesrv %s failed: %s", addr, exc or type(exc).__name__)
            return False
        if response.code != ResponseCode.SUCCESS:
            log.warning("unregister broker from namesrv %s refused: code %d %s", addr, response.code,
                        response.remark or "")
            return False
        log.info("unregistered from namesrv %s", addr)
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._task = None

    async def close(self) -> None:
        await self.stop()
        await self.client.close()
