"""Frozen configuration dataclasses that read RocketMQ `.properties` keys.

Each field is snake_case in Python and carries RocketMQ's camelCase key in its
metadata (`key`), plus any older spellings (`aliases`, e.g. RocketMQ's own
`mapedFileSizeCommitLog` typo), so an operator's broker.properties loads as is.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from rocketpy import limits
from rocketpy.errors import ConfigError

log = logging.getLogger("rocketpy.config")


class FlushDiskType(enum.Enum):
    SYNC_FLUSH = "SYNC_FLUSH"
    ASYNC_FLUSH = "ASYNC_FLUSH"


def _key(name: str, *aliases: str, doc: str = "") -> dict[str, Any]:
    return {"key": name, "aliases": aliases, "doc": doc}


@dataclasses.dataclass(frozen=True, slots=True)
class StoreConfig:
    """Settings of the on-disk store (RocketMQ's MessageStoreConfig)."""

    store_path_root_dir: str = dataclasses.field(
        default="store", metadata=_key("storePathRootDir", doc="root of all store files"))
    mapped_file_size_commitlog: int = dataclasses.field(
        default=limits.COMMITLOG_FILE_SIZE_DEFAULT,
        metadata=_key("mappedFileSizeCommitLog", "mapedFileSizeCommitLog", doc="CommitLog file size in bytes"))
    mapped_file_size_consumequeue: int = dataclasses.field(
        default=limits.CONSUMEQUEUE_ENTRIES_PER_FILE_DEFAULT * limits.CONSUMEQUEUE_ENTRY_SIZE,
        metadata=_key("mappedFileSizeConsumeQueue", "mapedFileSizeConsumeQueue",
                      doc="ConsumeQueue file size in bytes (a multiple of 20)"))
    max_hash_slot_num: int = dataclasses.field(
        default=limits.INDEX_HASH_SLOT_COUNT_DEFAULT, metadata=_key("maxHashSlotNum"))
    max_index_num: int = dataclasses.field(
        default=limits.INDEX_ENTRY_COUNT_DEFAULT, metadata=_key("maxIndexNum"))
    message_index_enable: bool = dataclasses.field(default=True, metadata=_key("messageIndexEnable"))
    flush_disk_type: FlushDiskType = dataclasses.field(
        default=FlushDiskType.ASYNC_FLUSH, metadata=_key("flushDiskType"))
    flush_interval_commitlog_ms: int = dataclasses.field(
        default=limits.FLUSH_INTERVAL_COMMITLOG_MS_DEFAULT, metadata=_key("flushIntervalCommitLog"))
    flush_commitlog_least_pages: int = dataclasses.field(
        default=limits.FLUSH_COMMITLOG_LEAST_PAGES_DEFAULT, metadata=_key("flushCommitLogLeastPages"))
    flush_commitlog_thorough_interval_ms: int = dataclasses.field(
        default=limits.FLUSH_COMMITLOG_THOROUGH_INTERVAL_MS_DEFAULT,
        metadata=_key("flushCommitLogThoroughInterval"))
    sync_flush_timeout_ms: int = dataclasses.field(
        default=limits.SYNC_FLUSH_TIMEOUT_MS_DEFAULT, metadata=_key("syncFlushTimeout"))
    flush_interval_consumequeue_ms: int = dataclasses.field(
        default=limits.FLUSH_INTERVAL_CONSUMEQUEUE_MS_DEFAULT, metadata=_key("flushIntervalConsumeQueue"))
    flush_consumequeue_least_pages: int = dataclasses.field(
        default=limits.FLUSH_CONSUMEQUEUE_LEAST_PAGES_DEFAULT, metadata=_key("flushConsumeQueueLeastPages"))
    flush_consumequeue_thorough_interval_ms: int = dataclasses.field(
        default=limits.FLUSH_CONSUMEQUEUE_THOROUGH_INTERVAL_MS_DEFAULT,
        metadata=_key("flushConsumeQueueThoroughInterval"))
    max_message_size: int = dataclasses.field(
        default=limits.MESSAGE_SIZE_MAX_DEFAULT, metadata=_key("maxMessageSize"))
    check_crc_on_recover: bool = dataclasses.field(default=True, metadata=_key("checkCRCOnRecover"))
    file_reserved_time_hours: int = dataclasses.field(
        default=limits.FILE_RESERVED_TIME_HOURS_DEFAULT, metadata=_key("fileReservedTime"))
    delete_when: str = dataclasses.field(default=limits.DELETE_WHEN_DEFAULT, metadata=_key("deleteWhen"))
    disk_max_used_space_ratio_percent: int = dataclasses.field(
        default=limits.DISK_MAX_USED_SPACE_RATIO_PERCENT_DEFAULT, metadata=_key("diskMaxUsedSpaceRatio"))
    disk_space_clean_forcibly_ratio: float = dataclasses.field(
        default=limits.DISK_SPACE_CLEAN_FORCIBLY_RATIO_DEFAULT,
        metadata=_key("diskSpaceCleanForciblyRatio", "rocketmq.broker.diskSpaceCleanForciblyRatio"))
    disk_space_warning_level_ratio: float = dataclasses.field(
        default=limits.DISK_SPACE_WARNING_LEVEL_RATIO_DEFAULT,
        metadata=_key("diskSpaceWarningLevelRatio", "rocketmq.broker.diskSpaceWarningLevelRatio"))
    clean_resource_interval_ms: int = dataclasses.field(
        default=limits.CLEAN_RESOURCE_INTERVAL_MS_DEFAULT, metadata=_key("cleanResourceInterval"))
    clean_file_forcibly_enable: bool = dataclasses.field(default=True, metadata=_key("cleanFileForciblyEnable"))
    message_delay_level: str = dataclasses.field(
        default=limits.MESSAGE_DELAY_LEVEL_DEFAULT, metadata=_key("messageDelayLevel"))

    def __post_init__(self) -> None:
        if self.mapped_file_size_consumequeue % limits.CONSUMEQUEUE_ENTRY_SIZE:
            raise ConfigError(
                f"mappedFileSizeConsumeQueue={self.mapped_file_size_consumequeue} must be a multiple of "
                f"{limits.CONSUMEQUEUE_ENTRY_SIZE}; pick e.g. 6000000")
        if self.mapped_file_size_commitlog < 4096:
            raise ConfigError(f"mappedFileSizeCommitLog={self.mapped_file_size_commitlog} is below 4096 bytes")
        if self.max_message_size <= 0:
            raise ConfigError(f"maxMessageSize={self.max_message_size} must be positive")
        parse_message_delay_level(self.message_delay_level)

    @property
    def delay_levels_ms(self) -> tuple[int, ...]:
        """Delay of each level in ms, level 1 first (messageDelayLevel, validated at construction)."""
        return parse_message_delay_level(self.message_delay_level)


_DELAY_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_message_delay_level(text: str) -> tuple[int, ...]:
    """messageDelayLevel ("1s 5s 10s 30s 1m ... 2h"; units s m h d) -> the delay of each level in ms.

    RocketMQ's ScheduleMessageService.parseDelayLevel; a bad word is a ConfigError here rather
    than a broker that starts with no delay levels, as Java's does.
    """
    words = text.split()
    if not words:
        raise ConfigError("messageDelayLevel is empty; give delays like \"1s 5s 10s 30s 1m 2m\"")
    if len(words) > limits.DELAY_LEVEL_COUNT_MAX:
        raise ConfigError(f"messageDelayLevel has {len(words)} levels; at most {limits.DELAY_LEVEL_COUNT_MAX} "
                          "are allowed")
    out: list[int] = []
    for i, word in enumerate(words, 1):
        unit = _DELAY_UNIT_MS.get(word[-1:])
        number = word[:-1]
        if unit is None or not number.isascii() or not number.isdigit() or int(number) <= 0:
            raise ConfigError(f"messageDelayLevel level {i} is {word!r}; write a positive whole number "
                              "followed by s, m, h or d, e.g. 5s or 2h")
        out.append(int(number) * unit)
    return tuple(out)


class BrokerRole(enum.Enum):
    ASYNC_MASTER = "ASYNC_MASTER"
    SYNC_MASTER = "SYNC_MASTER"
    SLAVE = "SLAVE"


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Broker settings (RocketMQ's BrokerConfig + NettyServerConfig keys); store keys live in StoreConfig."""

    broker_cluster_name: str = dataclasses.field(default="DefaultCluster", metadata=_key("brokerClusterName"))
    broker_name: str = dataclasses.field(default="broker-a", metadata=_key("brokerName"))
    broker_id: int = dataclasses.field(default=0, metadata=_key("brokerId"))
    broker_role: BrokerRole = dataclasses.field(default=BrokerRole.ASYNC_MASTER, metadata=_key("brokerRole"))
    namesrv_addr: str = dataclasses.field(
        default="", metadata=_key("namesrvAddr", doc="NameServer addresses, host:port;host:port"))
    listen_port: int = dataclasses.field(default=10911, metadata=_key("listenPort"))
    listen_host: str = dataclasses.field(
        default="0.0.0.0", metadata=_key("listenHost", doc="rocketpy: address the broker binds"))
    broker_ip1: str = dataclasses.field(
        default="", metadata=_key("brokerIP1", doc="address clients reach the broker at (default: auto)"))
    broker_ip2: str = dataclasses.field(default="", metadata=_key("brokerIP2"))
    broker_permission: int = dataclasses.field(default=6, metadata=_key("brokerPermission"))
    auto_create_topic_enable: bool = dataclasses.field(default=True, metadata=_key("autoCreateTopicEnable"))
    auto_create_subscription_group: bool = dataclasses.field(
        default=True, metadata=_key("autoCreateSubscriptionGroup"))
    default_topic_queue_nums: int = dataclasses.field(default=8, metadata=_key("defaultTopicQueueNums"))
    cluster_topic_enable: bool = dataclasses.field(default=True, metadata=_key("clusterTopicEnable"))
    broker_topic_enable: bool = dataclasses.field(default=True, metadata=_key("brokerTopicEnable"))
    register_name_server_period_ms: int = dataclasses.field(
        default=30_000, metadata=_key("registerNameServerPeriod"))
    register_broker_timeout_ms: int = dataclasses.field(default=6000, metadata=_key("registerBrokerTimeoutMills"))
    client_channel_max_idle_time_s: int = dataclasses.field(
        default=120, metadata=_key("serverChannelMaxIdleTimeSeconds", "clientChannelMaxIdleTimeSeconds"))
    client_expiry_ms: int = dataclasses.field(
        default=120_000, metadata=_key("channelExpiredTimeout", doc="client heartbeat expiry"))
    long_polling_enable: bool = dataclasses.field(default=True, metadata=_key("longPollingEnable"))
    short_polling_time_ms: int = dataclasses.field(default=1000, metadata=_key("shortPollingTimeMills"))
    flush_consumer_offset_interval_ms: int = dataclasses.field(
        default=5000, metadata=_key("flushConsumerOffsetInterval"))
    reject_transaction_message: bool = dataclasses.field(default=False, metadata=_key("rejectTransactionMessage"))
    transaction_timeout_ms: int = dataclasses.field(default=6000, metadata=_key("transactionTimeOut"))
    transaction_check_max: int = dataclasses.field(default=15, metadata=_key("transactionCheckMax"))
    transaction_check_interval_ms: int = dataclasses.field(
        default=60_000, metadata=_key("transactionCheckInterval"))
    trace_topic_enable: bool = dataclasses.field(default=False, metadata=_key("traceTopicEnable"))
    region_id: str = dataclasses.field(default="DefaultRegion", metadata=_key("regionId"))
    worker_count: int = dataclasses.field(
        default=0, metadata=_key("workerCount", doc="rocketpy: reader/protocol worker processes (0 = cores)"))
    heartbeat_timeout_ms: int = dataclasses.field(
        default=30_000, metadata=_key("childHeartbeatTimeout", doc="rocketpy: a child silent this long is hung"))
    metrics_port: int = dataclasses.field(
        default=-1, metadata=_key("metricsPort", doc="rocketpy: Prometheus GET /metrics port, served by control "
                                  "(-1 = listenPort + 5, 0 = off)"))
    enable_property_filter: bool = dataclasses.field(
        default=False, metadata=_key("enablePropertyFilter", doc="serve SQL92 subscriptions"))

    def __post_init__(self) -> None:
        if not 0 < self.listen_port < 65536:
            raise ConfigError(f"listenPort={self.listen_port} is not a TCP port; use 1..65535")
        if self.broker_id < 0:
            raise ConfigError(f"brokerId={self.broker_id} must be 0 (master) or a positive slave id")
        if not 1 <= self.default_topic_queue_nums <= 1024:
            raise ConfigError(f"defaultTopicQueueNums={self.default_topic_queue_nums} must be 1..1024")
        if self.broker_permission & ~0xF:
            raise ConfigError(f"brokerPermission={self.broker_permission} has bits outside 0..15")
        if not self.broker_name or any(c.isspace() for c in self.broker_name):
            raise ConfigError(f"brokerName={self.broker_name!r} must be a non-empty name without spaces")

    @property
    def metrics_listen_port(self) -> int:
        """The metrics endpoint's port, 0 when disabled."""
        if self.metrics_port < 0:
            return self.listen_port + limits.METRICS_PORT_OFFSET if self.listen_port + limits.METRICS_PORT_OFFSET < 65536 else 0
        return self.metrics_port

    @property
    def namesrv_addrs(self) -> list[str]:
        return [a.strip() for a in self.namesrv_addr.replace(",", ";").split(";") if a.strip()]


T = TypeVar("T")


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java `.properties` text (key=value or key: value, # and ! comments)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        for sep_pos, ch in enumerate(line):
            if ch in "=:":
                key, value = line[:sep_pos].strip(), line[sep_pos + 1:].strip()
                break
        else:
            key, value = line, ""
        out[key] = value
    return out


def _convert(field: dataclasses.Field[Any], raw: Any) -> Any:
    key = field.metadata.get("key", field.name)
    ftype = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    text = str(raw).strip()
    try:
        if ftype == "bool":
            low = text.lower()
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
            raise ValueError(text)
        if ftype == "int":
            return int(text)
        if ftype == "float":
            value = float(text)
            # RocketMQ writes ratios both as 0.85 and as percent in places.
            return value
        if ftype == "FlushDiskType":
            return FlushDiskType(text.upper())
        if ftype == "BrokerRole":
            return BrokerRole(text.upper())
        if ftype == "str":
            return text
    except ValueError:
        raise ConfigError(f"{key}={text!r} is not a valid {ftype}; fix it in the config file") from None
    raise ConfigError(f"{key}: unsupported type {ftype}")


def config_from_properties(cls: type[T], props: Mapping[str, Any], *, warn_unknown: bool = True,
                           known_elsewhere: frozenset[str] = frozenset()) -> T:
    """Build a frozen config from RocketMQ keys; bad values raise ConfigError naming the key."""
    by_key: dict[str, dataclasses.Field[Any]] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        by_key[f.metadata.get("key", f.name)] = f
        by_key[f.name] = f
        for alias in f.metadata.get("aliases", ()):
            by_key[alias] = f
    kwargs: dict[str, Any] = {}
    for key, raw in props.items():
        field = by_key.get(key)
        if field is None:
            if warn_unknown and key not in known_elsewhere:
                log.warning("unknown config key %s ignored", key)
            continue
        kwargs[field.name] = _convert(field, raw)
    return cls(**kwargs)


def config_keys(cls: type[Any]) -> frozenset[str]:
    """Every RocketMQ key (and alias) a config class understands."""
    keys: set[str] = set()
    for f in dataclasses.fields(cls):
        keys.add(f.metadata.get("key", f.name))
        keys.update(f.metadata.get("aliases", ()))
    return frozenset(keys)


def load_broker_config(props: Mapping[str, Any]) -> tuple[BrokerConfig, StoreConfig]:
    """Split one broker.properties into broker and store settings; unknown keys are warned about."""
    store_keys = config_keys(StoreConfig)
    broker_keys = config_keys(BrokerConfig)
    broker_props = {k: v for k, v in props.items() if k not in store_keys}
    store_props = {k: v for k, v in props.items() if k in store_keys}
    broker = config_from_properties(BrokerConfig, broker_props, known_elsewhere=store_keys)
    store = config_from_properties(StoreConfig, store_props, known_elsewhere=broker_keys)
    return broker, store
