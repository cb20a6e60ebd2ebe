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
