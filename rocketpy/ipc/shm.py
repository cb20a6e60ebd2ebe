"""Named POSIX shared-memory segments of one broker, and their names.

Segment names carry the broker name and a boot id
(`/rocketpy.<broker>.<boot_id>.<what>`), so two brokers on one host never
share a segment and a supervisor can sweep the stale segments a crashed run
of its own broker left behind. Only the supervisor creates and unlinks them;
children attach to the inherited maps.
"""

from __future__ import annotations

import mmap
import os
import re
import secrets
import sys

import posix_ipc

from rocketpy.errors import RocketpyError

_SHM_DIR = "/dev/shm"
_NAME_SAFE = re.compile(r"[^A-Za-z0-9_-]")
NAME_PREFIX = "rocketpy."


class IpcError(RocketpyError):
    """A shared-memory segment could not be created, opened or sized."""


def check_platform() -> None:
    """The seqlocks rely on x86-64 store ordering (TSO) and Linux shared maps."""
    import platform

    machine = platform.machine().lower()
    if not sys.platform.startswith("linux") or machine not in ("x86_64", "amd64"):
        raise IpcError(
            f"rocketpy's shared-memory protocol needs Linux on x86-64 (found {sys.platform}/{machine}); "
            "run the broker on such a host")


def new_boot_id() -> str:
    return secrets.token_hex(4)


def segment_name(broker_name: str, boot_id: str, what: str) -> str:
    safe = _NAME_SAFE.sub("_", broker_name)[:64]
    assert re.fullmatch(r"[0-9a-f]+", boot_id), boot_id
    assert re.fullmatch(r"[a-z0-9_]+", what), what
    return f"/{NAME_PREFIX}{safe}.{boot_id}.{what}"


def create_segment(name: str, size: int) -> mmap.mmap:
    """Create (exclusively) and map a zero-filled segment."""
    assert size > 0
    try:
        seg = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size)
    except posix_ipc.ExistentialError:
        raise IpcError(f"shared memory {name} already exists; is another broker running?") from None
    except (OSError, ValueError) as exc:
        raise IpcError(f"cannot create shared memory {name} of {size} bytes: {exc}") from None
    try:
        return mmap.mmap(seg.fd, size)
    finally:
        seg.close_fd()


def open_segment(name: str) -> mmap.mmap:
    try:
        seg = posix_ipc.SharedMemory(name)
    except posix_ipc.ExistentialError:
        raise IpcError(f"shared memory {name} does not exist") from None
    try:
        return mmap.mmap(seg.fd, seg.size)
    finally:
        seg.close_fd()


def unlink_segment(name: str) -> bool:
    try:
        posix_ipc.unlink_shared_memory(name)
        return True
    except posix_ipc.ExistentialError:
        return False


def sweep_stale_segments(broker_name: str, keep_boot_id: str | None = None) -> list[str]:
    """Unlink segments of this broker left by an earlier boot; returns their names."""
    safe = _NAME_SAFE.sub("_", broker_name)[:64]
    prefix = f"{NAME_PREFIX}{safe}."
    removed: list[str] = []
    try:
        entries = os.listdir(_SHM_DIR)
    except OSError:
        return removed
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        rest = entry[len(prefix):]
        boot_id = rest.split(".", 1)[0]
        if keep_boot_id is not None and boot_id == keep_boot_id:
            continue
        if unlink_segment("/" + entry):
            removed.append("/" + entry)
    return removed
