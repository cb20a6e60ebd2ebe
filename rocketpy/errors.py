"""The exception tree of rocketpy.

Every error a user can meet says what happened and what to do. Errors that map
to a RocketMQ response code carry it, and `retriable` tells a client whether
sending again (possibly to another broker) can help.
"""

from __future__ import annotations


class RocketpyError(Exception):
    """Base of every rocketpy error."""

    retriable: bool = False


class ProtocolError(RocketpyError):
    """Bytes from the network that do not form a valid frame, header or body.

    Raised by every decoder in `rocketpy.protocol`; never anything else. The
    receiver closes that one connection and logs the reason.
    """


class FrameTooLargeError(ProtocolError):
    """A frame longer than limits.FRAME_SIZE_MAX."""


class StoreError(RocketpyError):
    """A failure of the on-disk store."""


class CorruptStoreError(StoreError):
    """Store files that recovery cannot make sense of; the broker must not start."""


class DiskFullError(StoreError):
    """The store refuses writes because disk usage passed the reject ratio."""

    retriable = True


class MessageIllegalError(RocketpyError):
    """A message that breaks a size or name rule (MESSAGE_ILLEGAL)."""


class ConfigError(RocketpyError):
    """A bad configuration key or value; the message names the key."""


class RemotingError(RocketpyError):
    """A request answered with a non-success response code."""

    def __init__(self, code: int, remark: str | None = None) -> None:
        self.code = code
        self.remark = remark or ""
        super().__init__(f"response code {code}: {self.remark}" if self.remark else f"response code {code}")


class RemotingTimeoutError(RocketpyError):
    """No response within the request's timeout."""

    retriable = True


class RemotingConnectError(RocketpyError):
    """The peer could not be reached or the connection closed under a request."""

    retriable = True


# Response codes whose failure may succeed when retried (possibly elsewhere).
# SYSTEM_ERROR 1, SYSTEM_BUSY 2, SERVICE_NOT_AVAILABLE 14, NO_PERMISSION 16,
# TOPIC_NOT_EXIST 17, NO_BUYER_ID 204, NOT_IN_CURRENT_UNIT 205.
RETRIABLE_RESPONSE_CODES = frozenset({1, 2, 14, 16, 17, 204, 205})


def error_for_code(code: int, remark: str | None = None) -> RemotingError:
    """The exception for a failed response, with `retriable` set from the code."""
    err = RemotingError(code, remark)
    err.retriable = code in RETRIABLE_RESPONSE_CODES
    return err


# --- client SDK ---------------------------------------------------------------------


class ClientError(RocketpyError):
    """A failure of the client SDK that no broker reported (state, routing, arguments)."""


class ClientStateError(ClientError):
    """A producer or consumer used before start() or after close()."""


class NoRouteError(ClientError):
    """No NameServer knows a route for the topic (or none could be reached)."""

    retriable = True


class BrokerNotFoundError(ClientError):
    """The route names no reachable address for a broker."""

    retriable = True


class SendFailedError(ClientError):
    """Every attempt of a send failed; `errors` holds each attempt's error, last one last."""

    def __init__(self, message: str, errors: list[BaseException] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])
        self.retriable = bool(self.errors) and all(getattr(e, "retriable", False) for e in self.errors)


# What a user can do about a failed broker response, by response code.
CLIENT_ADVICE_BY_CODE: dict[int, str] = {
    1: "the broker failed internally; retry, and check the broker log if it persists",
    2: "the broker is overloaded; retry later or slow the producer down",
    13: "the message breaks a broker rule (size, topic or property); fix the message",
    14: "the broker cannot serve this now (role or disk); retry, possibly on another broker",
    16: "the broker or topic forbids this operation; check the topic's permissions",
    17: "the topic does not exist on that broker; create it or enable autoCreateTopicEnable",
    24: "the group's subscription is unknown to the broker; send a heartbeat first",
    26: "the consumer group does not exist; create it or enable autoCreateSubscriptionGroup",
}


def client_error_for_code(code: int, remark: str | None, doing: str) -> RemotingError:
    """error_for_code with a message that says what was being done and what to do."""
    err = error_for_code(code, remark)
    advice = CLIENT_ADVICE_BY_CODE.get(code)
    text = f"{doing} failed with response code {code}"
    if remark:
        text += f" ({remark.strip()})"
    if advice:
        text += f": {advice}"
    err.args = (text,)
    return err
