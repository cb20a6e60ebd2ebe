"""Config loads RocketMQ .properties keys, names the key of a bad value, warns on unknown keys."""

from __future__ import annotations

import logging

import pytest

from rocketpy.config import (
    BrokerConfig,
    BrokerRole,
    FlushDiskType,
    StoreConfig,
    config_from_properties,
    load_broker_config,
    parse_properties,
)
from rocketpy.errors import ConfigError

BROKER_PROPERTIES = """
# a RocketMQ 4.x broker.properties as operators write it
brokerClusterName = DefaultCluster
brokerName=broker-a
brokerId=0
deleteWhen=04
fileReservedTime=48
brokerRole=SYNC_MASTER
flushDiskType=SYNC_FLUSH
namesrvAddr=127.0.0.1:9876;127.0.0.1:9877
mapedFileSizeCommitLog=1073741824
storePathRootDir: /var/lib/rocketpy/store
! a bang comment
autoCreateTopicEnable=false
"""


def test_rocketmq_broker_properties_load():
    broker, store = load_broker_config(parse_properties(BROKER_PROPERTIES))
    assert broker.broker_name == "broker-a" and broker.broker_role is BrokerRole.SYNC_MASTER
    assert broker.namesrv_addrs == ["127.0.0.1:9876", "127.0.0.1:9877"]
    assert broker.auto_create_topic_enable is False
    assert store.flush_disk_type is FlushDiskType.SYNC_FLUSH
    assert store.file_reserved_time_hours == 48
    assert store.store_path_root_dir == "/var/lib/rocketpy/store"
    assert store.mapped_file_size_commitlog == 1 << 30


@pytest.mark.parametrize("key,value,cls", [
    ("listenPort", "abc", BrokerConfig),
    ("listenPort", "70000", BrokerConfig),
    ("brokerRole", "LEADER", BrokerConfig),
    ("flushDiskType", "SOMETIMES", StoreConfig),
    ("autoCreateTopicEnable", "maybe", BrokerConfig),
    ("mappedFileSizeConsumeQueue", "6000001", StoreConfig),
])
def test_bad_values_are_refused_naming_the_key(key, value, cls):
    with pytest.raises(ConfigError) as err:
        config_from_properties(cls, {key: value})
    assert key in str(err.value)


def test_unknown_keys_are_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="rocketpy.config"):
        load_broker_config({"brokerName": "b", "noSuchKey": "1", "maxMessageSize": "1024"})
    assert "noSuchKey" in caplog.text
    assert "maxMessageSize" not in caplog.text

