"""The systemd units: `systemd-analyze verify` passes, and they say what the broker needs.

CI installs systemd-analyze with `apt-get install -y systemd` (Debian). verify
fails on a missing ExecStart binary, so it runs on copies whose ExecStart points
at /bin/true; it exits 0 on unknown keys and bad values (it only warns), so any
line it prints about our files is a failure too. The User does not need to exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rocketpy.tune import install, units

REPO_ROOT = Path(__file__).resolve().parents[2]
UNIT_NAMES = ["rocketpy-namesrv.service", "rocketpy-broker.service", "rocketpy-broker@.service"]
STAND_IN = "/bin/true"


def _find_or_install(tool: str) -> str:
    found = shutil.which(tool)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for args in (["apt-get", "update"], ["apt-get", "install", "-y", "systemd"]):
            if subprocess.run(args, capture_output=True, env=env, timeout=600).returncode:
                break
        found = shutil.which(tool)
    if not found:
        pytest.skip(f"{tool} is not installed and could not be (CI: apt-get install -y systemd)")
    return found


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    return _find_or_install("systemd-analyze")


def verify_problems(systemd_analyze: str, unit_dir: Path, unit: str) -> list[str]:
    proc = subprocess.run([systemd_analyze, "verify", str(unit_dir / unit)],
                          capture_output=True, text=True, timeout=60)
    ours = [line for line in (proc.stdout + proc.stderr).splitlines()
            if str(unit_dir) in line or unit.replace("@.", "@") in line]
    if proc.returncode != 0:
        ours.append(f"exit status {proc.returncode}: {proc.stderr.strip()}")
    return ours


def stand_in_copies(tmp_path: Path) -> Path:
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    for unit in units.units(STAND_IN):
        (unit_dir / unit.name).write_text(unit.text)
    # an instance of the template, as `systemctl start rocketpy-broker@a` would load it
    (unit_dir / "rocketpy-broker@a.service").symlink_to("rocketpy-broker@.service")
    return unit_dir


@pytest.mark.parametrize("unit", [*UNIT_NAMES, "rocketpy-broker@a.service"])
def test_systemd_analyze_verify(systemd_analyze, tmp_path, unit):
    unit_dir = stand_in_copies(tmp_path)
    assert verify_problems(systemd_analyze, unit_dir, unit) == []


def test_verify_check_can_fail(systemd_analyze, tmp_path):
    """verify exits 0 on an unknown key; the test must still catch it."""
    unit_dir = tmp_path / "bad"
    unit_dir.mkdir()
    text = units.units(STAND_IN)[0].text.replace("WatchdogSec=30", "WatchdogSec=30\nWatchDogSecs=1")
    (unit_dir / "rocketpy-namesrv.service").write_text(text)
    problems = verify_problems(systemd_analyze, unit_dir, "rocketpy-namesrv.service")
    assert any("WatchDogSecs" in p for p in problems)


def test_sysusers_entry_parses(tmp_path):
    sysusers = _find_or_install("systemd-sysusers")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("")
    (root / "etc" / "group").write_text("")
    conf = tmp_path / "rocketpy.conf"
    conf.write_text(units.SYSUSERS_TEXT)
    proc = subprocess.run([sysusers, f"--root={root}", "--dry-run", str(conf)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Creating user 'rocketpy'" in proc.stdout + proc.stderr


def test_repository_copies_are_current():
    """sysctl/ and systemd/ hold the rendered texts; regenerate them with
    python -c "from rocketpy.tune.install import write_reference_files as w; w('.')"
    """
    for rel, content in install.reference_files().items():
        path = REPO_ROOT / rel
        assert path.exists(), f"{rel} is missing"
        assert path.read_text() == content, f"{rel} is stale"


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if match:
            found.setdefault(match[1], []).append(match[2])
    return found


@pytest.mark.parametrize("unit", units.units(), ids=lambda u: u.name)
def test_unit_carries_the_supervisor_contract(unit):
    d = _directives(unit.text)
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] == ["30"]
    assert d["Restart"] == ["on-failure"]
    assert set(d["RestartPreventExitStatus"][0].split()) == {"65", "78"}
    assert d["KillMode"] == ["mixed"]
    assert d["User"] == ["rocketpy"]
    assert d["LimitNOFILE"] == ["1000000"] and d["LimitNPROC"] == ["1000000"]
    assert d["StateDirectory"] == ["rocketpy"] and d["LogsDirectory"] == ["rocketpy"]
    assert d["ProtectSystem"] == ["strict"] and d["ReadWritePaths"] == ["/var/lib/rocketpy"]
    for flag in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelTunables",
                 "ProtectControlGroups", "RestrictSUIDSGID", "LockPersonality"):
        assert d[flag] == ["yes"], flag
    # what would break shared memory, SysV semaphores or ctypes
    assert "PrivateIPC" not in d and "MemoryDenyWriteExecute" not in d
    assert d["RemoveIPC"] == ["no"]
    assert d["ExecStart"][0].startswith(units.EXEC_PATH_DEFAULT + " ")


def test_broker_units_read_their_config_and_allow_the_drain():
    by_name = {u.name: _directives(u.text) for u in units.units()}
    assert by_name["rocketpy-broker.service"]["ExecStart"] == [
        "/usr/local/bin/rocketpy broker -c /etc/rocketpy/broker.properties"]
    assert by_name["rocketpy-broker@.service"]["ExecStart"] == [
        "/usr/local/bin/rocketpy broker -c /etc/rocketpy/broker-%i.properties"]
    assert by_name["rocketpy-namesrv.service"]["ExecStart"] == ["/usr/local/bin/rocketpy namesrv"]
    for name in ("rocketpy-broker.service", "rocketpy-broker@.service"):
        assert by_name[name]["TimeoutStopSec"] == ["60"]
    runtime = {d["RuntimeDirectory"][0] for d in by_name.values()}
    assert len(runtime) == 3, "one unit stopping must not remove another's runtime directory"
