"""`rocketpy admin ...` (what operators use mqadmin for) and `rocketpy produce` / `rocketpy consume`.

Every command prints a table for humans, or JSON with `--json` for scripts.
Exit codes scripts can rely on:

    0  done
    1  the server said no (refused, or nothing matched)
    2  usage error (bad option or argument)
    3  no server could be reached (NameServer or broker down, wrong address)
"""

from __future__ import annotations

import datetime
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from rocketpy import limits
from rocketpy.client.admin import (
    AdminClient,
    AdminError,
    AdminNotFound,
    AdminRefused,
    AdminUnreachable,
    message_to_obj,
)
from rocketpy.errors import ProtocolError
from rocketpy.progress import Progress
from rocketpy.protocol import topics as t
from rocketpy.protocol.codes import ResponseCode

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

EXIT_CODES_HELP = ("Exit codes: 0 done; 1 the server said no (refused, or nothing matched); "
                   "2 usage error; 3 no server could be reached.")

NamesrvOpt = Annotated[str, typer.Option(
    "--namesrv", "-n", envvar=["ROCKETPY_NAMESRV", "NAMESRV_ADDR"],
    help="NameServer address(es), HOST:PORT separated by ';' (env ROCKETPY_NAMESRV or NAMESRV_ADDR).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
TimeoutOpt = Annotated[int, typer.Option("--timeout-ms", min=1, help="Timeout of each request, in ms.")]
ClusterOpt = Annotated[str | None, typer.Option("--cluster", "-c", help="Only the masters of this cluster.")]
BrokerOpt = Annotated[str | None, typer.Option("--broker", "-b", help="One broker, HOST:PORT, instead of a cluster.")]

admin_app = typer.Typer(name="admin", no_args_is_help=True,
                        help="Administer a running cluster (mqadmin). " + EXIT_CODES_HELP)
topic_app = typer.Typer(no_args_is_help=True, help="Topics: create, update, delete, list, route, status.")
cluster_app = typer.Typer(no_args_is_help=True, help="Clusters and their brokers.")
group_app = typer.Typer(no_args_is_help=True, help="Consumer (subscription) groups.")
consumer_app = typer.Typer(no_args_is_help=True, help="Consumer progress and connections.")
producer_app = typer.Typer(no_args_is_help=True, help="Producer connections.")
offset_app = typer.Typer(no_args_is_help=True, help="Consumer offsets.")
message_app = typer.Typer(no_args_is_help=True, help="Find messages by key, id or unique key; send one.")
for _name, _sub in (("topic", topic_app), ("cluster", cluster_app), ("group", group_app),
                    ("consumer", consumer_app), ("producer", producer_app), ("offset", offset_app),
                    ("message", message_app)):
    admin_app.add_typer(_sub, name=_name)


# --- plumbing --------------------------------------------------------------------------------


def _addrs(namesrv: str) -> list[str]:
    return [a.strip() for a in namesrv.replace(",", ";").split(";") if a.strip()]


def fail(code: int, message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def admin_client(namesrv: str, timeout_ms: int, *, need_namesrv: bool = True) -> Iterator[AdminClient]:
    """An AdminClient, with admin errors turned into one line on stderr and the documented exit code."""
    if need_namesrv and not _addrs(namesrv):
        raise fail(EXIT_USAGE, "no NameServer address; pass -n HOST:PORT or set ROCKETPY_NAMESRV")
    client = AdminClient(_addrs(namesrv), timeout_ms=timeout_ms)
    try:
        yield client
    except AdminUnreachable as exc:
        raise fail(EXIT_UNREACHABLE, str(exc)) from None
    except (AdminRefused, AdminNotFound) as exc:
        raise fail(EXIT_REFUSED, str(exc)) from None
    except AdminError as exc:
        raise fail(EXIT_REFUSED, str(exc)) from None
    except ProtocolError as exc:
        raise fail(EXIT_REFUSED, f"the server's answer could not be read: {exc}; is it a RocketMQ server?"
                   ) from None
    finally:
        client.close()


def table(rows: list[list[Any]], head: list[str]) -> str:
    cells = [[str(c) for c in head]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def emit(as_json: bool, doc: Any, rows: list[list[Any]] | None = None, head: list[str] | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))
    elif rows is not None and head is not None:
        typer.echo(table(rows, head))
    else:
        typer.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))


def fmt_ms(ms: int) -> str:
    if ms <= 0:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def parse_time_ms(text: str) -> int:
    """`now`, epoch milliseconds, `-30m`/`-2h`/`-1d` (ago), or an ISO time (`2024-05-01T10:00:00`)."""
    text = text.strip()
    now = int(time.time() * 1000)
    if text == "now":
        return now
    if text.isdigit():
        return int(text)
    units = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    if text.startswith("-") and text[-1:] in units and text[1:-1].isdigit():
        return now - int(text[1:-1]) * units[text[-1]]
    try:
        return int(datetime.datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a time; write now, -30m, epoch ms or 2024-05-01T10:00:00"
                                 ) from None


# --- cluster and brokers ------------------------------------------------------------------------


@cluster_app.command("list")
def cluster_list(namesrv: NamesrvOpt = "", as_json: JsonOpt = False,
                 timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Every cluster, its brokers and their addresses (mqadmin clusterList)."""
    with admin_client(namesrv, timeout_ms) as admin:
        info = admin.cluster_info()
    rows, doc = [], []
    for cluster, names in sorted(info.cluster_addr_table.items()):
        for name in sorted(names):
            data = info.broker_addr_table.get(name)
            for broker_id, addr in sorted((data.broker_addrs if data else {}).items()):
                rows.append([cluster, name, broker_id, addr])
                doc.append({"cluster": cluster, "brokerName": name, "brokerId": broker_id, "addr": addr})
    emit(as_json, doc, rows, ["CLUSTER", "BROKER", "ID", "ADDRESS"])


@admin_app.command("broker-status")
def broker_status(namesrv: NamesrvOpt = "", broker: BrokerOpt = None, cluster: ClusterOpt = None,
                  as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Runtime info of each master (mqadmin brokerStatus) and, where the broker serves one, a summary
    of its Prometheus metrics endpoint."""
    with admin_client(namesrv, timeout_ms, need_namesrv=not broker) as admin:
        addrs = [broker] if broker else [b.addr for b in admin.masters(cluster)]
        doc = {addr: admin.broker_runtime_info(addr) for addr in addrs}
    out: dict[str, Any] = {}
    for addr, info in doc.items():
        entry: dict[str, Any] = {"runtime": info}
        metrics_addr = info.get("metricsAddr")
        if metrics_addr:
            entry["metrics"] = scrape_summary(f"http://{metrics_addr}/metrics", timeout_ms)
        out[addr] = entry
    if as_json:
        emit(True, out)
        return
    for addr, entry in out.items():
        typer.echo(f"# broker {addr}")
        typer.echo(table([[k, v] for k, v in sorted(entry["runtime"].items())], ["KEY", "VALUE"]))
        metrics = entry.get("metrics")
        if metrics:
            typer.echo(f"# metrics of {addr}")
            typer.echo(table([[k, v] for k, v in sorted(metrics.items())], ["METRIC", "VALUE"]))


def scrape_summary(url: str, timeout_ms: int) -> dict[str, float] | str:
    """The metrics endpoint's unlabelled samples and label-free sums (e.g. all topics' messages in)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_ms / 1000) as resp:  # noqa: S310 - http to a broker
            text = resp.read(limits.METRICS_HTTP_SCRAPE_SIZE_MAX).decode()
    except (OSError, urllib.error.URLError) as exc:
        return f"not reachable: {exc}"
    from rocketpy.metrics.prom import parse_samples

    sums: dict[str, float] = {}
    for name, _labels, value in parse_samples(text):
        if name.endswith("_bucket"):
            continue
        sums[name] = sums.get(name, 0.0) + value
    return sums


# --- topics ------------------------------------------------------------------------------------


@topic_app.command("list")
def topic_list(namesrv: NamesrvOpt = "", as_json: JsonOpt = False,
               timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Every topic the NameServer knows (mqadmin topicList)."""
    with admin_client(namesrv, timeout_ms) as admin:
        topics = admin.topic_list()
    emit(as_json, topics, [[x] for x in topics], ["TOPIC"])


@topic_app.command("route")
def topic_route(topic: Annotated[str, typer.Argument(help="The topic.")], namesrv: NamesrvOpt = "",
                as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Brokers and queues that serve a topic (mqadmin topicRoute)."""
    with admin_client(namesrv, timeout_ms) as admin:
        route = admin.topic_route(topic)
    addrs = {b.broker_name: b.master_addr for b in route.broker_datas}
    rows = [[q.broker_name, addrs.get(q.broker_name) or "-", q.read_queue_nums, q.write_queue_nums,
             t.perm_to_string(q.perm)] for q in route.queue_datas]
    emit(as_json, route.to_obj(), rows, ["BROKER", "MASTER", "READ", "WRITE", "PERM"])


@topic_app.command("status")
def topic_status(topic: Annotated[str, typer.Argument(help="The topic.")], namesrv: NamesrvOpt = "",
                 as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Per queue min and max offset and the time of the last message (mqadmin topicStatus)."""
    with admin_client(namesrv, timeout_ms) as admin:
        rows_in = admin.topic_status(topic)
    doc = [{"brokerName": mq.broker_name, "queueId": mq.queue_id, "minOffset": off.min_offset,
            "maxOffset": off.max_offset, "lastUpdateTimestamp": off.last_update_timestamp} for mq, off in rows_in]
    rows = [[d["brokerName"], d["queueId"], d["minOffset"], d["maxOffset"], fmt_ms(d["lastUpdateTimestamp"])]
            for d in doc]
    emit(as_json, doc, rows, ["BROKER", "QUEUE", "MIN", "MAX", "LAST UPDATED"])


def _create_topic(topic: str, namesrv: str, cluster: str | None, broker: str | None, queues: int,
                  write_queues: int | None, perm: int, order: bool, as_json: bool, timeout_ms: int) -> None:
    try:
        t.validate_topic(topic)
    except Exception as exc:  # noqa: BLE001 - any validation failure is a usage error
        raise fail(EXIT_USAGE, f"{exc}") from None
    if perm not in (2, 4, 6):
        raise fail(EXIT_USAGE, f"--perm {perm} is not 2 (write), 4 (read) or 6 (read and write)")
    with admin_client(namesrv, timeout_ms) as admin:
        done = admin.create_topic(topic, cluster=cluster, broker=broker, read_queues=queues,
                                  write_queues=write_queues, perm=perm, order=order)
    emit(as_json, {"topic": topic, "brokers": done}, [[topic, a] for a in done], ["TOPIC", "CREATED ON"])


QueuesOpt = Annotated[int, typer.Option("--queues", "-q", min=1, max=1024, help="Read queues (and write queues).")]
WriteQueuesOpt = Annotated[int | None, typer.Option("--write-queues", min=1, max=1024,
                                                    help="Write queues, when not the same as --queues.")]
PermOpt = Annotated[int, typer.Option("--perm", help="6 read and write, 4 read only, 2 write only.")]
OrderOpt = Annotated[bool, typer.Option("--order", help="An ordered topic.")]


@topic_app.command("create")
def topic_create(topic: Annotated[str, typer.Argument(help="The topic.")], namesrv: NamesrvOpt = "",
                 cluster: ClusterOpt = None, broker: BrokerOpt = None, queues: QueuesOpt = 8,
                 write_queues: WriteQueuesOpt = None, perm: PermOpt = 6, order: OrderOpt = False,
                 as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Create a topic on one broker (-b) or every master of a cluster (-c; all when neither)
    (mqadmin updateTopic)."""
    _create_topic(topic, namesrv, cluster, broker, queues, write_queues, perm, order, as_json, timeout_ms)


@topic_app.command("update")
def topic_update(topic: Annotated[str, typer.Argument(help="The topic.")], namesrv: NamesrvOpt = "",
                 cluster: ClusterOpt = None, broker: BrokerOpt = None, queues: QueuesOpt = 8,
                 write_queues: WriteQueuesOpt = None, perm: PermOpt = 6, order: OrderOpt = False,
                 as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Change a topic's queues or permission (the same request as create: it replaces the config)."""
    _create_topic(topic, namesrv, cluster, broker, queues, write_queues, perm, order, as_json, timeout_ms)


@topic_app.command("delete")
def topic_delete(topic: Annotated[str, typer.Argument(help="The topic.")], namesrv: NamesrvOpt = "",
                 cluster: ClusterOpt = None, as_json: JsonOpt = False,
                 timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Delete a topic from every master (of a cluster) and from the NameServers (mqadmin deleteTopic)."""
    with admin_client(namesrv, timeout_ms) as admin:
        done = admin.delete_topic(topic, cluster=cluster)
    emit(as_json, {"topic": topic, "brokers": done}, [[topic, a] for a in done], ["TOPIC", "DELETED ON"])


# --- groups ----------------------------------------------------------------------------------------


@group_app.command("create")
def group_create(group: Annotated[str, typer.Argument(help="The consumer group.")], namesrv: NamesrvOpt = "",
                 cluster: ClusterOpt = None, broker: BrokerOpt = None,
                 retry_queues: Annotated[int, typer.Option("--retry-queues", min=1, max=64)] = 1,
                 retry_max_times: Annotated[int, typer.Option("--retry-max-times", min=0, max=1000)] = 16,
                 disable: Annotated[bool, typer.Option("--disable", help="Create it with consuming off.")] = False,
                 no_broadcast: Annotated[bool, typer.Option("--no-broadcast", help="Refuse broadcasting.")] = False,
                 as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Create or update a consumer group (mqadmin updateSubGroup)."""
    try:
        t.validate_group(group)
    except Exception as exc:  # noqa: BLE001 - any validation failure is a usage error
        raise fail(EXIT_USAGE, f"{exc}") from None
    with admin_client(namesrv, timeout_ms) as admin:
        done = admin.create_group(group, cluster=cluster, broker=broker, retry_queue_nums=retry_queues,
                                  retry_max_times=retry_max_times, consume_enable=not disable,
                                  broadcast_enable=not no_broadcast)
    emit(as_json, {"group": group, "brokers": done}, [[group, a] for a in done], ["GROUP", "CREATED ON"])


@group_app.command("list")
def group_list(namesrv: NamesrvOpt = "", cluster: ClusterOpt = None, broker: BrokerOpt = None,
               as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Every consumer group of each master (mqadmin getSubGroup / consumerGroupList)."""
    with admin_client(namesrv, timeout_ms) as admin:
        addrs = [broker] if broker else [b.addr for b in admin.masters(cluster)]
        doc = {addr: admin.groups(addr) for addr in addrs}
    rows = [[addr, name, cfg.get("consumeEnable"), cfg.get("consumeBroadcastEnable"), cfg.get("retryQueueNums"),
             cfg.get("retryMaxTimes")] for addr, groups in doc.items() for name, cfg in sorted(groups.items())]
    emit(as_json, doc, rows, ["BROKER", "GROUP", "CONSUME", "BROADCAST", "RETRY QUEUES", "RETRY MAX"])


# --- consumers and producers -------------------------------------------------------------------------

GroupOpt = Annotated[str, typer.Option("--group", "-g", help="The group.")]


@consumer_app.command("progress")
def consumer_progress(group: GroupOpt, namesrv: NamesrvOpt = "",
                      topic: Annotated[str | None, typer.Option("--topic", "-t", help="Only this topic.")] = None,
                      cluster: ClusterOpt = None, as_json: JsonOpt = False,
                      timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Per queue: broker offset, consumer offset, lag and last consume time (mqadmin consumerProgress)."""
    with admin_client(namesrv, timeout_ms) as admin:
        stats = admin.consumer_progress(group, topic, cluster)
    queues = [{"topic": mq.topic, "brokerName": mq.broker_name, "queueId": mq.queue_id,
               "brokerOffset": w.broker_offset, "consumerOffset": w.consumer_offset, "lag": w.lag,
               "lastTimestamp": w.last_timestamp} for mq, w in stats.offset_table]
    doc = {"group": group, "queues": queues, "totalLag": stats.total_lag, "consumeTps": stats.consume_tps}
    if as_json:
        emit(True, doc)
        return
    rows = [[q["topic"], q["brokerName"], q["queueId"], q["brokerOffset"], q["consumerOffset"], q["lag"],
             fmt_ms(q["lastTimestamp"])] for q in queues]
    typer.echo(table(rows, ["TOPIC", "BROKER", "QUEUE", "BROKER OFFSET", "CONSUMER OFFSET", "LAG", "LAST CONSUMED"]))
    typer.echo(f"total lag: {stats.total_lag}   consume TPS: {stats.consume_tps:.1f}")


@consumer_app.command("connections")
def consumer_connections(group: GroupOpt, namesrv: NamesrvOpt = "", cluster: ClusterOpt = None,
                         as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """The online clients of a consumer group and their subscriptions (mqadmin consumerConnection)."""
    with admin_client(namesrv, timeout_ms) as admin:
        doc = admin.consumer_connections(group, cluster)
    rows = [[c.get("clientId"), c.get("clientAddr"), c.get("language"), c.get("version")]
            for c in doc.get("connectionSet") or []]
    emit(as_json, doc, rows, ["CLIENT ID", "ADDRESS", "LANGUAGE", "VERSION"])


@producer_app.command("connections")
def producer_connections(group: GroupOpt, namesrv: NamesrvOpt = "", cluster: ClusterOpt = None,
                         as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """The online clients of a producer group (mqadmin producerConnection)."""
    with admin_client(namesrv, timeout_ms) as admin:
        doc = admin.producer_connections(group, cluster)
    rows = [[c.get("clientId"), c.get("clientAddr"), c.get("language"), c.get("version")]
            for c in doc.get("connectionSet") or []]
    emit(as_json, doc, rows, ["CLIENT ID", "ADDRESS", "LANGUAGE", "VERSION"])


@offset_app.command("reset")
def offset_reset(group: GroupOpt,
                 topic: Annotated[str, typer.Option("--topic", "-t", help="The topic.")],
                 at: Annotated[str, typer.Option("--time", help="now, -30m, epoch ms or 2024-05-01T10:00:00.")],
                 namesrv: NamesrvOpt = "",
                 no_force: Annotated[bool, typer.Option("--no-force", help="Never move an offset backwards.")] = False,
                 as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Move a group's offsets on a topic to the first message stored at or after a time
    (mqadmin resetOffsetByTime); online consumers are told at once."""
    timestamp = parse_time_ms(at)
    with admin_client(namesrv, timeout_ms) as admin:
        masters = admin.route_masters(topic)
        result = []
        with Progress("reset offsets", total=len(masters), unit="brokers") as progress:
            for b in masters:
                result.extend(admin.reset_offset_by_time(group, topic, timestamp, force=not no_force,
                                                         broker=b.addr))
                progress.advance(1)
    doc = [{"brokerName": mq.broker_name, "queueId": mq.queue_id, "offset": off} for mq, off in result]
    emit(as_json, {"group": group, "topic": topic, "timestamp": timestamp, "queues": doc},
         [[d["brokerName"], d["queueId"], d["offset"]] for d in doc], ["BROKER", "QUEUE", "NEW OFFSET"])


# --- messages ------------------------------------------------------------------------------------------


def _print_messages(records: list[Any], as_json: bool) -> None:
    docs = [message_to_obj(r) for r in records]
    if as_json:
        emit(True, docs)
        return
    for i, d in enumerate(docs):
        if i:
            typer.echo("")
        for key in ("msgId", "offsetMsgId", "topic", "queueId", "queueOffset", "commitLogOffset", "tags", "keys",
                    "bornHost", "storeHost", "reconsumeTimes", "bodyCRC", "bodySize"):
            typer.echo(f"{key + ':':<18}{d[key]}")
        typer.echo(f"{'bornTimestamp:':<18}{fmt_ms(d['bornTimestamp'])}")
        typer.echo(f"{'storeTimestamp:':<18}{fmt_ms(d['storeTimestamp'])}")
        typer.echo(f"{'properties:':<18}{json.dumps(d['properties'], sort_keys=True)}")
        typer.echo(f"{'body:':<18}{d['body'] if d['body'] is not None else '(binary) ' + d['bodyHex']}")


@message_app.command("query-key")
def message_query_key(topic: Annotated[str, typer.Option("--topic", "-t")],
                      key: Annotated[str, typer.Option("--key", "-k", help="A business key (KEYS).")],
                      namesrv: NamesrvOpt = "",
                      begin: Annotated[str, typer.Option("--begin", help="Stored at or after (see offset reset --time)."
                                                         )] = "0",
                      end: Annotated[str, typer.Option("--end", help="Stored at or before.")] = "now",
                      max_num: Annotated[int, typer.Option("--max", min=1, max=limits.INDEX_QUERY_RESULTS_MAX)] = 32,
                      as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Messages whose KEYS contain a key, over a time range (mqadmin queryMsgByKey)."""
    with admin_client(namesrv, timeout_ms) as admin:
        found = admin.query_by_key(topic, key, begin_ms=parse_time_ms(begin), end_ms=parse_time_ms(end),
                                   max_num=max_num)
    if not found:
        raise fail(EXIT_REFUSED, f"no message of topic {topic} has key {key!r} in that time range; widen "
                                 "--begin/--end or check the key")
    _print_messages(found, as_json)


@message_app.command("query-id")
def message_query_id(msg_id: Annotated[str, typer.Argument(help="An offset msgId (32 hex digits).")],
                     namesrv: NamesrvOpt = "", as_json: JsonOpt = False,
                     timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """The message at an offset msgId: it names the broker and CommitLog offset (mqadmin queryMsgById)."""
    with admin_client(namesrv, timeout_ms, need_namesrv=False) as admin:
        record = admin.view_by_offset_msg_id(msg_id)
    _print_messages([record], as_json)


@message_app.command("query-uniq")
def message_query_uniq(topic: Annotated[str, typer.Option("--topic", "-t")],
                       uniq_key: Annotated[str, typer.Argument(help="The msgId a producer printed (UNIQ_KEY).")],
                       namesrv: NamesrvOpt = "", as_json: JsonOpt = False,
                       timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """A message by its unique key, the msgId producers print (mqadmin queryMsgByUniqueKey)."""
    with admin_client(namesrv, timeout_ms) as admin:
        found = admin.query_by_unique_key(topic, uniq_key)
    if not found:
        raise fail(EXIT_REFUSED, f"no message of topic {topic} has unique key {uniq_key}; check the topic")
    _print_messages(found, as_json)


@message_app.command("send")
def message_send(topic: Annotated[str, typer.Option("--topic", "-t")],
                 body: Annotated[str, typer.Option("--body", "-p", help="The message body (UTF-8 text).")],
                 namesrv: NamesrvOpt = "",
                 tags: Annotated[str | None, typer.Option("--tags")] = None,
                 keys: Annotated[str | None, typer.Option("--keys", "-k", help="Business keys, space separated.")
                                 ] = None,
                 queue: Annotated[int | None, typer.Option("--queue", min=0)] = None,
                 as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Send one message (mqadmin sendMessage)."""
    with admin_client(namesrv, timeout_ms) as admin:
        result = admin.send(topic, body.encode(), tags=tags, keys=keys, queue_id=queue)
    doc = {"msgId": result.msg_id, "offsetMsgId": result.offset_msg_id, "brokerName": result.broker_name,
           "queueId": result.queue_id, "queueOffset": result.queue_offset, "status": "SEND_OK"}
    emit(as_json, doc, [[doc["msgId"], doc["offsetMsgId"], doc["brokerName"], doc["queueId"], doc["queueOffset"]]],
         ["MSG ID", "OFFSET MSG ID", "BROKER", "QUEUE", "QUEUE OFFSET"])


# --- produce / consume ------------------------------------------------------------------------------------


def produce(topic: Annotated[str, typer.Option("--topic", "-t")], namesrv: NamesrvOpt = "",
            count: Annotated[int, typer.Option("--count", "-N", min=1, help="Messages to send.")] = 1,
            body: Annotated[str | None, typer.Option("--body", "-p", help="Body text (default: 'message <i>').")
                            ] = None,
            size: Annotated[int | None, typer.Option("--size", min=1, max=limits.MESSAGE_SIZE_MAX_DEFAULT,
                                                     help="Bodies of this many bytes instead.")] = None,
            tags: Annotated[str | None, typer.Option("--tags")] = None,
            keys: Annotated[str | None, typer.Option("--keys", "-k")] = None,
            as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Send N messages to a topic, one at a time, and print each result (JSON lines with --json). """
    with admin_client(namesrv, timeout_ms) as admin, Progress("produce", total=count, unit="msgs") as progress:
        for i in range(count):
            payload = (b"x" * size) if size else (body if body is not None else f"message {i}").encode()
            r = admin.send(topic, payload, tags=tags, keys=keys)
            progress.advance(1)
            if as_json:
                typer.echo(json.dumps({"msgId": r.msg_id, "offsetMsgId": r.offset_msg_id,
                                       "brokerName": r.broker_name, "queueId": r.queue_id,
                                       "queueOffset": r.queue_offset}))
            elif not progress.live:
                typer.echo(f"SEND_OK {r.msg_id} {r.broker_name}:{r.queue_id}@{r.queue_offset}")


def consume(topic: Annotated[str, typer.Option("--topic", "-t")], namesrv: NamesrvOpt = "",
            group: Annotated[str, typer.Option("--group", "-g", help="Group named in the pulls (offsets are not "
                                               "committed).")] = "rocketpy_cli_consumer",
            max_msgs: Annotated[int, typer.Option("--max", min=1, help="Stop after this many messages.")] = 1000,
            start: Annotated[str, typer.Option("--from", help="earliest (default) or latest.")] = "earliest",
            follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new messages.")] = False,
            as_json: JsonOpt = False, timeout_ms: TimeoutOpt = limits.ADMIN_TIMEOUT_MS_DEFAULT) -> None:
    """Print the messages of a topic: every queue of every master, from the start (or the end),
    until --max messages or, without --follow, until every queue is read to its end."""
    if start not in ("earliest", "latest"):
        raise fail(EXIT_USAGE, f"--from {start!r} is not earliest or latest")
    printed = 0
    with admin_client(namesrv, timeout_ms) as admin:
        route = admin.topic_route(topic)
        masters = {b.broker_name: b.master_addr for b in route.broker_datas if b.master_addr}
        cursors: dict[tuple[str, str, int], int] = {}
        for qd in route.queue_datas:
            addr = masters.get(qd.broker_name)
            if addr is None:
                continue
            for qid in range(qd.read_queue_nums):
                lookup: Callable[..., int] = admin.min_offset if start == "earliest" else admin.max_offset
                cursors[(qd.broker_name, addr, qid)] = lookup(addr, topic, qid)
        while printed < max_msgs:
            got = 0
            for (name, addr, qid), offset in list(cursors.items()):
                res = admin.pull(addr, topic, qid, offset, group=group,
                                 max_msgs=min(limits.ADMIN_CONSUME_MSGS_MAX, max_msgs - printed))
                if res.code == ResponseCode.PULL_OFFSET_MOVED:
                    cursors[(name, addr, qid)] = res.next_begin_offset
                    continue
                cursors[(name, addr, qid)] = res.next_begin_offset
                for record in res.messages[:max_msgs - printed]:
                    printed += 1
                    got += 1
                    if as_json:
                        typer.echo(json.dumps(message_to_obj(record), sort_keys=True))
                    else:
                        body = record.body.decode(errors="replace")
                        typer.echo(f"{name}:{qid}@{record.queue_offset} {record.property_map().get('TAGS') or '-'} "
                                   f"{body}")
                if printed >= max_msgs:
                    break
            if got == 0:
                if not follow:
                    break
                time.sleep(limits.CONSUME_FOLLOW_POLL_MS / 1000)
    if not as_json:
        typer.echo(f"{printed} messages", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(admin_app, name="admin")
    app.command("produce")(produce)
    app.command("consume")(consume)


def main() -> None:  # pragma: no cover - `python -m rocketpy.cli.admin`
    admin_app(prog_name="rocketpy admin")


if __name__ == "__main__":  # pragma: no cover
    main()
