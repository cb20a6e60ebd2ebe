"""SubscriptionGroupManager: consumer group configs, persisted in `config/subscriptionGroup.json`.

RocketMQ's SubscriptionGroupManager (storage-format.md §8): a group is
auto-created with the defaults on first use when `autoCreateSubscriptionGroup`
(default true); a few internal groups exist from the start, as in Java.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any, ClassVar, Self

from rocketpy.broker.control import persist
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.errors import ProtocolError
from rocketpy.protocol import topics as t
from rocketpy.protocol.bodies import (
    INT32_MAX,
    INT32_MIN,
    DataVersion,
    JsonBody,
    as_map,
    as_obj,
    get_bool,
    get_int,
    req_str,
)

log = logging.getLogger("rocketpy.broker.control")

GROUPS_FILE = "subscriptionGroup.json"

# Created at start with consumeBroadcastEnable, as Java's SubscriptionGroupManager.init does.
INTERNAL_GROUPS = (
    t.TOOLS_CONSUMER_GROUP, "FILTERSRV_CONSUMER", "SELF_TEST_C_GROUP", "CID_ONS-HTTP-PROXY",
    "CID_ONSAPI_PULL", "CID_ONSAPI_PERMISSION", "CID_ONSAPI_OWNER", t.CID_RMQ_SYS_TRANS,
)


def _i32(d: dict[str, Any], key: str, what: str, default: int) -> int:
    return get_int(d, key, what, default, INT32_MIN, INT32_MAX)


@dataclasses.dataclass(frozen=True, slots=True)
class SubscriptionGroupConfig(JsonBody):
    WHAT: ClassVar[str] = "SubscriptionGroupConfig"
    group_name: str
    consume_enable: bool = True
    consume_from_min_enable: bool = True
    consume_broadcast_enable: bool = True
    retry_queue_nums: int = 1
    retry_max_times: int = 16
    broker_id: int = 0
    which_broker_when_consume_slowly: int = 1
    notify_consumer_ids_changed_enable: bool = True

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None, *, default_name: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        name = d.get("groupName")
        return cls(
            group_name=req_str(d, "groupName", w) if name is not None or default_name is None else default_name,
            consume_enable=get_bool(d, "consumeEnable", w, True),
            consume_from_min_enable=get_bool(d, "consumeFromMinEnable", w, True),
            consume_broadcast_enable=get_bool(d, "consumeBroadcastEnable", w, True),
            retry_queue_nums=_i32(d, "retryQueueNums", w, 1),
            retry_max_times=_i32(d, "retryMaxTimes", w, 16),
            broker_id=get_int(d, "brokerId", w, 0),
            which_broker_when_consume_slowly=get_int(d, "whichBrokerWhenConsumeSlowly", w, 1),
            notify_consumer_ids_changed_enable=get_bool(d, "notifyConsumerIdsChangedEnable", w, True),
        )

    def to_obj(self) -> dict[str, Any]:
        return {
            "groupName": self.group_name, "consumeEnable": self.consume_enable,
            "consumeFromMinEnable": self.consume_from_min_enable,
            "consumeBroadcastEnable": self.consume_broadcast_enable,
            "retryQueueNums": self.retry_queue_nums, "retryMaxTimes": self.retry_max_times,
            "brokerId": self.broker_id, "whichBrokerWhenConsumeSlowly": self.which_broker_when_consume_slowly,
            "notifyConsumerIdsChangedEnable": self.notify_consumer_ids_changed_enable,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class SubscriptionGroupWrapper(JsonBody):
    """`subscriptionGroup.json` and the GET_ALL_SUBSCRIPTIONGROUP_CONFIG body."""

    WHAT: ClassVar[str] = "SubscriptionGroupWrapper"
    subscription_group_table: dict[str, SubscriptionGroupConfig] = dataclasses.field(default_factory=dict)
    data_version: DataVersion = DataVersion()

    @classmethod
    def from_obj(cls, obj: Any, what: str | None = None) -> Self:
        w = what or cls.WHAT
        d = as_obj(obj, w)
        table = {name: SubscriptionGroupConfig.from_obj(v, f"{w}.subscriptionGroupTable[{name}]",
                                                        default_name=name)
                 for name, v in as_map(d.get("subscriptionGroupTable"), f"{w}.subscriptionGroupTable").items()}
        dv = d.get("dataVersion")
        return cls(table, DataVersion() if dv is None else DataVersion.from_obj(dv, f"{w}.dataVersion"))

    def to_obj(self) -> dict[str, Any]:
        return {"subscriptionGroupTable": {k: v.to_obj() for k, v in self.subscription_group_table.items()},
                "dataVersion": self.data_version.to_obj()}


def _valid_group(group: str) -> bool:
    try:
        t.validate_group(group)
    except ProtocolError as exc:
        log.warning("subscription group not auto-created: %s", exc)
        return False
    return True


class SubscriptionGroupManager:
    def __init__(self, config_dir: str, *, auto_create: bool = True, clock: Clock = SYSTEM_CLOCK,
                 on_change: Callable[[], None] | None = None) -> None:
        self.path = os.path.join(config_dir, GROUPS_FILE)
        self.auto_create = auto_create
        self.clock = clock
        self.on_change = on_change
        self.table: dict[str, SubscriptionGroupConfig] = {}
        self.data_version = DataVersion()

    def load(self) -> None:
        self.table = {g: SubscriptionGroupConfig(g) for g in INTERNAL_GROUPS}
        wrapper = persist.load_json(self.path, SubscriptionGroupWrapper.from_obj)
        if wrapper is not None:
            self.table.update(wrapper.subscription_group_table)
            self.data_version = wrapper.data_version
        log.info("subscription groups loaded: %d groups", len(self.table))

    def persist(self) -> None:
        persist.write_json(self.path, self.wrapper().to_obj())

    def wrapper(self) -> SubscriptionGroupWrapper:
        return SubscriptionGroupWrapper(dict(self.table), self.data_version)

    def _changed(self) -> None:
        self.data_version = self.data_version.next(self.clock.now_ms())
        self.persist()
        if self.on_change is not None:
            self.on_change()

    def get(self, group: str) -> SubscriptionGroupConfig | None:
        return self.table.get(group)

    def find_or_create(self, group: str) -> SubscriptionGroupConfig | None:
        """findSubscriptionGroupConfig: the group's config, auto-created if allowed; else None."""
        config = self.table.get(group)
        if config is None and self.auto_create and _valid_group(group):
            config = SubscriptionGroupConfig(group)
            self.table[group] = config
            log.info("subscription group auto-created: %s", group)
            self._changed()
        return config

    def update(self, config: SubscriptionGroupConfig) -> None:
        t.validate_group(config.group_name)
        old = self.table.get(config.group_name)
        self.table[config.group_name] = config
        log.info("subscription group %s: %s", "updated" if old else "created", config.to_obj())
        self._changed()

    def delete(self, group: str) -> bool:
        if self.table.pop(group, None) is None:
            return False
        log.info("subscription group deleted: %s", group)
        self._changed()
        return True
