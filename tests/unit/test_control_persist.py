"""The safe write of metadata files: every crash point leaves a loadable version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rocketpy.broker.control import persist
from rocketpy.protocol.bodies import ConsumerOffsetTable


def test_round_trip_and_backup(tmp_path: Path) -> None:
    path = str(tmp_path / "config" / "x.json")
    persist.write_json(path, {"a": 1})
    assert persist.load_json(path) == {"a": 1}
    assert not os.path.exists(path + ".bak")
    persist.write_json(path, {"a": 2})
    assert persist.load_json(path) == {"a": 2}
    assert persist.load_json(path + ".bak") == {"a": 1}
    assert not os.path.exists(path + ".tmp")


def test_written_json_is_strict(tmp_path: Path) -> None:
    path = str(tmp_path / "o.json")
    persist.write_json(path, ConsumerOffsetTable({"T@G": {0: 5}}).to_obj())
    assert Path(path).read_text() == '{"offsetTable":{"T@G":{"0":5}}}'


def _crash_on_replace(monkeypatch: pytest.MonkeyPatch, which: int) -> None:
    """Make the `which`-th os.replace (1 = name -> .bak, 2 = .tmp -> name) die like a crash."""
    real = os.replace
    calls = {"n": 0}

    def replace(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == which:
            raise KeyboardInterrupt("simulated crash")
        real(src, dst)

    monkeypatch.setattr(persist.os, "replace", replace)


@pytest.mark.parametrize("crash_at", [1, 2])
def test_crash_between_steps_keeps_a_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             crash_at: int) -> None:
    path = str(tmp_path / "x.json")
    persist.write_json(path, {"v": 1})
    persist.write_json(path, {"v": 2})
    with monkeypatch.context() as m:
        _crash_on_replace(m, crash_at)
        with pytest.raises(KeyboardInterrupt):
            persist.write_json(path, {"v": 3})
    # crash 1: name intact (v2); crash 2: name moved to .bak (v2), new content only in .tmp
    assert persist.load_json(path) == {"v": 2}
    # the next write completes normally
    persist.write_json(path, {"v": 4})
    assert persist.load_json(path) == {"v": 4}


@pytest.mark.parametrize("content", [b"", b"  \n", b"{not json", b'{"offsetTable":{"T@G":{"x":1}}}'])
def test_unusable_file_falls_back_to_backup(tmp_path: Path, content: bytes) -> None:
    path = str(tmp_path / "consumerOffset.json")
    Path(path + ".bak").write_bytes(b'{"offsetTable":{"T@G":{0:7}}}')
    Path(path).write_bytes(content)
    loaded = persist.load_json(path, ConsumerOffsetTable.from_obj)
    assert loaded == ConsumerOffsetTable({"T@G": {0: 7}})


def test_neither_file_is_none(tmp_path: Path) -> None:
    assert persist.load_json(str(tmp_path / "missing.json")) is None
    Path(tmp_path / "bad.json").write_text("{")
    Path(tmp_path / "bad.json.bak").write_text("")
    assert persist.load_json(str(tmp_path / "bad.json")) is None
