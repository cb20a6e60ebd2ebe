"""END_TRANSACTION (37) and the half messages of the send path — RocketMQ's EndTransactionProcessor
and TransactionalMessageBridge (remoting-protocol.md §9.8, §11.8).

A send whose property TRAN_MSG is true (SendMessageProcessor's only test) is stored as a *half
message* (`half_message`): topic RMQ_SYS_TRANS_HALF_TOPIC, queue 0, properties REAL_TOPIC and
REAL_QID added, sysFlag transaction bits reset to NOT so the half gets a queue entry there. The
client gets the usual SEND_OK with the half's msgId and queue offset, and sends them back in
END_TRANSACTION (oneway in every client)::

    END_TRANSACTION -> slave? SLAVE_NOT_AVAILABLE
                    -> type NOT (0) or unknown: nothing, no answer (as RocketMQ)
                    -> read the record at commitLogOffset; it must be a half message whose PGROUP
                       is producerGroup and whose queue offset is tranStateTableOffset
                    -> TRANSACTION_CLAIM to control (one END_TRANSACTION per half; control/transaction.py)
                    -> commit: put the real message      rollback: -
                    -> put the op message (RMQ_SYS_TRANS_OP_HALF_TOPIC, tag "d", body = half queue offset)
                    -> TRANSACTION_DONE to control (op queue offset; -1 if the op put failed after a commit)

The committed message is what RocketMQ's endMessageTransaction stores: the half's body, flag,
born timestamp and host, reconsume times and properties, topic REAL_TOPIC and queue REAL_QID,
sysFlag transaction bits COMMIT, preparedTransactionOffset = the half's commitLogOffset. Its
properties keep REAL_TOPIC, REAL_QID and TRAN_MSG: RocketMQ 4.9.x clears them from the property
map only after it serialized the map into the stored string. UNIQ_KEY is kept, so the client's
msgId of the message stays the same. Both puts use WAIT=false (RocketMQ's too); the op message is
put only once the committed message is stored, so the CommitLog holds it first and no recovery
can keep an op message without its committed message. A worker killed between the two puts leaves
a committed half without its op message; the next END_TRANSACTION for it (the check-back's answer)
finds the committed copy through the IndexFile (UNIQ_KEY in the real topic, same
preparedTransactionOffset) and stores only the op message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from rocketpy import limits
from rocketpy.broker.connection import ClientConnection
from rocketpy.broker.handlers import WorkerContext
from rocketpy.broker.handlers.forward import REMARK_CONTROL_DOWN, ControlLink, ControlUnavailable
from rocketpy.broker.handlers.send import SendHandlers, host_bytes
from rocketpy.broker.internal import X_WORKER, InternalCode
from rocketpy.errors import ProtocolError
from rocketpy.protocol import topics as t
from rocketpy.protocol.codes import ResponseCode
from rocketpy.protocol.headers import EndTransactionRequestHeader
from rocketpy.protocol.message import (
    NAME_VALUE_SEPARATOR,
    PROPERTY_PRODUCER_GROUP,
    PROPERTY_REAL_QUEUE_ID,
    PROPERTY_REAL_TOPIC,
    PROPERTY_SEPARATOR,
    PROPERTY_TAGS,
    PROPERTY_UNIQ_KEY,
    TRANSACTION_COMMIT,
    TRANSACTION_NOT,
    TRANSACTION_ROLLBACK,
    TRANSACTION_TYPE_MASK,
    MessageRecord,
    decode_record,
    format_properties,
    parse_properties,
)
from rocketpy.protocol.msgid import new_uniq_key
from rocketpy.protocol.remoting import RemotingCommand

log = logging.getLogger("rocketpy.broker.worker")

HALF_TOPIC = t.RMQ_SYS_TRANS_HALF_TOPIC
OP_TOPIC = t.RMQ_SYS_TRANS_OP_HALF_TOPIC
HALF_QUEUE_ID = 0
REMOVE_TAG = "d"
# Put answers RocketMQ counts as stored (EndTransactionProcessor.sendFinalMessage).
_STORED = frozenset({ResponseCode.SUCCESS, ResponseCode.FLUSH_DISK_TIMEOUT, ResponseCode.FLUSH_SLAVE_TIMEOUT,
                     ResponseCode.SLAVE_NOT_AVAILABLE})
_NO_END_MS = 1 << 62                # an index query with no upper bound on store time
_REAL_PREFIXES = (PROPERTY_REAL_TOPIC + NAME_VALUE_SEPARATOR, PROPERTY_REAL_QUEUE_ID + NAME_VALUE_SEPARATOR)


def half_message(topic: str, queue_id: int, props: str, sys_flag: int) -> tuple[str, int, str, int]:
    """(topic, queue id, properties, sysFlag) a transactional send is stored with
    (TransactionalMessageBridge.parseHalfMessageInner)."""
    real = f"{PROPERTY_REAL_TOPIC}{NAME_VALUE_SEPARATOR}{topic}{PROPERTY_SEPARATOR}" \
           f"{PROPERTY_REAL_QUEUE_ID}{NAME_VALUE_SEPARATOR}{queue_id}"
    if any(prefix in props for prefix in _REAL_PREFIXES):
        parsed = parse_properties(props)
        parsed[PROPERTY_REAL_TOPIC] = topic
        parsed[PROPERTY_REAL_QUEUE_ID] = str(queue_id)
        props = format_properties(parsed)
    elif not props:
        props = real
    else:
        props = (props if props.endswith(PROPERTY_SEPARATOR) else props + PROPERTY_SEPARATOR) + real
    return HALF_TOPIC, HALF_QUEUE_ID, props, (sys_flag & ~TRANSACTION_TYPE_MASK) | TRANSACTION_NOT


class TransactionHandlers:
    """END_TRANSACTION, served in the worker that holds the producer's connection."""

    def __init__(self, ctx: WorkerContext, send: SendHandlers, link: ControlLink | None) -> None:
        self.ctx = ctx
        self.send = send
        self.link = link

    def handle_end_transaction(self, request: RemotingCommand, conn: ClientConnection) -> Any:
        if not self.ctx.is_master:
            return request.response(ResponseCode.SLAVE_NOT_AVAILABLE,
                                    "this broker is a slave and cannot end transactions; send END_TRANSACTION "
                                    "to its master")
        header = EndTransactionRequestHeader.from_command(request)
        kind = header.commit_or_rollback
        if kind not in (TRANSACTION_COMMIT, TRANSACTION_ROLLBACK):
            log.info("END_TRANSACTION of type %d (not commit or rollback) from %s for half offset %d: nothing to do",
                     kind, conn.peer, header.tran_state_table_offset)
            return None
        half = self._find_half(header)
        if isinstance(half, str):
            log.warning("END_TRANSACTION from %s refused: %s", conn.peer, half)
            return request.response(ResponseCode.SYSTEM_ERROR, half)
        return self._end(request, conn, header, half)

    def _find_half(self, header: EndTransactionRequestHeader) -> MessageRecord | str:
        """The half message the header names, or why it is not there (one sentence)."""
        ctx = self.ctx
        phys = header.commit_log_offset
        view = ctx.reader().read_record(phys, ctx.control_block.committed_offset) if phys >= 0 else None
        try:
            rec = decode_record(view) if view is not None else None
        except ProtocolError:
            rec = None
        if rec is None or rec.phys_offset != phys:
            return (f"Find prepared transaction message failed: no message starts at commitLogOffset {phys}; "
                    "send the offsets the half message's send result gave")
        if rec.topic != HALF_TOPIC:
            return (f"the message at commitLogOffset {phys} is in topic {rec.topic}, not a transactional half "
                    "message; send the offsets the half message's send result gave")
        group = rec.property_map().get(PROPERTY_PRODUCER_GROUP)
        if group != header.producer_group:
            return (f"The producer group wrong: the half message at commitLogOffset {phys} belongs to producer "
                    f"group {group!r}, not {header.producer_group!r}")
        if rec.queue_offset != header.tran_state_table_offset:
            return (f"The transaction state table offset wrong: the half message at commitLogOffset {phys} has "
                    f"queue offset {rec.queue_offset}, not {header.tran_state_table_offset}")
        return rec

    async def _end(self, request: RemotingCommand, conn: ClientConnection, header: EndTransactionRequestHeader,
                   half: MessageRecord) -> RemotingCommand | None:
        link = self.link
        if link is None or not link.ready:
            return request.response(ResponseCode.SYSTEM_ERROR, REMARK_CONTROL_DOWN)
        half_offset = half.queue_offset
        ask = RemotingCommand.request(InternalCode.TRANSACTION_CLAIM, {
            "halfOffset": str(half_offset), "commitLogOffset": str(half.phys_offset),
            X_WORKER: str(self.ctx.slot)})
        try:
            answer = await link.request(ask)
        except ControlUnavailable as exc:
            return request.response(ResponseCode.SYSTEM_ERROR, str(exc))
        if answer.code != ResponseCode.SUCCESS:
            log.info("END_TRANSACTION from %s for half offset %d not done: %s", conn.peer, half_offset, answer.remark)
            return request.response(answer.code, answer.remark)
        commit = header.commit_or_rollback == TRANSACTION_COMMIT
        op_offset: int | None = None             # None: nothing stored, the claim is let go
        try:
            if commit and self._already_committed(half):
                log.warning("half offset %d (msgId %s) was committed before its op message was stored (a worker "
                            "died in between?); storing only the op message now", half_offset, header.msg_id)
            elif commit:
                stored = await self._put(self._commit_put(half))
                if stored.code not in _STORED:
                    log.error("commit of half offset %d failed: %s %s", half_offset, stored.code, stored.remark)
                    return request.response(stored.code, stored.remark)
            op = await self._put(self._op_put(half))
            if op.code in _STORED:
                op_offset = int(op.ext_str("queueOffset") or -1)
            elif commit:
                op_offset = -1                   # the commit is stored: the half must never be ended again
                log.error("op message of committed half offset %d not stored (%s %s); control closes the half",
                          half_offset, op.code, op.remark)
            else:
                return request.response(op.code, op.remark)
            log.info("transaction %s: half offset %d, commitLogOffset %d, msgId %s, group %s%s",
                     "committed" if commit else "rolled back", half_offset, half.phys_offset,
                     header.msg_id, header.producer_group, " (answering a check)" if header.from_transaction_check
                     else "")
            return request.response(ResponseCode.SUCCESS)
        finally:
            done = {"halfOffset": str(half_offset), X_WORKER: str(self.ctx.slot)}
            if op_offset is not None:
                done["opOffset"] = str(op_offset)
            if not link.send_oneway(RemotingCommand.request(InternalCode.TRANSACTION_DONE, done)):
                log.warning("control not reachable to record the end of half offset %d; its op message will tell it",
                            half_offset)

    def _already_committed(self, half: MessageRecord) -> bool:
        """Whether the store holds a committed copy of this half already: a worker killed after storing
        the commit and before its op message. Found through the IndexFile by UNIQ_KEY in the real topic
        (the index is built within moments; a check-back comes an interval later)."""
        props = half.property_map()
        uniq, real_topic = props.get(PROPERTY_UNIQ_KEY), props.get(PROPERTY_REAL_TOPIC)
        if not uniq or not real_topic:
            return False
        ctx = self.ctx
        reader = ctx.reader()
        committed = ctx.control_block.committed_offset
        for phys in reader.query_by_key(real_topic, uniq, limits.INDEX_QUERY_RESULTS_MAX, half.store_timestamp,
                                        _NO_END_MS, committed_offset=committed):
            view = reader.read_record(phys, committed)
            try:
                rec = decode_record(view) if view is not None else None
            except ProtocolError:
                continue
            if rec is not None and rec.topic == real_topic and rec.prepared_transaction_offset == half.phys_offset \
                    and rec.sys_flag & TRANSACTION_TYPE_MASK == TRANSACTION_COMMIT:
                return True
        return False

    async def _put(self, future: asyncio.Future[RemotingCommand]) -> RemotingCommand:
        try:
            return await asyncio.wait_for(asyncio.shield(future), limits.TRANSACTION_END_PUT_TIMEOUT_MS / 1000)
        except TimeoutError:
            return RemotingCommand.request(0, {}).response(
                ResponseCode.SYSTEM_ERROR, f"the store did not answer within {limits.TRANSACTION_END_PUT_TIMEOUT_MS} "
                "ms; the transaction stays open and will be checked back")

    def _commit_put(self, half: MessageRecord) -> asyncio.Future[RemotingCommand]:
        props = half.property_map()
        real_topic = props.get(PROPERTY_REAL_TOPIC, "")
        real_qid = props.get(PROPERTY_REAL_QUEUE_ID, "")
        if not real_topic or not real_qid.isdigit():
            future: asyncio.Future[RemotingCommand] = asyncio.get_running_loop().create_future()
            future.set_result(RemotingCommand.request(0, {}).response(
                ResponseCode.SYSTEM_ERROR, f"the half message at commitLogOffset {half.phys_offset} lacks REAL_TOPIC "
                "or REAL_QID; it cannot be committed"))
            return future
        try:
            born_ip, _ = host_bytes(half.born_host)
        except ValueError:
            born_ip = bytes(4)
        sys_flag = (half.sys_flag & ~TRANSACTION_TYPE_MASK) | TRANSACTION_COMMIT
        return self.send.put_record(real_topic, int(real_qid), half.body, half.properties, flag=half.flag,
                                    sys_flag=sys_flag, born_timestamp_ms=half.born_timestamp, born_ip=born_ip,
                                    born_port=half.born_port, reconsume_times=half.reconsume_times, wait=False,
                                    prepared_transaction_offset=half.phys_offset)

    def _op_put(self, half: MessageRecord) -> asyncio.Future[RemotingCommand]:
        props = format_properties({PROPERTY_TAGS: REMOVE_TAG, PROPERTY_UNIQ_KEY: new_uniq_key()})
        return self.send.put_record(OP_TOPIC, HALF_QUEUE_ID, str(half.queue_offset).encode(), props,
                                    born_timestamp_ms=_now_ms(), born_ip=self.send.store_ip,
                                    born_port=self.ctx.store_port, wait=False)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
