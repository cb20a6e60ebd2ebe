"""`rocketpy tune` through its typer command, on a fake host tree and on the real host.

The command is mounted on a local app the way rocketpy/cli/app.py mounts it
(`register(app)`), so `tune` is a sub-command as in `rocketpy tune --check`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rocketpy.cli import tune as tune_cli
from rocketpy.tune import checks
from rocketpy.tune.fakehost import (
    GIB_KB,
    FakeDisk,
    build,
    fixed_rlimits,
    good_sysctls,
    stat_on_device,
)
from rocketpy.tune.host import Host

INSTALLED = [
    "etc/sysctl.d/60-rocketpy.conf",
    "etc/security/limits.d/60-rocketpy.conf",
    "etc/sysusers.d/rocketpy.conf",
    "etc/systemd/system/rocketpy-namesrv.service",
    "etc/systemd/system/rocketpy-broker.service",
    "etc/systemd/system/rocketpy-broker@.service",
]


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """rocketpy (test)"""

    tune_cli.register(app)
    return app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fake_host(tmp_path, monkeypatch):
    """Returns a function building a fake host tree; the CLI reads it via --host-root."""
    def make(sysctls=None, rlimits=None) -> Path:
        root = build(tmp_path / "host", sysctls=sysctls,
                     disks=[FakeDisk("sda", 8, 0, partitions=1)])
        (root / "var" / "lib" / "rocketpy").mkdir(parents=True)
        limits = rlimits or fixed_rlimits()
        monkeypatch.setattr(tune_cli, "make_host",
                            lambda host_root: Host(host_root, getrlimit=limits))
        return root
    return make


def off_sysctls() -> dict[str, int]:
    sysctls = good_sysctls()
    sysctls.update({"vm.swappiness": 60, "vm.dirty_ratio": 20})
    return sysctls


def invoke(runner: CliRunner, *args: str):
    return runner.invoke(make_app(), ["tune", *args])


def test_check_all_ok_exits_0(runner, fake_host):
    root = fake_host()
    result = invoke(runner, "--check", "--host-root", str(root), "--store-path", "/nowhere")
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0].split()
    assert header == ["setting", "current", "recommended", "status", "reason"]
    assert "vm.max_map_count" in result.output and "drop_caches" in result.output


def test_check_is_the_default_action(runner, fake_host):
    root = fake_host(sysctls=off_sysctls())
    assert invoke(runner, "--host-root", str(root)).exit_code == 1


def test_check_off_exits_1_and_says_so(runner, fake_host):
    root = fake_host(sysctls=off_sysctls())
    result = invoke(runner, "--check", "--host-root", str(root))
    assert result.exit_code == 1, result.output
    off_lines = [line for line in result.output.splitlines() if "  OFF  " in line]
    assert [line.split()[0] for line in off_lines] == ["vm.dirty_ratio", "vm.swappiness"]
    assert "2 of" in result.output and "off" in result.output


def test_check_json_parses(runner, fake_host):
    root = fake_host(sysctls=off_sysctls(), rlimits=fixed_rlimits(nofile=(1024, 4096)))
    result = invoke(runner, "--check", "--json", "--host-root", str(root))
    assert result.exit_code == 1
    data = json.loads(result.output)
    statuses = {r["name"]: r["status"] for r in data["results"]}
    assert statuses["vm.swappiness"] == "off" and statuses["ulimit nofile"] == "off"
    assert statuses["vm.overcommit_memory"] == "ok"
    assert data["off"] == 3 and data["ok"] is False
    assert any("vm.drop_caches" in note for note in data["notes"])


def test_dry_run_lists_exactly_the_files_and_writes_nothing(runner, fake_host, tmp_path):
    host_root, root = fake_host(sysctls=off_sysctls()), tmp_path / "image"
    result = invoke(runner, "--dry-run", "--root", str(root), "--host-root", str(host_root))
    assert result.exit_code == 0, result.output
    would = [line.split()[2] for line in result.output.splitlines()
             if line.startswith("would create")]
    assert would == [str(root / rel) for rel in INSTALLED]
    assert "vm.swappiness: 60 -> 10" in result.output
    assert "vm.dirty_ratio: 20 -> 50" in result.output
    assert not root.exists()


def test_dry_run_json_carries_the_contents(runner, fake_host, tmp_path):
    host_root, root = fake_host(sysctls=off_sysctls()), tmp_path / "image"
    result = invoke(runner, "--dry-run", "--json", "--root", str(root),
                    "--host-root", str(host_root))
    data = json.loads(result.output)
    assert [f["path"] for f in data["files"]] == [str(root / rel) for rel in INSTALLED]
    assert all(f["action"] == "create" for f in data["files"])
    sysctl_file = data["files"][0]["content"]
    assert f"vm.min_free_kbytes = {16 * GIB_KB // 100}" in sysctl_file
    assert data["live"] is False and data["changes"] is True


def test_apply_root_twice(runner, fake_host, tmp_path):
    host_root, root = fake_host(sysctls=off_sysctls()), tmp_path / "image"
    args = ["--apply", "--root", str(root), "--host-root", str(host_root)]
    first = invoke(runner, *args)
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == len(INSTALLED)
    for rel in INSTALLED:
        assert (root / rel).is_file()

    second = invoke(runner, *args)
    assert second.exit_code == 0, second.output
    assert second.output.count("unchanged") == len(INSTALLED)
    assert "nothing to change" in second.output

    dry = invoke(runner, "--dry-run", "--root", str(root), "--host-root", str(host_root))
    assert "would create" not in dry.output and "would update" not in dry.output


def test_apply_json(runner, fake_host, tmp_path):
    host_root, root = fake_host(), tmp_path / "image"
    args = ["--apply", "--json", "--root", str(root), "--host-root", str(host_root)]
    first = json.loads(invoke(runner, *args).output)
    assert first["changed"] is True and first["failed"] is False
    second = json.loads(invoke(runner, *args).output)
    assert second["changed"] is False
    assert {f["action"] for f in second["files"]} == {"unchanged"}


def test_apply_failure_exits_1_with_a_sentence(runner, fake_host, tmp_path):
    host_root, root = fake_host(), tmp_path / "image"
    root.mkdir()
    (root / "etc").write_text("a file where a directory belongs")
    result = invoke(runner, "--apply", "--root", str(root), "--host-root", str(host_root))
    assert result.exit_code == 1
    assert "FAILED" in result.output and "cannot write" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [
    ["--check", "--apply"],
    ["--dry-run", "--apply"],
    ["--exec-path", "rocketpy"],
])
def test_usage_errors_exit_2(runner, args):
    assert invoke(runner, *args).exit_code == 2


def test_check_on_this_machine(runner):
    """The real host: prints the table and exits 1 exactly when a check is off."""
    expected = 0 if checks.check(Host(Path("/")), None).all_ok else 1
    result = invoke(runner, "--check")
    assert result.exit_code == expected, result.output
    assert "vm.swappiness" in result.output
    data = json.loads(invoke(runner, "--check", "--json").output)
    assert data["ok"] is (expected == 0)


def test_check_finds_the_default_store_disk(runner, tmp_path, monkeypatch):
    root = build(tmp_path / "host", disks=[FakeDisk("sdc", 8, 32, scheduler="[none] bfq")])
    (root / "var" / "lib" / "rocketpy").mkdir(parents=True)
    monkeypatch.setattr(tune_cli, "make_host", lambda host_root: Host(
        host_root, getrlimit=fixed_rlimits(), stat=stat_on_device(8, 32)))
    result = invoke(runner, "--check", "--json", "--host-root", str(root))
    disk = [r for r in json.loads(result.output)["results"] if r["kind"] == "disk"]
    assert [(r["name"], r["status"]) for r in disk] == [("disk scheduler (sdc, rotational)", "off")]
    assert result.exit_code == 1
