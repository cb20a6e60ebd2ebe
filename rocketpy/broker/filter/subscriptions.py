"""Consumer subscriptions as the broker's processes share them, and the filter a pull applies.

Control learns each consumer group's subscriptions from heartbeats (RocketMQ's
ConsumerManager) and sends the whole table to every worker as the private oneway
SUBSCRIPTIONS_CHANGED (body below) after each change and on WORKER_HELLO, so a
pull without the SUBSCRIPTION sysFlag (Java push consumers by default) is served
with the subscription the client registered, as PullMessageProcessor does::

    {"groups": {"<group>": {"messageModel": "CLUSTERING",
                            "subscriptions": [<SubscriptionData JSON>, ...]}, ...}}

A pull's filter (`MessageFilter`) is RocketMQ's ExpressionMessageFilter: the
TAG hash codes checked on the ConsumeQueue entry, and for SQL92 a compiled
selector evaluated on each candidate record's properties read from the mapped
CommitLog. Selectors are compiled once per expression text (so once per
group, topic and subVersion, since a new subVersion brings a new text or the
same one) and kept in a bounded cache, failures included.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from rocketpy import limits
from rocketpy.broker.filter.sql92 import Selector, SelectorError, compile_selector
from rocketpy.errors import ProtocolError
from rocketpy.protocol.bodies import (
    EXPRESSION_TYPE_SQL92,
    EXPRESSION_TYPE_TAG,
    MessageModel,
    SubscriptionData,
    as_map,
    as_obj,
    dumps,
    get_list_of,
    parse_json_lenient,
)
from rocketpy.protocol.message import record_properties

SELECTOR_CACHE_MAX = limits.SQL92_SELECTOR_CACHE_MAX
REMARK_SQL92_DISABLED = "The broker does not support consumer to filter message by {}"


@dataclasses.dataclass(frozen=True, slots=True)
class GroupSubscriptions:
    """What a worker knows of one consumer group: its message model and topic -> subscription."""

    message_model: MessageModel
    subscriptions: Mapping[str, SubscriptionData]


def encode_subscriptions(groups: Iterable[tuple[str, MessageModel, Iterable[SubscriptionData]]]) -> bytes:
    """The SUBSCRIPTIONS_CHANGED body from (group, message model, subscriptions) triples."""
    return dumps({"groups": {
        group: {"messageModel": model.name, "subscriptions": [s.to_obj() for s in subs]}
        for group, model, subs in groups}})


def decode_subscriptions(body: bytes) -> dict[str, GroupSubscriptions]:
    doc = as_obj(parse_json_lenient(body), "SUBSCRIPTIONS_CHANGED")
    table = as_map(doc.get("groups"), "SUBSCRIPTIONS_CHANGED.groups")
    out: dict[str, GroupSubscriptions] = {}
    for group, obj in table.items():
        what = f"SUBSCRIPTIONS_CHANGED.groups[{group}]"
        d = as_obj(obj, what)
        model_name = d.get("messageModel", MessageModel.CLUSTERING.name)
        try:
            model = MessageModel[str(model_name)]
        except KeyError:
            raise ProtocolError(f"{what}.messageModel {model_name!r} is not a message model") from None
        subs = get_list_of(d, "subscriptions", what, lambda o, w: SubscriptionData.from_obj(o, w))
        out[group] = GroupSubscriptions(model, {s.topic: s for s in subs})
    return out


class SelectorCache:
    """Compiled SQL92 selectors by expression text, bounded (least recently used goes first)."""

    def __init__(self, capacity: int = SELECTOR_CACHE_MAX) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Selector | SelectorError] = OrderedDict()

    def get(self, text: str) -> Selector:
        """The compiled selector; SelectorError (cached too) if the text does not compile."""
        item = self._items.get(text)
        if item is None:
            try:
                item = compile_selector(text)
            except SelectorError as exc:
                item = exc
            self._items[text] = item
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(text)
        if isinstance(item, SelectorError):
            raise item
        return item

    def __len__(self) -> int:
        return len(self._items)


def subscription_problem(sub: SubscriptionData, enable_property_filter: bool,
                         cache: SelectorCache | None = None) -> tuple[bool, str] | None:
    """Why the broker cannot serve sub, or None. (parse_failed, remark): parse_failed is False
    when the broker refuses the expression type itself (SQL92 while enablePropertyFilter is off),
    which RocketMQ answers SYSTEM_ERROR rather than SUBSCRIPTION_PARSE_FAILED."""
    if sub.expression_type == EXPRESSION_TYPE_TAG:
        return None
    if sub.expression_type != EXPRESSION_TYPE_SQL92:
        return True, (f"the expression type {sub.expression_type!r} of the subscription to {sub.topic} is not "
                      f"{EXPRESSION_TYPE_TAG} or {EXPRESSION_TYPE_SQL92}")
    if not enable_property_filter:
        return False, REMARK_SQL92_DISABLED.format(sub.expression_type) + \
            "; set enablePropertyFilter=true on the broker or subscribe by tag"
    try:
        (cache.get(sub.sub_string) if cache is not None else compile_selector(sub.sub_string))
    except SelectorError as exc:
        return True, f"the subscription to {sub.topic} does not compile: {exc}"
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class MessageFilter:
    """A pull's filter: tag codes on the ConsumeQueue entry (None = all), then the SQL92 selector
    on the record's properties (None = no SQL92)."""

    tag_codes: frozenset[int] | None = None
    selector: Selector | None = None

    def record_filter(self) -> Any:
        """The store's record filter, or None when only tags (or nothing) filter."""
        selector = self.selector
        if selector is None:
            return None

        def matches(record: memoryview) -> bool:
            try:
                props = record_properties(record)
            except ProtocolError:
                return False
            return selector.matches(props)

        return matches


MATCH_ALL = MessageFilter()
