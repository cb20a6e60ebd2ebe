"""Progress callbacks of store verify and store recovery, and the recovery's log lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rocketpy import limits
from rocketpy.broker.runtime import recovery_progress
from rocketpy.store import verify as v
from rocketpy.store.file_store import FileStore
from tests.support.store_helpers import make_record, tiny_config
from tests.unit.test_store_verify import FILE_SIZE, build_clean

STEP_BYTES = 512     # smaller than a file, so calls also come from inside a file


def check_monotonic(calls: list[tuple[int, int]]) -> None:
    assert calls, "the callback was never called"
    for (done0, total0), (done1, total1) in zip(calls, calls[1:], strict=False):
        assert done1 >= done0 and total1 >= total0, calls
    for done, total in calls:
        assert 0 <= done <= total, calls
    assert calls[-1][0] == calls[-1][1], "the last call reports all done"


def test_verify_reports_the_commitlog_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "PROGRESS_STEP_BYTES", STEP_BYTES)
    build_clean(tmp_path)
    files = sorted((tmp_path / "commitlog").iterdir())
    assert len(files) >= 2, "the test must span CommitLog files"
    calls: list[tuple[int, int]] = []
    result = v.verify_store(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert result.ok, result.problems
    check_monotonic(calls)
    total = sum(f.stat().st_size for f in files)
    assert {t for _, t in calls} == {total}
    assert any(d % FILE_SIZE for d, _ in calls[:-1]), "a call from inside a file"
    assert len(calls) <= total // STEP_BYTES + 2 * len(files) + 1, "calls are bounded by the step"


def test_verify_without_a_callback_is_unchanged(tmp_path: Path) -> None:
    build_clean(tmp_path)
    assert v.verify_store(tmp_path).ok


def _crashed_store(root: Path, messages: int) -> int:
    """Write messages across several tiny CommitLog files and leave the store as kill -9 would."""
    store = FileStore(tiny_config(str(root)))
    for i in range(messages):
        store.append([make_record("ProgressT", i % 2, f"body {i}".encode() * 8)])
    store.flush()
    end = store.commitlog.committed_offset
    store.abandon()
    return end


def test_recovery_reports_scan_then_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "PROGRESS_STEP_BYTES", STEP_BYTES)
    end = _crashed_store(tmp_path, 120)
    calls: list[tuple[int, int]] = []
    store = FileStore(tiny_config(str(tmp_path)), recovery_progress=lambda d, t: calls.append((d, t)))
    try:
        assert store.recovery_report.abnormal
        assert store.commitlog.committed_offset == end
        check_monotonic(calls)
        scan_total = calls[0][1]
        assert scan_total >= end, "the scan covers the CommitLog files"
        # the abnormal scan starts at the first file here, so the whole log is dispatched again
        assert calls[-1][1] == scan_total + end
        assert len({t for _, t in calls}) == 2, "the total grows once, when the dispatch range is known"
    finally:
        store.close()


class StepClock:
    """Each reading is 11 s after the last: every progress call is past the log interval."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += limits.PROGRESS_LOG_INTERVAL_S + 1
        return self.now


def test_broker_recovery_logs_progress_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(limits, "PROGRESS_STEP_BYTES", STEP_BYTES)
    _crashed_store(tmp_path, 120)
    progress = recovery_progress(clock=StepClock())
    with caplog.at_level(logging.INFO, logger="rocketpy.broker"):
        store = FileStore(tiny_config(str(tmp_path)), recovery_progress=progress.report)
        store.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "rocketpy.broker"]
    assert lines and all(line.startswith("recovery") for line in lines), lines
    assert any("%" in line and "B/s" in line for line in lines), lines
    assert not progress.live, "recovery never draws on a terminal"


def test_short_recovery_logs_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _crashed_store(tmp_path, 10)
    with caplog.at_level(logging.INFO, logger="rocketpy.broker"):
        FileStore(tiny_config(str(tmp_path)), recovery_progress=recovery_progress().report).close()
    assert not [r for r in caplog.records if r.name == "rocketpy.broker"]
