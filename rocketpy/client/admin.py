"""The admin client: what `mqadmin` does, over the remoting client and the NameServer.

`AsyncAdminClient` speaks to NameServers (routes, clusters, topic lists) and
to brokers (topics, groups, offsets, statistics, messages); `AdminClient` is
the same API, blocking, on a private event loop (for scripts and the CLI).
It depends only on `client/remoting.py` and `protocol/`, so it works against
any RocketMQ 4.x broker, Java or rocketpy.

Errors: a request the server refused raises `AdminRefused` (code + remark); a
server that cannot be reached raises `AdminUnreachable`. Both say what to do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from rocketpy import limits
from rocketpy.client.remoting import RemotingClient
from rocketpy.errors import ProtocolError, RemotingConnectError, RemotingTimeoutError, RocketpyError
from rocketpy.protocol import headers
from rocketpy.protocol import topics as t
from rocketpy.protocol.admin_bodies import (
    ConsumeStats,
    OffsetWrapper,
    TopicStatsTable,
    parse_fastjson,
)
from rocketpy.protocol.bodies import (
    TOPIC_QUEUE_NUMS_DEFAULT,
    ClusterInfo,
    KVTable,
    MessageQueue,
    TopicList,
    TopicRouteData,
    as_obj,
    dumps,
    parse_json_lenient,
)
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.headers import PULL_FLAG_SUBSCRIPTION
from rocketpy.protocol.message import (
    PROPERTY_KEYS,
    PROPERTY_TAGS,
    PROPERTY_UNIQ_KEY,
    MessageRecord,
    format_properties,
    iter_records,
)
from rocketpy.protocol.msgid import (
    decode_offset_msg_id,
    new_uniq_key,
    offset_msg_id,
    uniq_key_time_ms,
)
from rocketpy.protocol.remoting import RemotingCommand

T = TypeVar("T")

ADMIN_PRODUCER_GROUP = "rocketpy_admin_producer"   # RocketMQ's tools use "TOOLS_CONSUMER"-style groups
END_OF_TIME_MS = (1 << 63) - 1


class AdminError(RocketpyError):
    """Base of the admin client's errors."""


class AdminRefused(AdminError):
    """The server answered with a failure code."""

    def __init__(self, what: str, code: int, remark: str | None) -> None:
        self.code = code
        self.remark = (remark or "").strip()
        try:
            name = ResponseCode(code).name
        except ValueError:
            name = str(code)
        super().__init__(f"{what} was refused ({name}): {self.remark or 'no reason given'}")


class AdminUnreachable(AdminError):
    """No server could be reached (or none answered in time)."""

    retriable = True


