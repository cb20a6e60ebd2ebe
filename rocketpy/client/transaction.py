"""Transactional producers: `TransactionProducer` (blocking) and `AsyncTransactionProducer`.

    class Listener:
        def execute_local_transaction(self, msg, arg) -> LocalTransactionState: ...
        def check_local_transaction(self, msg_ext) -> LocalTransactionState: ...

    with TransactionProducer("PayProducers", Listener(), namesrv_addr=...) as producer:
        result = producer.send_message_in_transaction(Message("Payments", b"..."), arg=order)

The protocol (RocketMQ's TransactionMQProducer):

1. the message is sent as a half message: properties TRAN_MSG=true and PGROUP=<group>,
   sysFlag TRANSACTION_PREPARED; consumers do not see it yet;
2. if the broker stored it (SEND_OK), `execute_local_transaction(msg, arg)` runs; an
   exception or None counts as UNKNOW; a failed store counts as ROLLBACK_MESSAGE;
3. END_TRANSACTION (oneway) tells the broker: commit (8), rollback (12) or not yet (0),
   naming the half message by commitLogOffset (from its offset msgId) and
   tranStateTableOffset (its queue offset);
4. for a transaction left UNKNOW, the broker later sends CHECK_TRANSACTION_STATE with the
   half message; `check_local_transaction(msg_ext)` answers and END_TRANSACTION goes back
   with fromTransactionCheck=true.

Listener methods may be plain functions or coroutine functions. In the blocking producer,
execute_local_transaction runs on the caller's thread; check_local_transaction always runs
on a small thread pool (coroutine functions on the loop), so a slow check never stalls the
client's event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from rocketpy import limits
from rocketpy.client.config import ClientConfig
from rocketpy.client.message import (
    PROPERTY_TRANSACTION_ID,
    LocalTransactionState,
    Message,
    MessageExt,
    SendResult,
    SendStatus,
    TransactionSendResult,
)
from rocketpy.client.producer import AsyncProducer, Producer
from rocketpy.errors import ClientError, ProtocolError, RemotingConnectError
from rocketpy.protocol import headers as h
from rocketpy.protocol import message as pm
from rocketpy.protocol.codes import RequestCode
from rocketpy.protocol.msgid import decode_offset_msg_id

log = logging.getLogger("rocketpy.client.producer")

COMMIT_TYPE = {
    LocalTransactionState.COMMIT_MESSAGE: pm.TRANSACTION_COMMIT,      # 8
    LocalTransactionState.ROLLBACK_MESSAGE: pm.TRANSACTION_ROLLBACK,  # 12
    LocalTransactionState.UNKNOW: pm.TRANSACTION_NOT,                 # 0
}


class TransactionListener(Protocol):
    def execute_local_transaction(self, msg: Message, arg: Any) -> Any:
        """Run the local transaction of a stored half message; return a LocalTransactionState."""

    def check_local_transaction(self, msg: MessageExt) -> Any:
        """Tell the broker how a transaction left UNKNOW ended; return a LocalTransactionState."""


def _as_state(value: Any, what: str) -> LocalTransactionState:
    if isinstance(value, LocalTransactionState):
        return value
    if value is None:
        return LocalTransactionState.UNKNOW
    log.warning("%s returned %r, not a LocalTransactionState; treating it as UNKNOW", what, value)
    return LocalTransactionState.UNKNOW


class AsyncTransactionProducer(AsyncProducer):
    """A transactional producer on the caller's asyncio loop (see the module docstring)."""

    def __init__(self, group: str, listener: TransactionListener, *,
                 namesrv_addr: str | Sequence[str] | None = None, config: ClientConfig | None = None,
                 **options: Any) -> None:
        super().__init__(group, namesrv_addr=namesrv_addr, config=config, **options)
        for name in ("execute_local_transaction", "check_local_transaction"):
            if not callable(getattr(listener, name, None)):
                raise TypeError(f"the transaction listener needs a {name}() method")
        self.listener = listener
        self._check_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._check_tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self._check_tasks):
            task.cancel()
        await super().close()
        pool, self._check_pool = self._check_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def send_message_in_transaction(self, msg: Message, arg: Any = None) -> TransactionSendResult:
        """Send msg as a half message, run the local transaction, commit or roll back."""
        result = await self.send_half_message(msg)
        state, error = LocalTransactionState.ROLLBACK_MESSAGE, None
        if result.status is SendStatus.SEND_OK:
            try:
                value = self.listener.execute_local_transaction(msg, arg)
                if inspect.isawaitable(value):
                    value = await value
                state = _as_state(value, "execute_local_transaction")
            except Exception as exc:  # noqa: BLE001 - the broker will check back; report it in the remark
                log.warning("local transaction of %s raised %r; leaving it UNKNOW for the check-back",
                            result.msg_id, exc)
                state, error = LocalTransactionState.UNKNOW, exc
        await self.end_transaction(result, state, error)
        return TransactionSendResult(result, state)

    async def send_half_message(self, msg: Message) -> SendResult:
        """Step 1: the half message (TRAN_MSG, PGROUP; delay levels do not apply)."""
        msg.delay_level = 0
        msg.properties[pm.PROPERTY_TRANSACTION_PREPARED] = "true"
        msg.properties[pm.PROPERTY_PRODUCER_GROUP] = self.group
        result = await self.send(msg)
        if result.status is SendStatus.SEND_OK and result.transaction_id:
            msg.properties[PROPERTY_TRANSACTION_ID] = result.transaction_id
        return result

    async def end_transaction(self, result: SendResult, state: LocalTransactionState,
                              error: BaseException | None = None) -> None:
        """Step 3: END_TRANSACTION (oneway) to the master of the half message's broker."""
        try:
            _, _, commit_log_offset = decode_offset_msg_id(result.offset_msg_id or result.msg_id)
        except ProtocolError as exc:
            raise ClientError(f"cannot end transaction {result.msg_id}: the broker's message id is unreadable "
                              f"({exc})") from None
        header = h.EndTransactionRequestHeader(
            producer_group=self.group, tran_state_table_offset=result.queue_offset,
            commit_log_offset=commit_log_offset, commit_or_rollback=COMMIT_TYPE[state],
            msg_id=result.msg_id, from_transaction_check=False,
            transaction_id=result.transaction_id or result.msg_id)
        addr = await self._master_addr(result.message_queue)
        cmd = self.instance.command(RequestCode.END_TRANSACTION, header)
        if error is not None:
            cmd.remark = f"executeLocalTransactionBranch exception: {error!r}"[:512]
        await self.instance.invoke_oneway(addr, cmd)

    # --- CHECK_TRANSACTION_STATE (called by the client instance) --------------------------------

    def check_transaction_state(self, broker_addr: str, msg: MessageExt,
                                header: h.CheckTransactionStateRequestHeader) -> None:
        """Answer a check-back in a task of its own, so the connection keeps serving."""
        task = asyncio.get_running_loop().create_task(self._check(broker_addr, msg, header))
        self._check_tasks.add(task)
        task.add_done_callback(self._check_tasks.discard)

    async def _check(self, broker_addr: str, msg: MessageExt, header: h.CheckTransactionStateRequestHeader) -> None:
        error: BaseException | None = None
        try:
            check = self.listener.check_local_transaction
            if inspect.iscoroutinefunction(check):
                value = await check(msg)
            else:
                if self._check_pool is None:
                    self._check_pool = concurrent.futures.ThreadPoolExecutor(
                        limits.PRODUCER_CHECK_THREADS_MAX, thread_name_prefix=f"rocketpy-txcheck-{self.group}")
                value = await asyncio.get_running_loop().run_in_executor(
                    self._check_pool, functools.partial(check, msg))
            state = _as_state(value, "check_local_transaction")
        except Exception as exc:  # noqa: BLE001 - reported to the broker, which checks again later
            log.warning("check_local_transaction of %s raised %r", msg.msg_id, exc)
            state, error = LocalTransactionState.UNKNOW, exc
        end = h.EndTransactionRequestHeader(
            producer_group=self.group, tran_state_table_offset=header.tran_state_table_offset,
            commit_log_offset=header.commit_log_offset, commit_or_rollback=COMMIT_TYPE[state],
            msg_id=msg.uniq_key or msg.msg_id, from_transaction_check=True,
            transaction_id=header.transaction_id)
        cmd = self.instance.command(RequestCode.END_TRANSACTION, end)
        if error is not None:
            cmd.remark = f"checkLocalTransactionState exception: {error!r}"[:512]
        try:
            await self.instance.invoke_oneway(broker_addr, cmd)
        except RemotingConnectError as exc:
            log.warning("END_TRANSACTION after a check of %s could not reach %s: %s", msg.msg_id, broker_addr, exc)


