"""The client registry: RocketMQ's ConsumerManager, ProducerManager and RebalanceLockManager.

A client connection is known by its connection key (`internal.connection_key`:
the worker slot that holds it and that worker's connection id). HEART_BEAT
registers a client's producer and consumer groups and a consumer group's
subscriptions; UNREGISTER_CLIENT, a closed connection (CLIENT_CONNECTION_CLOSED
from the worker, or the worker's own socket to control going away) and silence
longer than the expiry remove it. Whenever the set of connections or the
subscribed topics of a consumer group change, and the group's
`notifyConsumerIdsChangedEnable` is on, NOTIFY_CONSUMER_IDS_CHANGED (a oneway
request) is pushed to every connection of the group through `push`
(remoting-protocol.md §9.1, §9.5, §9.6). Queue locks (§9.9) expire after
`lock_max_live_ms` without renewal.

Everything here is plain in-memory state driven by an injectable clock; the
server calls it from its event loop.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterable

from rocketpy.broker.internal import connection_key
from rocketpy.clock import SYSTEM_CLOCK, Clock
from rocketpy.protocol.bodies import (
    ConsumeFromWhere,
    ConsumerData,
    ConsumeType,
    MessageModel,
    MessageQueue,
    SubscriptionData,
)
from rocketpy.protocol.codes import RequestCode
from rocketpy.protocol.headers import NotifyConsumerIdsChangedRequestHeader
from rocketpy.protocol.remoting import RemotingCommand, encode_frame

log = logging.getLogger("rocketpy.broker.control")

CLIENT_EXPIRY_MS_DEFAULT = 120_000
CLIENT_SCAN_INTERVAL_MS_DEFAULT = 10_000
LOCK_MAX_LIVE_MS_DEFAULT = 60_000     # rocketmq.broker.rebalance.lockMaxLiveTime

# push(worker_slot, conn_id, frame): write one encoded request to a client connection.
Push = Callable[[int, int, bytes], None]
# group -> notify enabled? (the group's notifyConsumerIdsChangedEnable)
NotifyEnabled = Callable[[str], bool]

_opaques = itertools.count(1)


@dataclasses.dataclass(slots=True)
class ClientChannel:
    """One client connection as control knows it (RocketMQ's ClientChannelInfo)."""

    worker_slot: int
    conn_id: int
    client_id: str
    language: str = "JAVA"
    version: int = 0
    client_addr: str = ""
    last_update_ms: int = 0

    @property
    def key(self) -> str:
        return connection_key(self.worker_slot, self.conn_id)


@dataclasses.dataclass(slots=True)
class ConsumerGroupInfo:
    group_name: str
    consume_type: ConsumeType = ConsumeType.CONSUME_PASSIVELY
    message_model: MessageModel = MessageModel.CLUSTERING
    consume_from_where: ConsumeFromWhere = ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
    channels: dict[str, ClientChannel] = dataclasses.field(default_factory=dict)
    subscriptions: dict[str, SubscriptionData] = dataclasses.field(default_factory=dict)
    last_update_ms: int = 0

    def client_ids(self) -> list[str]:
        return list(dict.fromkeys(ch.client_id for ch in self.channels.values()))

    def update_channel(self, channel: ClientChannel) -> bool:
        """True if the connection is new to the group."""
        old = self.channels.get(channel.key)
        self.channels[channel.key] = channel
        return old is None or old.client_id != channel.client_id

    def update_subscriptions(self, subs: Iterable[SubscriptionData]) -> bool:
        """True if the set of subscribed topics changed (Java: updateSubscription)."""
        changed = False
        new = {s.topic: s for s in subs}
        for topic, sub in new.items():
            old = self.subscriptions.get(topic)
            if old is None:
                self.subscriptions[topic] = sub
                changed = True
            elif sub.sub_version > old.sub_version or sub != old:
                self.subscriptions[topic] = sub
        for topic in [tp for tp in self.subscriptions if tp not in new]:
            del self.subscriptions[topic]
            changed = True
        return changed


class ConsumerManager:
    def __init__(self, push: Push, *, notify_enabled: NotifyEnabled | None = None,
                 clock: Clock = SYSTEM_CLOCK, expiry_ms: int = CLIENT_EXPIRY_MS_DEFAULT,
                 on_subscriptions_changed: Callable[[], None] | None = None) -> None:
        self.push = push
        # Called when a group appears or goes, or its message model or subscriptions change
        # (control then sends the workers SUBSCRIPTIONS_CHANGED).
        self.on_subscriptions_changed = on_subscriptions_changed or (lambda: None)
        self.notify_enabled = notify_enabled or (lambda group: True)
        self.clock = clock
        self.expiry_ms = expiry_ms
        self.groups: dict[str, ConsumerGroupInfo] = {}

    def get(self, group: str) -> ConsumerGroupInfo | None:
        return self.groups.get(group)

    def consumer_ids(self, group: str) -> list[str]:
        info = self.groups.get(group)
        return info.client_ids() if info is not None else []

    def find_channel(self, group: str, client_id: str) -> ClientChannel | None:
        """The connection of a client in a group (for broker -> client requests such as reset offset)."""
        info = self.groups.get(group)
        if info is None:
            return None
        for ch in info.channels.values():
            if ch.client_id == client_id:
                return ch
        return None

    def register(self, channel: ClientChannel, data: ConsumerData) -> bool:
        """registerConsumer: True if the group changed (and was notified if enabled)."""
        channel.last_update_ms = self.clock.monotonic_ms()
        group = data.group_name
        info = self.groups.get(group)
        if info is None:
            info = ConsumerGroupInfo(group)
            self.groups[group] = info
            before: tuple[MessageModel, dict[str, SubscriptionData]] | None = None
        else:
            before = (info.message_model, dict(info.subscriptions))
        info.consume_type = data.consume_type
        info.message_model = data.message_model
        info.consume_from_where = data.consume_from_where
        info.last_update_ms = channel.last_update_ms
        joined = info.update_channel(channel)
        subs_changed = info.update_subscriptions(data.subscription_data_set)
        if before != (info.message_model, info.subscriptions):
            self.on_subscriptions_changed()
        if joined:
            log.info("consumer joined: group=%s client=%s conn=%s addr=%s", group, channel.client_id,
                     channel.key, channel.client_addr)
        if joined or subs_changed:
            self.notify_group(group)
            return True
        return False

    def unregister(self, group: str, conn_key: str) -> bool:
        """unregisterConsumer: drop one connection from a group; notify the rest."""
        info = self.groups.get(group)
        if info is None or info.channels.pop(conn_key, None) is None:
            return False
        log.info("consumer left: group=%s conn=%s", group, conn_key)
        if not info.channels:
            del self.groups[group]
            self.on_subscriptions_changed()
        else:
            self.notify_group(group)
        return True

    def connection_closed(self, conn_key: str) -> list[str]:
        """doChannelCloseEvent: remove the connection from every group; the groups it left."""
        left = [g for g, info in self.groups.items() if conn_key in info.channels]
        for group in left:
            self.unregister(group, conn_key)
        return left

    def worker_gone(self, worker_slot: int) -> int:
        """A worker's socket closed: every connection it held is gone. The number dropped."""
        prefix = f"{worker_slot}:"
        return self._remove_where(lambda key, ch: key.startswith(prefix), "worker gone")

    def scan_expired(self) -> list[str]:
        """scanNotActiveChannel: drop connections silent for longer than the expiry."""
        now = self.clock.monotonic_ms()
        expired: list[str] = []

        def silent(key: str, ch: ClientChannel) -> bool:
            if now - ch.last_update_ms > self.expiry_ms:
                log.warning("consumer expired: client=%s conn=%s silent %d ms", ch.client_id, key,
                            now - ch.last_update_ms)
                expired.append(key)
                return True
            return False

        self._remove_where(silent, "expired")
        return expired

    def _remove_where(self, doomed: Callable[[str, ClientChannel], bool], why: str) -> int:
        """Remove matching connections from every group, then notify each changed group once."""
        changed: list[str] = []
        count = 0
        gone = False
        for group, info in list(self.groups.items()):
            keys = [k for k, ch in info.channels.items() if doomed(k, ch)]
            if not keys:
                continue
            for key in keys:
                del info.channels[key]
            count += len(keys)
            log.info("consumers left: group=%s count=%d (%s)", group, len(keys), why)
            if info.channels:
                changed.append(group)
            else:
                del self.groups[group]
                gone = True
        for group in changed:
            self.notify_group(group)
        if gone:
            self.on_subscriptions_changed()
        return count

    def notify_group(self, group: str) -> int:
        """Push NOTIFY_CONSUMER_IDS_CHANGED to every connection of the group; the number pushed."""
        info = self.groups.get(group)
        if info is None or not self.notify_enabled(group):
            return 0
        header = NotifyConsumerIdsChangedRequestHeader(consumer_group=group).to_ext()
        for ch in list(info.channels.values()):
            cmd = RemotingCommand.request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, header,
                                          opaque=next(_opaques) & 0x7FFFFFFF, oneway=True)
            try:
                self.push(ch.worker_slot, ch.conn_id, encode_frame(cmd))
            except Exception:  # noqa: BLE001 - one bad connection must not stop the others
                log.exception("notify of group %s to conn %s failed", group, ch.key)
        return len(info.channels)