class AdminNotFound(AdminError):
    """Nothing matched (no route, no broker, no message)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    msg_id: str                 # the UNIQ_KEY the client set
    offset_msg_id: str          # broker address + CommitLog offset
    broker_name: str
    queue_id: int
    queue_offset: int


@dataclasses.dataclass(frozen=True, slots=True)
class PullResult:
    code: int
    next_begin_offset: int
    min_offset: int
    max_offset: int
    messages: tuple[MessageRecord, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerAddr:
    cluster: str
    broker_name: str
    addr: str


def message_to_obj(record: MessageRecord) -> dict[str, Any]:
    """A stored message as admin output shows it: headers, properties and body."""
    props = record.property_map()
    try:
        body: str | None = record.body.decode()
        body_hex = None
    except UnicodeDecodeError:
        body, body_hex = None, record.body.hex()
    out: dict[str, Any] = {
        "msgId": props.get(PROPERTY_UNIQ_KEY) or offset_msg_id(record.store_host, record.store_port,
                                                              record.phys_offset),
        "offsetMsgId": offset_msg_id(record.store_host, record.store_port, record.phys_offset),
        "topic": record.topic, "queueId": record.queue_id, "queueOffset": record.queue_offset,
        "commitLogOffset": record.phys_offset, "tags": props.get(PROPERTY_TAGS),
        "keys": props.get(PROPERTY_KEYS), "flag": record.flag, "sysFlag": record.sys_flag,
        "bornTimestamp": record.born_timestamp, "bornHost": f"{record.born_host}:{record.born_port}",
        "storeTimestamp": record.store_timestamp, "storeHost": f"{record.store_host}:{record.store_port}",
        "reconsumeTimes": record.reconsume_times, "bodyCRC": record.body_crc, "bodySize": len(record.body),
        "properties": props, "body": body,
    }
    if body_hex is not None:
        out["bodyHex"] = body_hex
    return out


class AsyncAdminClient:
    """mqadmin's requests, asyncio (see the module docstring)."""

    def __init__(self, namesrv_addrs: Iterable[str], *, timeout_ms: int = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
        self.namesrv_addrs = [a.strip() for a in namesrv_addrs if a.strip()]
        self.timeout_ms = timeout_ms
        self.remoting = RemotingClient(connect_timeout_ms=timeout_ms)
        self._queue_cursor = itertools.count()

    async def close(self) -> None:
        await self.remoting.close()

    async def __aenter__(self) -> AsyncAdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- plumbing ------------------------------------------------------------------------------

    async def call(self, addr: str, code: int, ext: dict[str, Any] | None = None, body: bytes = b"", *,
                   what: str, ok: Iterable[int] = (ResponseCode.SUCCESS,),
                   timeout_ms: int | None = None) -> RemotingCommand:
        """One request to one server; AdminRefused unless the code is in `ok`."""
        cmd = RemotingCommand.request(code, ext, body)
        try:
            response = await self.remoting.invoke(addr, cmd, timeout_ms or self.timeout_ms)
        except (RemotingConnectError, RemotingTimeoutError) as exc:
            raise AdminUnreachable(f"{what}: {exc}; check that the server at {addr} is running and "
                                   "reachable") from None
        if response.code not in set(ok):
            raise AdminRefused(f"{what} at {addr}", response.code, response.remark)
        return response

    async def call_namesrv(self, code: int, ext: dict[str, Any] | None = None, body: bytes = b"", *,
                           what: str, ok: Iterable[int] = (ResponseCode.SUCCESS,)) -> RemotingCommand:
        """The first NameServer that answers (they hold the same routes)."""
        if not self.namesrv_addrs:
            raise AdminUnreachable(f"{what}: no NameServer address; pass -n HOST:PORT or set ROCKETPY_NAMESRV")
        errors = []
        for addr in self.namesrv_addrs:
            try:
                return await self.call(addr, code, ext, body, what=what, ok=ok)
            except AdminUnreachable as exc:
                errors.append(str(exc))
        raise AdminUnreachable(f"{what}: no NameServer answered ({'; '.join(errors)})")

    # --- NameServer ------------------------------------------------------------------------------

    async def cluster_info(self) -> ClusterInfo:
        r = await self.call_namesrv(RequestCode.GET_BROKER_CLUSTER_INFO, what="cluster list")
        return ClusterInfo.from_json(r.body)

    async def topic_list(self) -> list[str]:
        r = await self.call_namesrv(RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER, what="topic list")
        return sorted(TopicList.from_json(r.body).topic_list)

    async def topic_route(self, topic: str) -> TopicRouteData:
        r = await self.call_namesrv(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic},
                                    what=f"route of topic {topic}", ok=(ResponseCode.SUCCESS,
                                                                        ResponseCode.TOPIC_NOT_EXIST))
        if r.code == ResponseCode.TOPIC_NOT_EXIST:
            raise AdminNotFound(f"topic {topic} has no route: no broker serves it; create it with "
                                "`rocketpy admin topic create`")
        return TopicRouteData.from_json(r.body)

    async def masters(self, cluster: str | None = None) -> list[BrokerAddr]:
        """Master address of every broker (of one cluster), from the NameServer's cluster info."""
        info = await self.cluster_info()
        out = []
        for name, data in sorted(info.broker_addr_table.items()):
            if cluster is not None and data.cluster != cluster:
                continue
            addr = data.master_addr
            if addr:
                out.append(BrokerAddr(data.cluster, name, addr))
        if not out:
            where = f"in cluster {cluster}" if cluster else "registered with the NameServer"
            raise AdminNotFound(f"no master broker {where}; check `rocketpy admin cluster list`")
        return out

    async def route_masters(self, topic: str) -> list[BrokerAddr]:
        route = await self.topic_route(topic)
        out = [BrokerAddr(b.cluster, b.broker_name, b.master_addr) for b in route.broker_datas if b.master_addr]
        if not out:
            raise AdminNotFound(f"topic {topic} has no master broker in its route")
        return sorted(out, key=lambda b: b.broker_name)

    async def _targets(self, cluster: str | None, broker: str | None) -> list[str]:
        if broker:
            return [broker]
        return [b.addr for b in await self.masters(cluster)]

    # --- topics ---------------------------------------------------------------------------------

    async def create_topic(self, topic: str, *, cluster: str | None = None, broker: str | None = None,
                           read_queues: int = TOPIC_QUEUE_NUMS_DEFAULT, write_queues: int | None = None, perm: int = t.PERM_READ | t.PERM_WRITE,
                           order: bool = False) -> list[str]:
        """UPDATE_AND_CREATE_TOPIC on one broker or on every master of a cluster; the addresses done."""
        header = headers.CreateTopicRequestHeader(
            topic=topic, default_topic=t.AUTO_CREATE_TOPIC_KEY_TOPIC, read_queue_nums=read_queues,
            write_queue_nums=read_queues if write_queues is None else write_queues, perm=perm,
            topic_filter_type="SINGLE_TAG", topic_sys_flag=0, order=order)
        done = []
        for addr in await self._targets(cluster, broker):
            await self.call(addr, RequestCode.UPDATE_AND_CREATE_TOPIC, header.to_ext(), what=f"create topic {topic}")
            done.append(addr)
        return done

    async def delete_topic(self, topic: str, *, cluster: str | None = None) -> list[str]:
        """DELETE_TOPIC_IN_BROKER on every master (of the cluster), then DELETE_TOPIC_IN_NAMESRV."""
        done = []
        for addr in await self._targets(cluster, None):
            await self.call(addr, RequestCode.DELETE_TOPIC_IN_BROKER, {"topic": topic}, what=f"delete topic {topic}")
            done.append(addr)
        ext = {"topic": topic}
        if cluster:
            ext["clusterName"] = cluster
        for addr in self.namesrv_addrs:
            await self.call(addr, RequestCode.DELETE_TOPIC_IN_NAMESRV, ext, what=f"delete topic {topic} route")
        return done

    async def topic_config(self, addr: str) -> dict[str, Any]:
        r = await self.call(addr, RequestCode.GET_ALL_TOPIC_CONFIG, what="topic configs")
        doc = as_obj(parse_json_lenient(r.body), "TopicConfigSerializeWrapper")
        return as_obj(doc.get("topicConfigTable") or {}, "topicConfigTable")

    async def topic_stats(self, addr: str, topic: str) -> TopicStatsTable:
        r = await self.call(addr, RequestCode.GET_TOPIC_STATS_INFO, {"topic": topic},
                            what=f"status of topic {topic}", ok=(ResponseCode.SUCCESS,
                                                                 ResponseCode.REQUEST_CODE_NOT_SUPPORTED))
        if r.code == ResponseCode.SUCCESS:
            return TopicStatsTable.from_json(r.body)
        return await self._topic_stats_by_offsets(addr, topic)

    async def _topic_stats_by_offsets(self, addr: str, topic: str) -> TopicStatsTable:
        """A broker without GET_TOPIC_STATS_INFO: min/max offset of each queue in the route."""
        from rocketpy.protocol.admin_bodies import TopicOffset

        route = await self.topic_route(topic)
        names = [b.broker_name for b in route.broker_datas if b.master_addr == addr]
        rows = []
        for qd in route.queue_datas:
            if qd.broker_name not in names:
                continue
            for qid in range(qd.write_queue_nums):
                lo = await self.min_offset(addr, topic, qid)
                hi = await self.max_offset(addr, topic, qid)
                rows.append((MessageQueue(topic, qd.broker_name, qid), TopicOffset(lo, hi, 0)))
        return TopicStatsTable(tuple(rows))

    async def topic_status(self, topic: str) -> list[tuple[MessageQueue, Any]]:
        """Per queue min/max offset and last update time, over every master broker of the topic."""
        rows: list[tuple[MessageQueue, Any]] = []
        for b in await self.route_masters(topic):
            rows.extend((await self.topic_stats(b.addr, topic)).offset_table)
        return sorted(rows, key=lambda r: (r[0].broker_name, r[0].queue_id))

    async def min_offset(self, addr: str, topic: str, queue_id: int) -> int:
        r = await self.call(addr, RequestCode.GET_MIN_OFFSET, {"topic": topic, "queueId": queue_id},
                            what=f"min offset of {topic}:{queue_id}")
        return headers.GetMinOffsetResponseHeader.from_command(r).offset

    async def max_offset(self, addr: str, topic: str, queue_id: int) -> int:
        r = await self.call(addr, RequestCode.GET_MAX_OFFSET, {"topic": topic, "queueId": queue_id},
                            what=f"max offset of {topic}:{queue_id}")
        return headers.GetMaxOffsetResponseHeader.from_command(r).offset

    # --- brokers ------------------------------------------------------------------------------------

    async def broker_runtime_info(self, addr: str) -> dict[str, str]:
        r = await self.call(addr, RequestCode.GET_BROKER_RUNTIME_INFO, what="broker runtime info")
        return dict(KVTable.from_json(r.body).table)

    # --- groups ---------------------------------------------------------------------------------------

    async def create_group(self, group: str, *, cluster: str | None = None, broker: str | None = None,
                           retry_queue_nums: int = 1, retry_max_times: int = 16, consume_enable: bool = True,
                           broadcast_enable: bool = True, consume_from_min_enable: bool = True) -> list[str]:
        """UPDATE_AND_CREATE_SUBSCRIPTIONGROUP on one broker or every master (of a cluster)."""
        body = dumps({"groupName": group, "consumeEnable": consume_enable,
                      "consumeFromMinEnable": consume_from_min_enable,
                      "consumeBroadcastEnable": broadcast_enable, "retryQueueNums": retry_queue_nums,
                      "retryMaxTimes": retry_max_times, "brokerId": 0, "whichBrokerWhenConsumeSlowly": 1,
                      "notifyConsumerIdsChangedEnable": True})
        done = []
        for addr in await self._targets(cluster, broker):
            await self.call(addr, RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, None, body,
                            what=f"create group {group}")
            done.append(addr)
        return done

    async def groups(self, addr: str) -> dict[str, dict[str, Any]]:
        r = await self.call(addr, RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG, what="group list")
        doc = as_obj(parse_json_lenient(r.body), "SubscriptionGroupWrapper")
        table = as_obj(doc.get("subscriptionGroupTable") or {}, "subscriptionGroupTable")
        return {k: as_obj(v, k) for k, v in table.items()}

    async def consume_stats(self, addr: str, group: str, topic: str | None = None) -> ConsumeStats:
        ext = {"consumerGroup": group}
        if topic:
            ext["topic"] = topic
        r = await self.call(addr, RequestCode.GET_CONSUME_STATS, ext, what=f"progress of group {group}")
        return ConsumeStats.from_json(r.body)

    async def consumer_progress(self, group: str, topic: str | None = None,
                                cluster: str | None = None) -> ConsumeStats:
        """GET_CONSUME_STATS of every master, merged: per queue broker offset, consumer offset, lag."""
        rows: list[tuple[MessageQueue, OffsetWrapper]] = []
        tps = 0.0
        for b in await self.masters(cluster):
            stats = await self.consume_stats(b.addr, group, topic)
            rows.extend(stats.offset_table)
            tps += stats.consume_tps
        rows.sort(key=lambda r: (r[0].topic, r[0].broker_name, r[0].queue_id))
        return ConsumeStats(tuple(rows), tps)

    async def _first_answer(self, addrs: list[str], code: int, ext: dict[str, Any], what: str,
                            not_found: Iterable[int]) -> RemotingCommand:
        missing = set(not_found)
        last: AdminRefused | None = None
        for addr in addrs:
            try:
                return await self.call(addr, code, ext, what=what)
            except AdminRefused as exc:
                if exc.code not in missing:
                    raise
                last = exc
        raise AdminNotFound(f"{what}: {last.remark if last else 'no broker'}; is the client running and "
                            "sending heartbeats?")

    async def consumer_connections(self, group: str, cluster: str | None = None) -> dict[str, Any]:
        addrs = [b.addr for b in await self.masters(cluster)]
        r = await self._first_answer(addrs, RequestCode.GET_CONSUMER_CONNECTION_LIST, {"consumerGroup": group},
                                     f"connections of consumer group {group}",
                                     (ResponseCode.CONSUMER_NOT_ONLINE, ResponseCode.SYSTEM_ERROR))
        return as_obj(parse_json_lenient(r.body), "ConsumerConnection")

    async def producer_connections(self, group: str, cluster: str | None = None) -> dict[str, Any]:
        addrs = [b.addr for b in await self.masters(cluster)]
        r = await self._first_answer(addrs, RequestCode.GET_PRODUCER_CONNECTION_LIST, {"producerGroup": group},
                                     f"connections of producer group {group}", (ResponseCode.SYSTEM_ERROR,))
        return as_obj(parse_json_lenient(r.body), "ProducerConnection")

    async def reset_offset_by_time(self, group: str, topic: str, timestamp_ms: int, *, force: bool = True,
                                   broker: str | None = None) -> list[tuple[MessageQueue, int]]:
        """INVOKE_BROKER_TO_RESET_OFFSET on every master of the topic: the broker moves the group's
        offsets to the first message stored at or after the time and tells online consumers.
        Returns the new offset of each queue. `broker` limits it to one master."""
        header = headers.ResetOffsetRequestHeader(topic=topic, group=group, timestamp=timestamp_ms, is_force=force)
        out: list[tuple[MessageQueue, int]] = []
        addrs = [broker] if broker else [b.addr for b in await self.route_masters(topic)]
        for addr in addrs:
            try:
                r = await self.call(addr, RequestCode.INVOKE_BROKER_TO_RESET_OFFSET, header.to_ext(),
                                    what=f"reset offsets of group {group} on topic {topic}")
            except AdminRefused as exc:
                if exc.code not in (ResponseCode.CONSUMER_NOT_ONLINE, ResponseCode.REQUEST_CODE_NOT_SUPPORTED):
                    raise
                # No consumer online to tell (or an older broker): move the committed offsets
                # directly, as mqadmin's resetOffsetByTimeOld does.
                out.extend(await self._reset_offline(addr, group, topic, timestamp_ms, force))
                continue
            out.extend(parse_reset_offset_body(r.body) if r.body else [])
        return sorted(out, key=lambda r: (r[0].broker_name, r[0].queue_id))

    async def _reset_offline(self, addr: str, group: str, topic: str, timestamp_ms: int, force: bool
                             ) -> list[tuple[MessageQueue, int]]:
        stats = await self.consume_stats(addr, group, topic)
        out = []
        for mq, w in stats.offset_table:
            r = await self.call(addr, RequestCode.SEARCH_OFFSET_BY_TIMESTAMP,
                                {"topic": topic, "queueId": mq.queue_id, "timestamp": timestamp_ms},
                                what=f"offset of {topic}:{mq.queue_id} at {timestamp_ms}")
            target = headers.SearchOffsetResponseHeader.from_command(r).offset
            if not force and target >= w.consumer_offset:
                target = w.consumer_offset
            else:
                await self.call(addr, RequestCode.UPDATE_CONSUMER_OFFSET, {
                    "consumerGroup": group, "topic": topic, "queueId": mq.queue_id, "commitOffset": target},
                    what=f"commit offset of {group} on {topic}:{mq.queue_id}")
            out.append((mq, target))
        return out

    # --- messages ---------------------------------------------------------------------------------------

    async def query_by_key(self, topic: str, key: str, *, begin_ms: int = 0, end_ms: int = END_OF_TIME_MS,
                           max_num: int = limits.ADMIN_QUERY_MESSAGES_MAX, unique: bool = False
                           ) -> list[MessageRecord]:
        """QUERY_MESSAGE on every master of the topic (IndexFile lookup of KEYS, or UNIQ_KEY)."""
        header = headers.QueryMessageRequestHeader(topic=topic, key=key, max_num=max_num, begin_timestamp=begin_ms,
                                                   end_timestamp=end_ms, unique_key_query=True if unique else None)
        found: list[MessageRecord] = []
        for b in await self.route_masters(topic):
            r = await self.call(b.addr, RequestCode.QUERY_MESSAGE, header.to_ext(), what=f"query of key {key}",
                                ok=(ResponseCode.SUCCESS, ResponseCode.QUERY_NOT_FOUND))
            if r.code == ResponseCode.SUCCESS:
                found.extend(iter_records(r.body))
        if unique:
            found = [m for m in found if m.property_map().get(PROPERTY_UNIQ_KEY) == key]
        return sorted(found, key=lambda m: (m.store_timestamp, m.phys_offset))[:max_num]

    async def query_by_unique_key(self, topic: str, uniq_key: str) -> list[MessageRecord]:
        """A message by the msgId its producer printed (UNIQ_KEY); the key carries its own time."""
        try:
            begin = max(0, uniq_key_time_ms(uniq_key) - 1000)
        except (ValueError, ProtocolError):
            begin = 0
        return await self.query_by_key(topic, uniq_key, begin_ms=begin, unique=True,
                                       max_num=limits.ADMIN_QUERY_MESSAGES_MAX)

    async def view_by_offset_msg_id(self, msg_id: str) -> MessageRecord:
        """VIEW_MESSAGE_BY_ID: the offset msgId names the broker and the CommitLog offset."""
        try:
            host, port, phys = decode_offset_msg_id(msg_id)
        except (ValueError, ProtocolError) as exc:
            raise AdminNotFound(f"{msg_id!r} is not an offset msgId (32 hex digits: broker address + "
                                f"offset): {exc}; for a producer's msgId use `query-uniq`") from None
        r = await self.call(f"{host}:{port}", RequestCode.VIEW_MESSAGE_BY_ID, {"offset": phys},
                            what=f"message {msg_id}")
        records = iter_records(r.body)
        if not records:
            raise AdminNotFound(f"broker {host}:{port} returned no message at offset {phys}")
        return records[0]

    async def send(self, topic: str, body: bytes, *, tags: str | None = None, keys: str | None = None,
                   properties: dict[str, str] | None = None, queue_id: int | None = None,
                   broker_name: str | None = None, producer_group: str = ADMIN_PRODUCER_GROUP) -> SendResult:
        """SEND_MESSAGE to one queue of the topic's route (round robin unless queue_id is given)."""
        route = await self.topic_route(topic)
        masters = {b.broker_name: b.master_addr for b in route.broker_datas if b.master_addr}
        queues = [(qd.broker_name, qid) for qd in sorted(route.queue_datas, key=lambda q: q.broker_name)
                  if qd.broker_name in masters and t.is_writeable(qd.perm)
                  for qid in range(qd.write_queue_nums)
                  if (broker_name is None or qd.broker_name == broker_name)]
        if queue_id is not None:
            queues = [q for q in queues if q[1] == queue_id]
        if not queues:
            raise AdminNotFound(f"topic {topic} has no writable queue{'' if queue_id is None else f' {queue_id}'}"
                                "; check `rocketpy admin topic route`")
        name, qid = queues[next(self._queue_cursor) % len(queues)]
        addr = masters[name]
        uniq = new_uniq_key()
        props = {PROPERTY_UNIQ_KEY: uniq, "WAIT": "true"}
        if tags:
            props[PROPERTY_TAGS] = tags
        if keys:
            props[PROPERTY_KEYS] = keys
        props.update(properties or {})
        header = headers.SendMessageRequestHeader(
            producer_group=producer_group, topic=topic, default_topic=t.AUTO_CREATE_TOPIC_KEY_TOPIC,
            default_topic_queue_nums=4, queue_id=qid, sys_flag=0, born_timestamp=int(time.time() * 1000), flag=0,
            properties=format_properties(props), reconsume_times=0)
        r = await self.call(addr, RequestCode.SEND_MESSAGE, header.to_ext(), body, what=f"send to {topic}")
        resp = headers.SendMessageResponseHeader.from_command(r)
        return SendResult(uniq, resp.msg_id, name, resp.queue_id, resp.queue_offset)

    async def pull(self, addr: str, topic: str, queue_id: int, queue_offset: int, *, group: str,
                   max_msgs: int = limits.ADMIN_CONSUME_MSGS_MAX, subscription: str = "*") -> PullResult:
        """One PULL_MESSAGE without suspension and without committing an offset."""
        header = headers.PullMessageRequestHeader(
            consumer_group=group, topic=topic, queue_id=queue_id, queue_offset=queue_offset, max_msg_nums=max_msgs,
            sys_flag=PULL_FLAG_SUBSCRIPTION, commit_offset=0, suspend_timeout_millis=0, sub_version=0,
            subscription=subscription)
        r = await self.call(addr, RequestCode.PULL_MESSAGE, header.to_ext(), what=f"pull {topic}:{queue_id}",
                            ok=(ResponseCode.SUCCESS, ResponseCode.PULL_NOT_FOUND,
                                ResponseCode.PULL_RETRY_IMMEDIATELY, ResponseCode.PULL_OFFSET_MOVED))
        h = headers.PullMessageResponseHeader.from_command(r)
        records = tuple(iter_records(r.body)) if r.code == ResponseCode.SUCCESS and r.body else ()
        return PullResult(r.code, h.next_begin_offset, h.min_offset, h.max_offset, records)