class TransactionProducer(Producer):
    """The blocking transactional producer; execute_local_transaction runs on the caller's thread."""

    _async_class = AsyncTransactionProducer

    def __init__(self, group: str, listener: TransactionListener, *,
                 namesrv_addr: str | Sequence[str] | None = None, config: ClientConfig | None = None,
                 **options: Any) -> None:
        self._listener = listener
        super().__init__(group, namesrv_addr=namesrv_addr, config=config, **options)

    def _make_impl(self, group: str, namesrv_addr: str | Sequence[str] | None, config: ClientConfig | None,
                   options: dict[str, Any]) -> AsyncProducer:
        return AsyncTransactionProducer(group, self._listener, namesrv_addr=namesrv_addr, config=config,
                                        **options)

    def __enter__(self) -> TransactionProducer:
        self.start()
        return self

    def send_message_in_transaction(self, msg: Message, arg: Any = None) -> TransactionSendResult:
        """Half message, local transaction on this thread, then commit/rollback."""
        impl = self._impl
        assert isinstance(impl, AsyncTransactionProducer)
        bound = self._call_timeout_s() * (1 + impl.options.retry_times_when_send_failed)
        result = self._loop.run(impl.send_half_message(msg), bound)
        state, error = LocalTransactionState.ROLLBACK_MESSAGE, None
        if result.status is SendStatus.SEND_OK:
            try:
                state = _as_state(self._listener.execute_local_transaction(msg, arg), "execute_local_transaction")
            except Exception as exc:  # noqa: BLE001 - the broker will check back
                log.warning("local transaction of %s raised %r; leaving it UNKNOW for the check-back",
                            result.msg_id, exc)
                state, error = LocalTransactionState.UNKNOW, exc
        self._loop.run(impl.end_transaction(result, state, error), self._call_timeout_s())
        return TransactionSendResult(result, state)
