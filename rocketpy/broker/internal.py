"""How the broker's processes talk to each other, apart from shared memory.

Workers and control speak the remoting protocol itself (same frames, same
codec) over one unix socket per worker, in the abstract namespace
(`control_socket_name`). A worker forwards a client request that control owns
unchanged (its code, ext fields and body), adding the `X_*` ext fields below
so control knows which client and connection it came from; control answers
with an ordinary response, which the worker re-stamps with the client's opaque.

Requests only the broker's own processes send use the private codes below
(above 9000, a range RocketMQ never used). Both directions are requests:

| code | from -> to | ext / body | meaning |
|---|---|---|---|
| WORKER_HELLO | worker -> control | X_WORKER | first frame on a worker's socket |
| CLIENT_CONNECTION_CLOSED | worker -> control, oneway | X_CONN | a client connection closed: unregister it now |
| AUTO_CREATE_TOPIC | worker -> control | topic, defaultTopic, defaultTopicQueueNums | create a topic from a template (TBW102) or %RETRY% / %DLQ% rules; response body = TopicConfig JSON, or TOPIC_NOT_EXIST |
| COMMIT_OFFSETS | worker -> control, oneway | body: JSON {"offsets":[[group, topic, queueId, offset], ...]} | consumer offsets batched from pulls and UPDATE_CONSUMER_OFFSET |
| TOPICS_CHANGED | control -> worker, oneway | body: TopicConfigSerializeWrapper JSON | the whole topic table, after every change and on WORKER_HELLO |
| PUSH_TO_CLIENT | control -> worker, oneway | X_CONN; body: one encoded remoting frame | write this request (e.g. NOTIFY_CONSUMER_IDS_CHANGED) to that client connection |
| GROUPS_CHANGED | control -> worker, oneway | body: {"subscriptionGroupTable": {...}} | consumer group configs |
| STATS | worker or writer -> control, oneway | body: one interval's counters (metrics/stats.py) | metrics, once a second |
| TRANSACTION_CLAIM | worker -> control | halfOffset, commitLogOffset, X_WORKER | END_TRANSACTION may end this half message (SUCCESS), or it is already ended or being ended (SYSTEM_ERROR + why) |
| TRANSACTION_DONE | worker -> control, oneway | halfOffset, opOffset (-1: no op message), X_WORKER | the half message is ended; lets go of its claim (opOffset absent: nothing was put, the claim is just released) |
| SUBSCRIPTIONS_CHANGED | control -> worker, oneway | body: {"groups": {group: {"messageModel", "subscriptions": [SubscriptionData]}}} | consumers' subscriptions from heartbeats (`broker/filter/subscriptions.py`), the whole table after every change and on WORKER_HELLO |
"""

from __future__ import annotations

import enum
import re


class InternalCode(enum.IntEnum):
    WORKER_HELLO = 9001
    CLIENT_CONNECTION_CLOSED = 9002
    AUTO_CREATE_TOPIC = 9003
    COMMIT_OFFSETS = 9004
    STATS = 9005
    TOPICS_CHANGED = 9101
    PUSH_TO_CLIENT = 9102
    GROUPS_CHANGED = 9103
    TRANSACTION_CLAIM = 9201
    TRANSACTION_DONE = 9202
    SUBSCRIPTIONS_CHANGED = 9104


# Ext fields a worker adds to forwarded client requests.
X_WORKER = "X_WORKER"          # worker slot number
X_CONN = "X_CONN"              # worker-local connection id (int, unique per worker boot)
X_CLIENT_ADDR = "X_CLIENT_ADDR"  # "ip:port" of the client
X_LANGUAGE = "X_LANGUAGE"      # the client's language (for broker -> client body formats)
X_VERSION = "X_VERSION"        # the client's protocol version

INTERNAL_EXT_FIELDS = frozenset({X_WORKER, X_CONN, X_CLIENT_ADDR, X_LANGUAGE, X_VERSION})

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def control_socket_name(broker_name: str, boot_id: str) -> str:
    """Abstract-namespace unix socket of control (no file to clean up after a crash)."""
    return f"\0rocketpy.{_SAFE.sub('_', broker_name)[:64]}.{boot_id}.control"


def connection_key(worker_slot: int, conn_id: int) -> str:
    """A client connection's identity across the broker: worker slot + its connection id."""
    return f"{worker_slot}:{conn_id}"
