"""bench/run_progress.py: the benchmarks' progress line (rate and ETA on a terminal, quiet in a pipe)."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def run_progress() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_progress", BENCH / "run_progress.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_time_bound_run_shows_rate_and_eta(run_progress: ModuleType) -> None:
    clock, out = Clock(), Tty()
    p = run_progress.RunProgress("produce", 20, None, stream=out, clock=clock)
    clock.now += 5
    p.tick(10_000)                        # a quarter of the time: 40k expected, 15 s to go
    assert p.progress.total == pytest.approx(40_000)
    text = out.getvalue()
    assert "produce" in text and "2.0k msgs/s" in text and "25%" in text and "ETA 0:15" in text, text


def test_count_bound_run_ends_on_the_count(run_progress: ModuleType) -> None:
    clock, out = Clock(), Tty()
    p = run_progress.RunProgress("consume", 600, 1_000, stream=out, clock=clock)
    clock.now += 2
    p.tick(500)                           # half the backlog in 2 s: the count ends the run first
    assert p.progress.total == pytest.approx(1_000)
    assert "50%" in out.getvalue() and "ETA 0:02" in out.getvalue()
    clock.now += 2
    p.tick(1_000)
    p.finish()
    assert out.getvalue().endswith("\n") and "100%" in out.getvalue()


def test_say_clears_the_line_before_a_stdout_line(run_progress: ModuleType) -> None:
    clock, out = Clock(), Tty()
    p = run_progress.RunProgress("produce", 10, None, stream=out, clock=clock)
    clock.now += 1
    p.tick(100)
    printed: list[str] = []
    p.say(printed.append, "[  1.0s] TPS 100")
    assert printed == ["[  1.0s] TPS 100"] and out.getvalue().endswith("\r\x1b[2K")
    p.tick(200)                           # redrawn at once, not after the redraw interval
    assert not out.getvalue().endswith("\r\x1b[2K")


def test_quiet_in_a_pipe(run_progress: ModuleType) -> None:
    clock, out = Clock(), io.StringIO()
    p = run_progress.RunProgress("produce", 10, 100, stream=out, clock=clock)
    clock.now += 1
    p.tick(50)
    p.say(lambda line: None, "x")
    p.finish()
    assert out.getvalue() == "" and not p.live
