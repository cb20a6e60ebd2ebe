"""`tune --apply` on a host where systemd runs: systemd-sysusers and daemon-reload after new units."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from rocketpy.tune import install


def test_runs_sysusers_then_daemon_reload_when_booted() -> None:
    ran: list[tuple[str, ...]] = []

    def run(argv):
        ran.append(tuple(argv))
        return 0, ""

    notes = install.systemd_steps(True, run)
    assert ran == [("systemd-sysusers",), ("systemctl", "daemon-reload")]
    assert notes[:2] == ["ran `systemd-sysusers`", "ran `systemctl daemon-reload`"]
    assert "enable --now" in notes[-1]


def test_stops_at_the_first_failure_and_says_what_to_do() -> None:
    ran: list[tuple[str, ...]] = []

    def run(argv):
        ran.append(tuple(argv))
        return 1, "Failed to read /etc/passwd"

    notes = install.systemd_steps(True, run)
    assert ran == [("systemd-sysusers",)]
    assert notes == ["`systemd-sysusers` failed (1: Failed to read /etc/passwd); run it by hand, then "
                     "`systemctl enable --now rocketpy-namesrv rocketpy-broker`"]


def test_without_systemd_nothing_runs() -> None:
    def run(argv):
        raise AssertionError("nothing may run without systemd")

    (note,) = install.systemd_steps(False, run)
    assert "systemd is not running here" in note and "daemon-reload" in note


def test_run_command_reports_a_missing_program() -> None:
    code, out = install.run_command(["rocketpy-no-such-program-xyz"])
    assert code == 127 and out


@pytest.mark.skipif(not install.systemd_booted() or shutil.which("systemctl") is None,
                    reason="live part: needs a host where systemd is PID 1")
def test_live_daemon_reload_succeeds() -> None:
    code, out = install.run_command(["systemctl", "daemon-reload"])
    if code != 0 and "ermission" in out:
        pytest.skip("daemon-reload needs root here")
    assert code == 0, out
    assert subprocess.run(["systemctl", "is-system-running"], capture_output=True, timeout=30).returncode in (0, 1)