class ProducerManager:
    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, expiry_ms: int = CLIENT_EXPIRY_MS_DEFAULT) -> None:
        self.clock = clock
        self.expiry_ms = expiry_ms
        self.groups: dict[str, dict[str, ClientChannel]] = {}

    def register(self, group: str, channel: ClientChannel) -> None:
        channel.last_update_ms = self.clock.monotonic_ms()
        channels = self.groups.setdefault(group, {})
        if channel.key not in channels:
            log.info("producer joined: group=%s client=%s conn=%s", group, channel.client_id, channel.key)
        channels[channel.key] = channel

    def unregister(self, group: str, conn_key: str) -> bool:
        channels = self.groups.get(group)
        if channels is None or channels.pop(conn_key, None) is None:
            return False
        if not channels:
            del self.groups[group]
        return True

    def connection_closed(self, conn_key: str) -> None:
        for group in [g for g, chs in self.groups.items() if conn_key in chs]:
            self.unregister(group, conn_key)

    def worker_gone(self, worker_slot: int) -> None:
        prefix = f"{worker_slot}:"
        for key in {k for chs in self.groups.values() for k in chs if k.startswith(prefix)}:
            self.connection_closed(key)

    def scan_expired(self) -> list[str]:
        now = self.clock.monotonic_ms()
        expired: list[str] = []
        for group, channels in list(self.groups.items()):
            for key, ch in list(channels.items()):
                if now - ch.last_update_ms > self.expiry_ms:
                    expired.append(key)
                    self.unregister(group, key)
        return expired

    def channels(self, group: str) -> list[ClientChannel]:
        return list(self.groups.get(group, {}).values())


