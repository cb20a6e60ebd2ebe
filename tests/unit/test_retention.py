"""Retention policy and disk guard: table-driven, fake clock and fake usage, no sleeps."""

from __future__ import annotations

import os

import pytest

from rocketpy.config import StoreConfig
from rocketpy.errors import DiskFullError
from rocketpy.store.retention import (
    DiskGuard,
    RetentionPolicy,
    apply_retention,
    disk_usage_ratio,
    is_delete_hour,
    parse_delete_hours,
)

H = 3_600_000
NOW = 1_700_000_000_000
CFG = StoreConfig(store_path_root_dir="x", delete_when="04;16")


def files(*ages_h: float) -> list[tuple[str, int, int]]:
    """Files oldest first, each aged (now - mtime) in hours."""
    return [(f"{i * 4096:020d}", int(NOW - age * H), 4096) for i, age in enumerate(ages_h)]


@pytest.mark.parametrize("when,hour,expected", [
    ("04", 4, True), ("04", 5, False), ("04;16", 16, True), ("04;16", 15, False),
    ("4; 16", 4, True), ("junk;04", 4, True), ("", 4, False), ("24", 0, False),
])
def test_is_delete_hour(when: str, hour: int, expected: bool) -> None:
    assert is_delete_hour(hour, when) is expected


def test_parse_delete_hours() -> None:
    assert parse_delete_hours("04;16") == frozenset({4, 16})


@pytest.mark.parametrize("ages,usage,hour,force,expected", [
    # not a delete hour, disk has room, not forced: nothing
    ((100, 100, 100), 0.10, 10, False, []),
    # delete hour: expired ones, never the newest
    ((100, 100, 100), 0.10, 4, False, [0, 1]),
    # stop at the first non-expired file (no holes)
    ((100, 10, 100, 1), 0.10, 4, False, [0]),
    ((10, 100, 100, 1), 0.10, 16, False, []),
    # exactly at the reserved time counts as expired
    ((72, 71.9, 1), 0.10, 4, False, [0]),
    # usage above diskMaxUsedSpaceRatio (75 %) deletes expired files at any hour
    ((100, 100, 1), 0.80, 10, False, [0, 1]),
    ((1, 1, 1), 0.80, 10, False, []),
    # forced (admin) at any hour, still only expired files
    ((100, 1, 1), 0.10, 10, True, [0]),
    # above the forcible ratio (85 %): age does not matter, newest still kept
    ((1, 1, 1), 0.86, 10, False, [0, 1]),
    # unknown usage (-1) behaves like RocketMQ: a pass runs, expired only
    ((100, 1), -1.0, 10, False, [0]),
    # single file: it is the newest
    ((1000,), 0.99, 4, True, []),
])
def test_plan_deletions(ages: tuple[float, ...], usage: float, hour: int, force: bool,
                        expected: list[int]) -> None:
    fs = files(*ages)
    plan = RetentionPolicy(CFG).plan_deletions(fs, NOW, usage, hour, force)
    assert plan == [fs[i][0] for i in expected]


def test_at_most_ten_per_pass_and_sorted() -> None:
    fs = files(*([200] * 15))
    plan = RetentionPolicy(CFG).plan_deletions(list(reversed(fs)), NOW, 0.1, 4, False)
    assert plan == [f[0] for f in fs[:10]]


def test_forcibly_disabled() -> None:
    cfg = StoreConfig(store_path_root_dir="x", delete_when="04", clean_file_forcibly_enable=False)
    assert RetentionPolicy(cfg).plan_deletions(files(1, 1, 1), NOW, 0.95, 10, False) == []


@pytest.mark.parametrize("usages,expected", [
    ([0.50], [False]),
    ([0.91], [True]),
    ([0.90], [False]),                       # strictly above the warning ratio
    ([0.91, 0.88, 0.86, 0.85], [True, True, True, False]),   # hysteresis down to 0.85
    ([0.91, 0.87, 0.91, 0.10], [True, True, True, False]),
    ([0.87, 0.89], [False, False]),
])
def test_disk_guard_hysteresis(usages: list[float], expected: list[bool]) -> None:
    guard = DiskGuard(CFG)
    assert [guard.update(u) for u in usages] == expected


def test_disk_guard_check_writable() -> None:
    guard = DiskGuard(CFG)
    guard.check_writable()
    guard.update(0.95)
    with pytest.raises(DiskFullError, match="refused"):
        guard.check_writable()


def test_apply_retention_stops_at_failed_delete() -> None:
    fs = files(200, 200, 200, 1)
    deleted: list[str] = []

    def delete(name: str) -> bool:
        if name == fs[1][0]:
            return False
        deleted.append(name)
        return True

    guard = DiskGuard(CFG)
    out = apply_retention(RetentionPolicy(CFG), guard, files=fs, delete_file=delete, now_ms=NOW,
                          usage_ratio=0.95, local_hour=4)
    assert out == deleted == [fs[0][0]]
    assert guard.writes_refused


class _Stat:
    def __init__(self, blocks: int, bavail: int) -> None:
        self.f_blocks = blocks
        self.f_bavail = bavail


def test_disk_usage_ratio_injectable(tmp_path: os.PathLike[str]) -> None:
    assert disk_usage_ratio("x", lambda p: _Stat(100, 25)) == 0.75  # type: ignore[arg-type,return-value]
    assert disk_usage_ratio("x", lambda p: _Stat(0, 0)) == -1.0  # type: ignore[arg-type,return-value]
    assert disk_usage_ratio(os.path.join(tmp_path, "missing")) == -1.0
    assert 0.0 <= disk_usage_ratio(str(tmp_path)) <= 1.0