def parse_reset_offset_body(body: bytes) -> list[tuple[MessageQueue, int]]:
    """ResetOffsetBody: `{"offsetTable":{<MessageQueue>:offset}}` (fastjson object keys)."""
    doc = as_obj(parse_fastjson(body), "ResetOffsetBody")
    table = doc.get("offsetTable") or {}
    out = []
    if isinstance(table, list):             # ResetOffsetBodyForC
        for item in table:
            obj = as_obj(item, "ResetOffsetBodyForC.offsetTable[]")
            out.append((MessageQueue.from_obj(obj), int(obj.get("offset", 0))))
        return out
    for k, v in as_obj(table, "ResetOffsetBody.offsetTable").items():
        out.append((MessageQueue.from_obj(parse_json_lenient(k)), int(v)))
    return out


class AdminClient:
    """The blocking admin client: every AsyncAdminClient method, run on a private event loop.

    Not for use inside a running event loop (use AsyncAdminClient there)."""

    def __init__(self, namesrv_addrs: Iterable[str], *, timeout_ms: int = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
        self._loop = asyncio.new_event_loop()
        self._async = AsyncAdminClient(namesrv_addrs, timeout_ms=timeout_ms)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._async, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._run(attr(*args, **kwargs))

        blocking.__doc__ = attr.__doc__
        return blocking

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._async.close())
        self._loop.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