@dataclasses.dataclass(slots=True)
class _Lock:
    client_id: str
    last_update_ms: int


class RebalanceLockManager:
    """Per-group queue locks for orderly consumers (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ)."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, lock_max_live_ms: int = LOCK_MAX_LIVE_MS_DEFAULT) -> None:
        self.clock = clock
        self.lock_max_live_ms = lock_max_live_ms
        self.groups: dict[str, dict[MessageQueue, _Lock]] = {}

    def _expired(self, lock: _Lock, now: int) -> bool:
        return now - lock.last_update_ms > self.lock_max_live_ms

    def try_lock_batch(self, group: str, mqs: Iterable[MessageQueue], client_id: str) -> list[MessageQueue]:
        """Lock or renew each queue for client_id; the queues it now holds."""
        now = self.clock.monotonic_ms()
        table = self.groups.setdefault(group, {})
        held: list[MessageQueue] = []
        for mq in mqs:
            lock = table.get(mq)
            if lock is None or lock.client_id == client_id or self._expired(lock, now):
                if lock is not None and lock.client_id != client_id:
                    log.info("queue lock taken over: group=%s mq=%s from=%s to=%s",
                             group, mq.to_obj(), lock.client_id, client_id)
                table[mq] = _Lock(client_id, now)
                held.append(mq)
        return held

    def unlock_batch(self, group: str, mqs: Iterable[MessageQueue], client_id: str) -> None:
        table = self.groups.get(group)
        if table is None:
            return
        for mq in mqs:
            lock = table.get(mq)
            if lock is not None and lock.client_id == client_id:
                del table[mq]
        if not table:
            del self.groups[group]

    def unlock_client(self, group: str, client_id: str) -> list[MessageQueue]:
        """Release every queue of `group` that client_id holds; the queues released.

        Called when the client unregisters from the group (UNREGISTER_CLIENT), which clients
        send only after their consume threads stopped, so no consumption still depends on the
        lock. Java's broker leaves such locks to expire (lockMaxLiveTime, 60 s); rocketpy frees
        them because the C++ client 1.2.x's shutdown unlocks all but the first queue it holds on
        each broker, which would stall that queue for the group for a minute while the member
        that inherits it retries LOCK_BATCH_MQ in a tight loop. A closed or silent connection
        still keeps its locks until they expire: the client may still be consuming.
        """
        table = self.groups.get(group)
        if table is None:
            return []
        released = [mq for mq, lock in table.items() if lock.client_id == client_id]
        for mq in released:
            del table[mq]
        if not table:
            del self.groups[group]
        if released:
            log.info("queue locks released on unregister: group=%s client=%s queues=%d",
                     group, client_id, len(released))
        return released

    def is_locked(self, group: str, mq: MessageQueue, client_id: str) -> bool:
        lock = self.groups.get(group, {}).get(mq)
        return lock is not None and lock.client_id == client_id and not self._expired(
            lock, self.clock.monotonic_ms())
