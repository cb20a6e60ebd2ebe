"""bench/peers/report.py: medians, min/max and the per-run ratio rocketpy / best peer."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.peers import report  # noqa: E402


def cell(wl: str, system: str, run: int, **metrics: float) -> dict:  # type: ignore[type-arg]
    return {"workload": wl, "system": system, "size": 128, "run": run, "metrics": metrics}


def test_medians_and_per_run_ratio_against_the_best_peer() -> None:
    cells = [
        cell("produce", "rocketpy", 0, msgs_per_s=100), cell("produce", "redis", 0, msgs_per_s=200),
        cell("produce", "nats", 0, msgs_per_s=50),
        cell("produce", "rocketpy", 1, msgs_per_s=300), cell("produce", "redis", 1, msgs_per_s=100),
        cell("produce", "nats", 1, msgs_per_s=150),
        cell("produce", "rocketpy", 2, msgs_per_s=200), cell("produce", "redis", 2, msgs_per_s=400),
        cell("produce", "nats", 2, msgs_per_s=100),
    ]
    rows = report.build(cells, ["rocketpy", "redis", "nats"], [128])
    (row,) = [r for r in rows if r["metric"] == "msgs_per_s"]
    assert row["values"]["rocketpy"] == {"median": 200, "min": 100, "max": 300, "n": 3}
    assert row["values"]["redis"]["median"] == 200
    # run 0: 100/200, run 1: 300/150 (nats is the best peer there), run 2: 200/400
    assert row["ratio"] == {"median": 0.5, "min": 0.5, "max": 2.0, "n": 3}


def test_lower_is_better_rows_compare_with_the_lowest_peer() -> None:
    cells = [cell("one", "rocketpy", 0, msgs_per_s=1, p50_ms=0.6, p99_ms=1, p999_ms=2),
             cell("one", "redis", 0, msgs_per_s=1, p50_ms=0.2, p99_ms=1, p999_ms=2),
             cell("one", "nats", 0, msgs_per_s=1, p50_ms=0.3, p99_ms=1, p999_ms=2)]
    rows = {r["metric"]: r for r in report.build(cells, ["rocketpy", "redis", "nats"], [128])}
    assert abs(rows["p50_ms"]["ratio"]["median"] - 3.0) < 1e-9
    md = report.markdown(list(rows.values()), ["rocketpy", "redis", "nats"])
    assert "| 2. produce, 1 in flight: latency p50 | 128 B | ms (lower is better) | 0.600 | 0.200 | 0.300 | 3.00 |" in md


def test_a_system_without_the_workload_shows_na() -> None:
    cells = [cell("batch", "rocketpy", 0, msgs_per_s=10), cell("batch", "redis", 0, msgs_per_s=20)]
    rows = report.build(cells, ["rocketpy", "redis", "nats"], [128])
    md = report.markdown(rows, ["rocketpy", "redis", "nats"])
    assert "| 10 | 20 | n/a | 0.50 |" in md
