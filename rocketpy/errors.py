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
