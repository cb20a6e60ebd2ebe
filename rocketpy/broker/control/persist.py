"""RocketMQ's safe write of the metadata JSON files (ConfigManager.persist / MixAll.string2File).

Write (storage-format.md §8)::

    content  -> <name>.tmp   (write, fsync)
    <name>   -> <name>.bak   (rename: the previous version)
    .tmp     -> <name>       (rename)
    fsync the directory      (both renames are durable)

A crash at any point leaves either `<name>` whole, or no `<name>` and the
previous version in `<name>.bak`; `load_json` reads `<name>` and falls back to
`<name>.bak` when the first is missing, empty or unparsable. Reading accepts
fastjson's unquoted integer map keys (files written by a Java broker); writing
is strict JSON.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from rocketpy.errors import ProtocolError
from rocketpy.protocol.bodies import dumps, parse_json_lenient

log = logging.getLogger("rocketpy.broker.control")

TMP_SUFFIX = ".tmp"
BAK_SUFFIX = ".bak"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_write(path: str, data: bytes) -> None:
    """Replace the file at `path` with `data` so that a crash never loses both versions."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = path + TMP_SUFFIX
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    if os.path.exists(path):
        os.replace(path, path + BAK_SUFFIX)
    os.replace(tmp, path)
    _fsync_dir(directory)


def write_json(path: str, obj: Any) -> None:
    safe_write(path, dumps(obj))


def _read(path: str) -> Any | None:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    if not raw.strip():
        log.warning("metadata file %s is empty", path)
        return None
    try:
        return parse_json_lenient(raw)
    except ProtocolError as exc:
        log.warning("metadata file %s is not valid JSON: %s", path, exc)
        return None


def load_json(path: str, decode: Callable[[Any], Any] | None = None) -> Any | None:
    """The parsed content of `path`, else of `path.bak`; None when neither is usable.

    `decode` (e.g. a body class's from_obj) runs on the parsed object; a
    ProtocolError from it counts as unparsable, so the backup is tried.
    """
    for candidate in (path, path + BAK_SUFFIX):
        obj = _read(candidate)
        if obj is None:
            continue
        if decode is not None:
            try:
                obj = decode(obj)
            except ProtocolError as exc:
                log.warning("metadata file %s does not decode: %s", candidate, exc)
                continue
        if candidate != path:
            log.warning("metadata file %s missing or unusable; loaded its backup %s", path, candidate)
        return obj
    return None
