"""Builders shared by the store tests: records as PutRequests, tiny store configs."""

from __future__ import annotations

import dataclasses

from rocketpy.config import StoreConfig
from rocketpy.protocol.message import (
    PROPERTY_KEYS,
    PROPERTY_TAGS,
    PROPERTY_UNIQ_KEY,
    MessageRecord,
    encode_record,
    format_properties,
)
from rocketpy.store.api import PutRequest

TINY_COMMITLOG_FILE_SIZE = 4096
TINY_CQ_ENTRIES = 10
TINY_INDEX_SLOTS = 16
TINY_INDEX_ENTRIES = 64


def make_record(topic: str, queue_id: int, body: bytes, tags: str | None = None,
                keys: str | None = None, uniq_key: str | None = None, sys_flag: int = 0,
                born_timestamp: int = 1_700_000_000_000) -> PutRequest:
    props: dict[str, str] = {}
    if tags:
        props[PROPERTY_TAGS] = tags
    if keys:
        props[PROPERTY_KEYS] = keys
    if uniq_key:
        props[PROPERTY_UNIQ_KEY] = uniq_key
    data = encode_record(MessageRecord(
        topic=topic, body=body, queue_id=queue_id, sys_flag=sys_flag, born_timestamp=born_timestamp,
        born_host="127.0.0.1", born_port=40000, store_host="127.0.0.1", store_port=10911,
        properties=format_properties(props)))
    return PutRequest(topic=topic, queue_id=queue_id, sys_flag=sys_flag, data=data)


def copy_request(req: PutRequest) -> PutRequest:
    """A request with its own buffer (stores patch `data` in place)."""
    return dataclasses.replace(req, data=bytearray(req.data))


def tiny_config(root: str, **overrides: object) -> StoreConfig:
    fields: dict[str, object] = dict(
        store_path_root_dir=root,
        mapped_file_size_commitlog=TINY_COMMITLOG_FILE_SIZE,
        mapped_file_size_consumequeue=TINY_CQ_ENTRIES * 20,
        max_hash_slot_num=TINY_INDEX_SLOTS,
        max_index_num=TINY_INDEX_ENTRIES,
        max_message_size=2048,
        delete_when="99",            # never a delete hour: tests force passes explicitly
    )
    fields.update(overrides)
    return StoreConfig(**fields)  # type: ignore[arg-type]
