"""ClientInstance — RocketMQ's MQClientInstance: what the producers and consumers of one
client id share in one event loop.

It owns the connections (one `RemotingClient`), the route cache, the heartbeats and the
dispatch of requests that brokers send to the client. Producers and consumers register
hook objects under their group; the instance calls them:

    producer hooks: check_transaction_state(broker_addr, msg_ext, header)   (CHECK_TRANSACTION_STATE 39)
    consumer hooks: consumer_data() -> dict                                  (heartbeat ConsumerData JSON)
                    on_consumer_ids_changed()                                (NOTIFY_CONSUMER_IDS_CHANGED 40)
                    on_reset_offset(topic, {MessageQueue: offset})           (RESET_CONSUMER_CLIENT_OFFSET 220)
                    consumer_status(topic) -> {MessageQueue: offset}         (GET_CONSUMER_STATUS_FROM_CLIENT 221)
                    running_info() -> dict                                   (GET_CONSUMER_RUNNING_INFO 307)
                    consume_message_directly(msg_ext) -> dict                (CONSUME_MESSAGE_DIRECTLY 309)

A hook may be a plain function or a coroutine function; a missing optional hook makes
the instance answer REQUEST_CODE_NOT_SUPPORTED. Hooks run on the event loop, so a hook
that blocks must hand its work to a thread itself.

    inst = await ClientInstance.get(config)
    inst.register_producer("PG", hooks)
    queues = await inst.publish_queues("Orders")
    ...
    await inst.release(hooks)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import re
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

import orjson

from rocketpy.client.config import ClientConfig
from rocketpy.client.message import MessageExt, MessageQueue, PullResult, PullStatus
from rocketpy.client.message import decode_messages as _decode_messages
from rocketpy.client.remoting import RemotingClient, RemotingConnection
from rocketpy.errors import (
    BrokerNotFoundError,
    ClientStateError,
    NoRouteError,
    ProtocolError,
    RemotingConnectError,
    RemotingTimeoutError,
    client_error_for_code,
)
from rocketpy.protocol import headers as h
from rocketpy.protocol import message as pm
from rocketpy.protocol.bodies import (
    EXPRESSION_TYPE_TAG,
    SUB_ALL,
    ConsumerIdList,
    LockBatchRequestBody,
    LockBatchResponseBody,
    TopicRouteData,
    UnlockBatchRequestBody,
    split_sub_string,
)
from rocketpy.protocol.codes import RequestCode, ResponseCode
from rocketpy.protocol.headers import (
    PULL_FLAG_SUBSCRIPTION,
    PULL_FLAG_SUSPEND,
)
from rocketpy.protocol.remoting import RemotingCommand
from rocketpy.protocol.topics import AUTO_CREATE_TOPIC_KEY_TOPIC, is_readable, is_writeable

log = logging.getLogger("rocketpy.client")

MASTER_ID = 0

# PullSysFlag bits.

_PULL_STATUS: dict[int, PullStatus] = {
    ResponseCode.SUCCESS: PullStatus.FOUND,
    ResponseCode.PULL_NOT_FOUND: PullStatus.NO_NEW_MSG,
    ResponseCode.PULL_RETRY_IMMEDIATELY: PullStatus.NO_MATCHED_MSG,
    ResponseCode.PULL_OFFSET_MOVED: PullStatus.OFFSET_ILLEGAL,
}


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _cmd(code: int, header: h.Header | dict[str, str] | None = None, body: bytes = b"",
         language: str = "PYTHON") -> RemotingCommand:
    ext = header.to_ext() if isinstance(header, h.Header) else header
    cmd = RemotingCommand.request(code, ext, body)
    cmd.language = language
    return cmd


_MQ_KEY = re.compile(rb"(\{[^{}]*\})\s*:\s*(-?\d+)")


def parse_offset_table(body: bytes) -> dict[MessageQueue, int]:
    """The offsetTable of a ResetOffsetBody / GetConsumerStatusBody.

    Java writes it with fastjson, whose map keys are MessageQueue objects rather than
    strings (``{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:42}}``), which no
    JSON parser takes; each ``{...}:offset`` pair is read on its own.
    """
    out: dict[MessageQueue, int] = {}
    for key, offset in _MQ_KEY.findall(body):
        try:
            obj = orjson.loads(key)
            mq = MessageQueue(str(obj["topic"]), str(obj["brokerName"]), int(obj["queueId"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        out[mq] = int(offset)
    return out


def format_offset_table(table: dict[MessageQueue, int], extra: str = "") -> bytes:
    """The fastjson form parse_offset_table reads (object keys, sorted fields)."""
    items = ",".join(
        f'{{"brokerName":{orjson.dumps(mq.broker_name).decode()},"queueId":{mq.queue_id},'
        f'"topic":{orjson.dumps(mq.topic).decode()}}}:{off}'
        for mq, off in table.items())
    return ('{"offsetTable":{' + items + "}" + extra + "}").encode()


class ClientInstance:
    """Connections, routes, heartbeats and broker requests shared by the clients of one id."""

    _instances: dict[tuple[int, str], ClientInstance] = {}

    def __init__(self, config: ClientConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.client_id = config.client_id()
        self._loop = loop
        self.remoting = RemotingClient(connect_timeout_ms=config.connect_timeout_ms, handler=self._serve)
        self._refs = 0
        self._closed = False
        self._namesrv_index = random.randrange(len(config.namesrv_addr))
        self._routes: dict[str, TopicRouteData] = {}
        self._broker_addrs: dict[str, dict[int, str]] = {}
        self._route_locks: dict[str, asyncio.Lock] = {}
        self._topics_in_use: set[str] = set()
        self._default_routed: dict[str, int] = {}       # topic -> queue nums taken from TBW102
        self._producers: dict[str, object] = {}
        self._consumers: dict[str, object] = {}
        self._pull_from: dict[MessageQueue, int] = {}   # broker id a pull response suggested
        self._tasks: list[asyncio.Task[None]] = []
        self._heartbeat_lock = asyncio.Lock()
        self._heartbeat_sent: set[str] = set()        # broker addresses heartbeated at least once
        self._side_tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def get(cls, config: ClientConfig) -> ClientInstance:
        """The instance of config's client id in the running loop, started on first use.
        Each call must be paired with a release()."""
        loop = asyncio.get_running_loop()
        key = (id(loop), config.client_id())
        inst = cls._instances.get(key)
        if inst is None or inst._closed or inst._loop is not loop:
            inst = cls(config, loop)
            cls._instances[key] = inst
            inst._start()
        inst._refs += 1
        return inst

    def _start(self) -> None:
        self._tasks = [
            self._loop.create_task(self._every(self.config.poll_name_server_interval_ms, self.refresh_routes),
                                   name="rocketpy-route-refresh"),
            self._loop.create_task(self._every(self.config.heartbeat_broker_interval_ms,
                                               self.send_heartbeat_now), name="rocketpy-heartbeat"),
        ]
        log.info("client instance %s started (NameServers %s)", self.client_id, ";".join(self.config.namesrv_addr))

    async def _every(self, interval_ms: int, job: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a periodic job must outlive one failure
                log.exception("client %s: periodic %s failed", self.client_id, getattr(job, "__name__", job))

    @property
    def closed(self) -> bool:
        return self._closed

    async def release(self, owner: object) -> None:
        """Unregister every group `owner` holds, drop one reference; the last one shuts down."""
        for table, kind in ((self._producers, "producer"), (self._consumers, "consumer")):
            for group in [g for g, hooks in table.items() if hooks is owner]:
                del table[group]
                await self._unregister_client(producer_group=group if kind == "producer" else None,
                                              consumer_group=group if kind == "consumer" else None)
        self._refs -= 1
        if self._refs <= 0:
            await self._shutdown()

    async def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        key = (id(self._loop), self.client_id)
        if self._instances.get(key) is self:
            del self._instances[key]
        tasks = [*self._tasks, *self._side_tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.remoting.close()
        log.info("client instance %s shut down", self.client_id)

    def _check_open(self) -> None:
        if self._closed:
            raise ClientStateError(f"client {self.client_id} is shut down; create a new producer or consumer")

    # --- registration --------------------------------------------------------------------------

    def register_producer(self, group: str, hooks: object) -> None:
        """Register a producer group; the same group twice in one client id is refused."""
        self._register(self._producers, "producer", group, hooks)

    def register_consumer(self, group: str, hooks: object) -> None:
        """Register a consumer group; the same group twice in one client id is refused."""
        self._register(self._consumers, "consumer", group, hooks)

    def _register(self, table: dict[str, Any], kind: str, group: str, hooks: object) -> None:
        self._check_open()
        if group in table and table[group] is not hooks:
            raise ClientStateError(
                f"{kind} group {group!r} is already registered in client {self.client_id}; "
                "use another group name or instance_name")
        table[group] = hooks

    async def unregister_producer(self, group: str) -> None:
        if self._producers.pop(group, None) is not None:
            await self._unregister_client(producer_group=group)

    async def unregister_consumer(self, group: str) -> None:
        if self._consumers.pop(group, None) is not None:
            await self._unregister_client(consumer_group=group)

    async def _unregister_client(self, *, producer_group: str | None = None,
                                 consumer_group: str | None = None) -> None:
        header = h.UnregisterClientRequestHeader(self.client_id, producer_group, consumer_group)
        addrs = {a for addrs in self._broker_addrs.values() for a in addrs.values()}

        async def one(addr: str) -> None:
            try:
                resp = await self.invoke(addr, _cmd(RequestCode.UNREGISTER_CLIENT, header, language=self.config.language),
                                         self.config.request_timeout_ms)
                if resp.code != ResponseCode.SUCCESS:
                    log.warning("unregister of %s from %s: code %d %s", self.client_id, addr, resp.code, resp.remark)
            except (RemotingConnectError, RemotingTimeoutError) as exc:
                log.info("unregister of %s from %s failed: %s", self.client_id, addr, exc)

        await asyncio.gather(*(one(a) for a in addrs))

    # --- remoting ------------------------------------------------------------------------------

    async def invoke(self, addr: str, cmd: RemotingCommand, timeout_ms: int | None = None) -> RemotingCommand:
        """One request to addr; a connection that failed is dropped so the next call reconnects."""
        self._check_open()
        try:
            return await self.remoting.invoke(addr, cmd, timeout_ms or self.config.request_timeout_ms)
        except RemotingConnectError:
            self.remoting.close_connection(addr)
            raise

    async def invoke_oneway(self, addr: str, cmd: RemotingCommand) -> None:
        self._check_open()
        try:
            await self.remoting.invoke_oneway(addr, cmd)
        except RemotingConnectError:
            self.remoting.close_connection(addr)
            raise

    def command(self, code: int, header: h.Header | dict[str, str] | None = None, body: bytes = b"") -> RemotingCommand:
        """A request stamped with this client's language."""
        return _cmd(code, header, body, self.config.language)

    async def invoke_namesrv(self, cmd: RemotingCommand, timeout_ms: int | None = None) -> RemotingCommand:
        """Ask the NameServer that answered last, then each other one; remember who answers."""
        addrs = self.config.namesrv_addr
        failures: list[str] = []
        start = self._namesrv_index
        for i in range(len(addrs)):
            index = (start + i) % len(addrs)
            addr = addrs[index]
            try:
                resp = await self.invoke(addr, cmd, timeout_ms)
            except (RemotingConnectError, RemotingTimeoutError) as exc:
                failures.append(f"{addr}: {exc}")
                continue
            if index != self._namesrv_index:
                log.info("client %s: now using NameServer %s", self.client_id, addr)
                self._namesrv_index = index
            return resp
        raise RemotingConnectError(
            "no NameServer answered (" + "; ".join(failures) + "); check namesrv_addr and that they run")

    # --- routes ---------------------------------------------------------------------------------

    async def topic_route(self, topic: str, refresh: bool = False) -> TopicRouteData:
        """The topic's route, from the cache unless refresh; raises NoRouteError if unknown."""
        self._check_open()
        route = self._routes.get(topic)
        if route is not None and not refresh:
            return route
        lock = self._route_locks.setdefault(topic, asyncio.Lock())
        async with lock:
            route = self._routes.get(topic)
            if route is not None and not refresh:
                return route
            route = await self._fetch_route(topic)
            self._store_route(topic, route)
            return route

    async def _fetch_route(self, topic: str) -> TopicRouteData:
        cmd = self.command(RequestCode.GET_ROUTEINFO_BY_TOPIC, h.GetRouteInfoRequestHeader(topic))
        resp = await self.invoke_namesrv(cmd)
        if resp.code == ResponseCode.TOPIC_NOT_EXIST:
            raise NoRouteError(f"no NameServer knows topic {topic!r}; create it (rocketpy admin) "
                               "or enable autoCreateTopicEnable on a broker")
        if resp.code != ResponseCode.SUCCESS:
            raise client_error_for_code(resp.code, resp.remark, f"route query for topic {topic!r}")
        try:
            return TopicRouteData.from_json(resp.body)
        except ProtocolError as exc:
            raise NoRouteError(f"the NameServer sent an unreadable route for {topic!r}: {exc}") from None

    def _store_route(self, topic: str, route: TopicRouteData) -> None:
        old = self._routes.get(topic)
        self._routes[topic] = route
        self._default_routed.pop(topic, None)
        self._topics_in_use.add(topic)
        learned = False
        for bd in route.broker_datas:
            self._broker_addrs[bd.broker_name] = dict(bd.broker_addrs)
            learned = learned or any(a not in self._heartbeat_sent for a in bd.broker_addrs.values())
        if learned and (self._producers or self._consumers) and not self._closed:
            # A broker must know its producers and consumers before it needs them (a
            # transaction check-back, a rebalance): heartbeat a new broker at once, not
            # at the next 30 s tick.
            task = self._loop.create_task(self.send_heartbeat_now(), name="rocketpy-heartbeat-new-broker")
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)
        if old != route:
            log.info("client %s: route of %s: %s", self.client_id, topic,
                     ", ".join(f"{q.broker_name}(w{q.write_queue_nums}/r{q.read_queue_nums})"
                               for q in route.queue_datas) or "no queues")

    async def refresh_routes(self) -> None:
        """Re-read the route of every topic in use (what the 30 s poll does)."""
        topics = set(self._topics_in_use)
        for group_hooks in self._consumers.values():
            topics.update(_subscribed_topics(group_hooks))
        for topic in sorted(topics):
            try:
                await self.topic_route(topic, refresh=True)
            except NoRouteError:
                log.debug("client %s: topic %s has no route yet", self.client_id, topic)
            except (RemotingConnectError, RemotingTimeoutError) as exc:
                log.warning("client %s: route refresh of %s failed: %s", self.client_id, topic, exc)
                return

    def schedule_route_refresh(self, topic: str) -> None:
        """Refresh a route in the background (after a failed request)."""
        if self._closed:
            return

        async def refresh() -> None:
            with contextlib.suppress(Exception):
                await self.topic_route(topic, refresh=True)

        task = self._loop.create_task(refresh())
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    async def publish_queues(self, topic: str, *, default_topic: str = AUTO_CREATE_TOPIC_KEY_TOPIC,
                             default_queue_nums: int = 4) -> list[MessageQueue]:
        """Writable queues of topic on brokers with a master, in route order.

        A topic no NameServer knows yet is sent through the default topic's route (TBW102)
        with at most default_queue_nums queues per broker; brokers with autoCreateTopicEnable
        then create it (Java's tryToFindTopicPublishInfo).
        """
        try:
            route = await self.topic_route(topic)
        except NoRouteError:
            if topic in self._default_routed:
                route = self._routes.get(default_topic) or await self.topic_route(default_topic)
                return _queues(topic, route, self._broker_addrs, write=True, cap=self._default_routed[topic])
            try:
                route = await self.topic_route(default_topic)
            except NoRouteError:
                raise NoRouteError(
                    f"no NameServer knows topic {topic!r} and no broker offers auto-creation "
                    f"({default_topic}); create the topic first") from None
            self._default_routed[topic] = default_queue_nums
            self._topics_in_use.add(topic)
            return _queues(topic, route, self._broker_addrs, write=True, cap=default_queue_nums)
        return _queues(topic, route, self._broker_addrs, write=True)

    async def subscribe_queues(self, topic: str) -> list[MessageQueue]:
        """Readable queues of topic, in route order."""
        route = await self.topic_route(topic)
        return _queues(topic, route, self._broker_addrs, write=False)

    def broker_addr(self, broker_name: str, *, master: bool = True) -> str | None:
        """The master's address (master=True), else the master's or any slave's."""
        addrs = self._broker_addrs.get(broker_name) or {}
        if master:
            return addrs.get(MASTER_ID)
        return addrs.get(MASTER_ID) or next((addrs[i] for i in sorted(addrs)), None)

    def any_broker_addr(self, broker_name: str) -> str | None:
        return self.broker_addr(broker_name, master=False)

    def _require_addr(self, broker_name: str, *, master: bool = True) -> str:
        addr = self.broker_addr(broker_name, master=master)
        if addr is None:
            raise BrokerNotFoundError(
                f"no {'master ' if master else ''}address known for broker {broker_name!r}; "
                "its route may be stale or the broker is down")
        return addr

    async def _addr_for(self, mq: MessageQueue, *, master: bool = True) -> str:
        addr = self.broker_addr(mq.broker_name, master=master)
        if addr is None:
            await self.topic_route(mq.topic, refresh=True)
        return self._require_addr(mq.broker_name, master=master)

    # --- heartbeats ---------------------------------------------------------------------------

    def heartbeat_data(self) -> dict[str, Any]:
        """The HeartbeatData JSON object this client sends."""
        consumers = []
        for hooks in self._consumers.values():
            data = getattr(hooks, "consumer_data", None)
            if data is not None:
                consumers.append(data())
        return {"clientID": self.client_id,
                "producerDataSet": [{"groupName": g} for g in self._producers],
                "consumerDataSet": consumers}

    async def send_heartbeat_now(self) -> None:
        """HEART_BEAT to every broker master of the routes in use (every address when
        consumers are registered); failures are logged, never raised."""
        if self._closed or (not self._producers and not self._consumers):
            return
        async with self._heartbeat_lock:
            body = orjson.dumps(self.heartbeat_data())
            with_consumers = bool(self._consumers)
            addrs = sorted({addr for addrs in self._broker_addrs.values() for bid, addr in addrs.items()
                            if bid == MASTER_ID or with_consumers})

            async def one(addr: str) -> None:
                try:
                    resp = await self.invoke(addr, self.command(RequestCode.HEART_BEAT, None, body))
                    if resp.code != ResponseCode.SUCCESS:
                        log.warning("heartbeat to %s refused: code %d %s", addr, resp.code, resp.remark)
                except (RemotingConnectError, RemotingTimeoutError) as exc:
                    log.info("heartbeat to %s failed: %s", addr, exc)

            self._heartbeat_sent.update(addrs)
            await asyncio.gather(*(one(a) for a in addrs))

    # --- requests from brokers ---------------------------------------------------------------------

    async def _serve(self, conn: RemotingConnection, cmd: RemotingCommand) -> RemotingCommand | None:
        code = cmd.code
        try:
            if code == RequestCode.CHECK_TRANSACTION_STATE:
                return await self._on_check_transaction(conn, cmd)
            if code == RequestCode.NOTIFY_CONSUMER_IDS_CHANGED:
                group = h.NotifyConsumerIdsChangedRequestHeader.from_command(cmd).consumer_group
                hooks = self._consumers.get(group)
                if hooks is not None and hasattr(hooks, "on_consumer_ids_changed"):
                    log.info("client %s: consumer ids of %s changed (from %s)", self.client_id, group, conn.addr)
                    await _maybe_await(hooks.on_consumer_ids_changed())
                return None
            if code == RequestCode.RESET_CONSUMER_CLIENT_OFFSET:
                header = h.ResetOffsetRequestHeader.from_command(cmd)
                hooks = self._consumers.get(header.group)
                if hooks is None or not hasattr(hooks, "on_reset_offset"):
                    return cmd.response(ResponseCode.SYSTEM_ERROR, f"no consumer of group {header.group} here")
                await _maybe_await(hooks.on_reset_offset(header.topic, parse_offset_table(cmd.body)))
                return cmd.response(ResponseCode.SUCCESS)
            if code == RequestCode.GET_CONSUMER_STATUS_FROM_CLIENT:
                sheader = h.GetConsumerStatusRequestHeader.from_command(cmd)
                hooks = self._consumers.get(sheader.group)
                if hooks is None or not hasattr(hooks, "consumer_status"):
                    return cmd.response(ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
                                        f"no consumer status for group {sheader.group}")
                table = await _maybe_await(hooks.consumer_status(sheader.topic))
                body = format_offset_table(table).replace(b'{"offsetTable"', b'{"messageQueueTable"', 1)
                return cmd.response(ResponseCode.SUCCESS, body=body)
            if code == RequestCode.GET_CONSUMER_RUNNING_INFO:
                rheader = h.GetConsumerRunningInfoRequestHeader.from_command(cmd)
                hooks = self._consumers.get(rheader.consumer_group)
                if hooks is None or not hasattr(hooks, "running_info"):
                    return cmd.response(ResponseCode.SYSTEM_ERROR,
                                        f"the consumer group {rheader.consumer_group} is not online in this client")
                info = await _maybe_await(hooks.running_info())
                return cmd.response(ResponseCode.SUCCESS, body=_json_body(info))
            if code == RequestCode.CONSUME_MESSAGE_DIRECTLY:
                dheader = h.ConsumeMessageDirectlyResultRequestHeader.from_command(cmd)
                hooks = self._consumers.get(dheader.consumer_group)
                if hooks is None or not hasattr(hooks, "consume_message_directly"):
                    return cmd.response(ResponseCode.SYSTEM_ERROR,
                                        f"the consumer group {dheader.consumer_group} is not online in this client")
                msg = MessageExt.from_record(pm.decode_record(cmd.body), dheader.broker_name or "")
                result = await _maybe_await(hooks.consume_message_directly(msg))
                return cmd.response(ResponseCode.SUCCESS, body=_json_body(result))
        except ProtocolError as exc:
            return cmd.response(ResponseCode.SYSTEM_ERROR, str(exc))
        return cmd.response(ResponseCode.REQUEST_CODE_NOT_SUPPORTED, f" request type {code} not supported")

    async def _on_check_transaction(self, conn: RemotingConnection, cmd: RemotingCommand) -> RemotingCommand | None:
        header = h.CheckTransactionStateRequestHeader.from_command(cmd)
        msg = MessageExt.from_record(pm.decode_record(cmd.body))
        group = msg.properties.get(pm.PROPERTY_PRODUCER_GROUP)
        hooks = self._producers.get(group or "")
        if hooks is None or not hasattr(hooks, "check_transaction_state"):
            log.warning("client %s: CHECK_TRANSACTION_STATE from %s for producer group %r, which is not "
                        "a transactional producer here", self.client_id, conn.addr, group)
            return None
        await _maybe_await(hooks.check_transaction_state(conn.addr, msg, header))
        return None

    # --- helpers for consumers ---------------------------------------------------------------------

    async def find_consumer_ids(self, topic: str, group: str) -> list[str]:
        """The client ids of the group's consumers, as one broker of the topic knows them."""
        route = await self.topic_route(topic)
        names = [bd.broker_name for bd in route.broker_datas]
        if not names:
            raise NoRouteError(f"topic {topic!r} has no broker; cannot list the consumers of {group!r}")
        addr = self.any_broker_addr(random.choice(names))
        if addr is None:
            raise BrokerNotFoundError(f"no broker address for topic {topic!r}")
        resp = await self.invoke(addr, self.command(RequestCode.GET_CONSUMER_LIST_BY_GROUP,
                                                    h.GetConsumerListByGroupRequestHeader(group)))
        if resp.code != ResponseCode.SUCCESS:
            raise client_error_for_code(resp.code, resp.remark, f"listing the consumers of {group!r}")
        return list(ConsumerIdList.from_json(resp.body).consumer_id_list)

    async def query_consumer_offset(self, mq: MessageQueue, group: str) -> int | None:
        """The group's committed offset of mq, or None if the broker holds none."""
        addr = await self._addr_for(mq, master=False)
        header = h.QueryConsumerOffsetRequestHeader(group, mq.topic, mq.queue_id)
        resp = await self.invoke(addr, self.command(RequestCode.QUERY_CONSUMER_OFFSET, header))
        if resp.code == ResponseCode.QUERY_NOT_FOUND:
            return None
        if resp.code != ResponseCode.SUCCESS:
            raise client_error_for_code(resp.code, resp.remark, f"offset query of {group} on {mq}")
        return h.QueryConsumerOffsetResponseHeader.from_command(resp).offset

    async def update_consumer_offset(self, mq: MessageQueue, group: str, offset: int, *,
                                     oneway: bool = True) -> None:
        """Commit the group's offset of mq to the broker's master (any broker if none)."""
        addr = await self._addr_for(mq, master=False)
        header = h.UpdateConsumerOffsetRequestHeader(group, mq.topic, mq.queue_id, offset)
        cmd = self.command(RequestCode.UPDATE_CONSUMER_OFFSET, header)
        if oneway:
            await self.invoke_oneway(addr, cmd)
            return
        resp = await self.invoke(addr, cmd)
        if resp.code != ResponseCode.SUCCESS:
            raise client_error_for_code(resp.code, resp.remark, f"offset commit of {group} on {mq}")

    async def pull(self, mq: MessageQueue, *, group: str, queue_offset: int, max_msg_nums: int = 32,
                   sys_flag: int = PULL_FLAG_SUSPEND | PULL_FLAG_SUBSCRIPTION, commit_offset: int = 0,
                   suspend_timeout_ms: int = 15_000, subscription: str = SUB_ALL, sub_version: int = 0,
                   expression_type: str = EXPRESSION_TYPE_TAG, timeout_ms: int | None = None) -> PullResult:
        """PULL_MESSAGE (long-polled when sys_flag has SUSPEND); FOUND messages are decoded,
        filtered by tag name (the broker filters by hash only) and stamped with
        MIN_OFFSET/MAX_OFFSET, as Java's PullAPIWrapper does."""
        broker_id = self._pull_from.get(mq, MASTER_ID)
        addrs = self._broker_addrs.get(mq.broker_name) or {}
        addr = addrs.get(broker_id) or await self._addr_for(mq, master=False)
        header = h.PullMessageRequestHeader(
            consumer_group=group, topic=mq.topic, queue_id=mq.queue_id, queue_offset=queue_offset,
            max_msg_nums=max_msg_nums, sys_flag=sys_flag, commit_offset=commit_offset,
            suspend_timeout_millis=suspend_timeout_ms, sub_version=sub_version,
            subscription=subscription, expression_type=expression_type)
        if timeout_ms is None:
            timeout_ms = suspend_timeout_ms + self.config.request_timeout_ms if sys_flag & PULL_FLAG_SUSPEND \
                else self.config.request_timeout_ms
        resp = await self.invoke(addr, self.command(RequestCode.PULL_MESSAGE, header), timeout_ms)
        status = _PULL_STATUS.get(resp.code)
        if status is None:
            raise client_error_for_code(resp.code, resp.remark, f"pull of {mq} at offset {queue_offset}")
        rh = h.PullMessageResponseHeader.from_command(resp)
        self._pull_from[mq] = rh.suggest_which_broker_id
        messages: list[MessageExt] = []
        if status is PullStatus.FOUND:
            messages = _decode_messages(resp.body, mq.broker_name)
            if expression_type == EXPRESSION_TYPE_TAG and subscription.strip() not in ("", SUB_ALL):
                tags = set(split_sub_string(subscription))
                messages = [m for m in messages if m.tags in tags]
            for m in messages:
                m.properties[pm.PROPERTY_MIN_OFFSET] = str(rh.min_offset)
                m.properties[pm.PROPERTY_MAX_OFFSET] = str(rh.max_offset)
        return PullResult(status, rh.next_begin_offset, rh.min_offset, rh.max_offset, messages,
                          rh.suggest_which_broker_id)

    async def _offset_request(self, code: int, header: h.Header, mq: MessageQueue, what: str) -> int:
        addr = await self._addr_for(mq, master=False)
        resp = await self.invoke(addr, self.command(code, header))
        if resp.code != ResponseCode.SUCCESS:
            raise client_error_for_code(resp.code, resp.remark, f"{what} of {mq}")
        value = resp.ext_str("offset")
        if value is None or not value.lstrip("-").isdigit():
            raise ProtocolError(f"{what} of {mq}: the broker's answer has no offset")
        return int(value)

    async def search_offset(self, mq: MessageQueue, timestamp_ms: int) -> int:
        """The queue offset of the first message stored at or after timestamp_ms."""
        return await self._offset_request(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP,
                                          h.SearchOffsetRequestHeader(mq.topic, mq.queue_id, timestamp_ms),
                                          mq, "offset search")

    async def max_offset(self, mq: MessageQueue) -> int:
        """The queue offset one past the last message of mq."""
        return await self._offset_request(RequestCode.GET_MAX_OFFSET,
                                          h.GetMaxOffsetRequestHeader(mq.topic, mq.queue_id), mq, "max offset")

    async def min_offset(self, mq: MessageQueue) -> int:
        """The queue offset of the oldest message still kept in mq."""
        return await self._offset_request(RequestCode.GET_MIN_OFFSET,
                                          h.GetMinOffsetRequestHeader(mq.topic, mq.queue_id), mq, "min offset")

    async def send_back(self, msg: MessageExt, group: str, delay_level: int,
                        max_reconsume_times: int) -> None:
        """CONSUMER_SEND_MSG_BACK: ask the broker that stored msg to redeliver it later through
        the group's retry topic (or its DLQ past max_reconsume_times). Tried at the message's
        store host, then at the master of its broker."""
        header = h.ConsumerSendMsgBackRequestHeader(
            offset=msg.commitlog_offset, group=group, delay_level=delay_level, origin_msg_id=msg.msg_id,
            origin_topic=msg.topic, unit_mode=self.config.unit_mode, max_reconsume_times=max_reconsume_times)
        candidates = [msg.store_host] if msg.store_host and not msg.store_host.startswith("0.0.0.0") else []
        master = self.broker_addr(msg.broker_name) if msg.broker_name else None
        if master and master not in candidates:
            candidates.append(master)
        if not candidates:
            raise BrokerNotFoundError(f"no broker to send message {msg.msg_id} back to; its route is unknown")
        last: Exception | None = None
        for addr in candidates:
            try:
                resp = await self.invoke(addr, self.command(RequestCode.CONSUMER_SEND_MSG_BACK, header))
            except (RemotingConnectError, RemotingTimeoutError) as exc:
                last = exc
                continue
            if resp.code == ResponseCode.SUCCESS:
                return
            last = client_error_for_code(resp.code, resp.remark, f"send-back of {msg.msg_id} for {group}")
        assert last is not None
        raise last

    async def lock_batch(self, broker_name: str, group: str, mqs: Iterable[MessageQueue]) -> set[MessageQueue]:
        """LOCK_BATCH_MQ on the broker's master: the queues now locked by this client."""
        addr = self._require_addr(broker_name)
        body = LockBatchRequestBody(group, self.client_id, tuple(mq.to_wire() for mq in mqs)).to_json()
        resp = await self.invoke(addr, self.command(RequestCode.LOCK_BATCH_MQ, None, body))
        if resp.code != ResponseCode.SUCCESS:
            raise client_error_for_code(resp.code, resp.remark, f"queue lock of {group} on {broker_name}")
        return {MessageQueue.from_wire(mq) for mq in LockBatchResponseBody.from_json(resp.body).lock_ok_mq_set}

    async def unlock_batch(self, broker_name: str, group: str, mqs: Iterable[MessageQueue], *,
                           oneway: bool = False) -> None:
        """UNLOCK_BATCH_MQ on the broker's master."""
        addr = self._require_addr(broker_name)
        body = UnlockBatchRequestBody(group, self.client_id, tuple(mq.to_wire() for mq in mqs)).to_json()
        cmd = self.command(RequestCode.UNLOCK_BATCH_MQ, None, body)
        if oneway:
            await self.invoke_oneway(addr, cmd)
            return
        resp = await self.invoke(addr, cmd)
        if resp.code != ResponseCode.SUCCESS:
            raise client_error_for_code(resp.code, resp.remark, f"queue unlock of {group} on {broker_name}")


def _json_body(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return orjson.dumps(value)


def _subscribed_topics(hooks: object) -> Collection[str]:
    data = getattr(hooks, "consumer_data", None)
    if data is None:
        return ()
    try:
        subs = data().get("subscriptionDataSet") or []
        return {str(s["topic"]) for s in subs if isinstance(s, dict) and "topic" in s}
    except Exception:  # noqa: BLE001 - a faulty hook must not stop the route refresh
        return ()


def _queues(topic: str, route: TopicRouteData, broker_addrs: dict[str, dict[int, str]], *, write: bool,
            cap: int | None = None) -> list[MessageQueue]:
    out: list[MessageQueue] = []
    for qd in sorted(route.queue_datas, key=lambda q: q.broker_name):
        if write:
            if not is_writeable(qd.perm) or MASTER_ID not in (broker_addrs.get(qd.broker_name) or {}):
                continue
            count = qd.write_queue_nums
        else:
            if not is_readable(qd.perm):
                continue
            count = qd.read_queue_nums
        if cap is not None:
            count = min(count, cap)
        out.extend(MessageQueue(topic, qd.broker_name, i) for i in range(count))
    return out
