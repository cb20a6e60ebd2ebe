"""rocketpy.progress: rate and ETA on a terminal, nothing in scripts, periodic log lines when asked."""

from __future__ import annotations

import io
import logging

from rocketpy.progress import Progress, format_eta, human


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_line_has_rate_percent_and_eta() -> None:
    clock, out = Clock(), Tty()
    with Progress("verify", total=1000, unit="B", stream=out, clock=clock) as p:
        clock.now += 2
        p.advance(500)
        assert p.rate() == 250 and p.eta_s() == 2
        assert "50%" in p.line() and "250 B/s" in p.line() and "ETA 0:02" in p.line()
    text = out.getvalue()
    assert "\r" in text and text.endswith("\n") and "verify" in text


def test_quiet_when_not_a_terminal() -> None:
    out = io.StringIO()
    with Progress("verify", total=10, stream=out, clock=Clock()) as p:
        p.advance(10)
    assert out.getvalue() == "" and not p.live


def test_logs_at_intervals_when_asked(caplog) -> None:
    clock = Clock()
    log = logging.getLogger("rocketpy.test.progress")
    with caplog.at_level(logging.INFO, logger=log.name):
        p = Progress("recovery", total=100, unit="B", stream=io.StringIO(), log=log, clock=clock)
        p.advance(1)                  # too soon: nothing
        clock.now += 11
        p.advance(1)
        clock.now += 1
        p.advance(1)                  # within the interval again: nothing
    assert len([r for r in caplog.records if "recovery" in r.getMessage()]) == 1


def test_human_units() -> None:
    assert human(1536, "B") == "1.5 KiB"
    assert human(12_300, "msgs") == "12.3k msgs"
    assert format_eta(3725) == "1:02:05" and format_eta(65) == "1:05"
