"""rocketpy.tune: settings rules, checks, plan and apply, on a fake /proc and /sys tree."""

from __future__ import annotations

import errno
import resource
from pathlib import Path

import pytest

from rocketpy.tune import checks, install, settings
from rocketpy.tune.checks import Status
from rocketpy.tune.fakehost import (
    GIB_KB,
    FakeDisk,
    build,
    fixed_rlimits,
    good_sysctls,
    stat_on_device,
)
from rocketpy.tune.host import Host, selected_choice
from rocketpy.tune.install import FileAction, LiveStatus, SysctlAction
from rocketpy.tune.settings import Relation

INSTALLED = [
    Path("etc/sysctl.d/60-rocketpy.conf"),
    Path("etc/security/limits.d/60-rocketpy.conf"),
    Path("etc/sysusers.d/rocketpy.conf"),
    Path("etc/systemd/system/rocketpy-namesrv.service"),
    Path("etc/systemd/system/rocketpy-broker.service"),
    Path("etc/systemd/system/rocketpy-broker@.service"),
]


def make_host(tmp_path: Path, *, disk: FakeDisk | None = None, dev: tuple[int, int] = (8, 1),
              rlimits=None, **tree) -> Host:
    disks = [disk] if disk else [FakeDisk("sda", 8, 0, partitions=2)]
    root = build(tmp_path / "host", disks=disks, **tree)
    return Host(root, getrlimit=rlimits or fixed_rlimits(), stat=stat_on_device(*dev))


def by_name(report: checks.CheckReport) -> dict[str, checks.CheckResult]:
    return {r.name.split(" (")[0]: r for r in report.results}


# --- rules -----------------------------------------------------------------------------

@pytest.mark.parametrize("mem_total_kb, current_kb, expected", [
    (8 * GIB_KB, 67584, 83886),                 # 1% of 8 GiB beats the kernel's value
    (512 * GIB_KB, 100_000, 5_000_000),         # capped at RocketMQ's documented value
    (1 * GIB_KB, 45_056, 45_056),               # never below what the kernel chose
    (64 * 1024, None, 1024),                    # tiny host: the 1024 floor
    (2048 * GIB_KB, 6_000_000, 6_000_000),      # a host already above the cap keeps its value
])
def test_min_free_kbytes_scales_with_memory(mem_total_kb, current_kb, expected):
    assert settings.min_free_kbytes_target(mem_total_kb, current_kb) == expected


def test_min_free_kbytes_never_reaches_documented_value_on_small_hosts():
    # The unsafe recipe: 5000000 on an 8 GiB host would reserve ~60% of RAM.
    assert settings.min_free_kbytes_target(8 * GIB_KB, None) < 8 * GIB_KB // 50


@pytest.mark.parametrize("relation, current, recommended, holds, target", [
    (Relation.EQUAL, 1, 1, True, 1),
    (Relation.EQUAL, 0, 1, False, 1),
    (Relation.AT_LEAST, 1_048_576, 655_360, True, 1_048_576),   # a distro's higher value stays
    (Relation.AT_LEAST, 65_530, 655_360, False, 655_360),
    (Relation.AT_MOST, 1, 10, True, 1),                         # RocketMQ's os.sh uses 1
    (Relation.AT_MOST, 60, 10, False, 10),
    (Relation.AT_MOST, None, 10, None, 10),
])
def test_relation(relation, current, recommended, holds, target):
    if current is not None:
        assert relation.holds(current, recommended) is holds
    assert relation.target(current, recommended) == target


@pytest.mark.parametrize("text, choice", [
    ("always [madvise] never", "madvise"),
    ("[none] mq-deadline kyber bfq", "none"),
    ("noop deadline [cfq]", "cfq"),
    ("none", "none"),
    ("", None),
])
def test_selected_choice(text, choice):
    assert selected_choice(text) == choice


def test_drop_caches_is_never_persisted():
    assert all(s.name != "vm.drop_caches" for s in settings.SYSCTL_SETTINGS)
    for text in (install.render_sysctl_conf(None),
                 install.render_sysctl_conf(good_sysctls(), 16 * GIB_KB)):
        live_lines = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert not any(line.startswith("vm.drop_caches") for line in live_lines)
        assert "one-shot action" in text


def test_reference_sysctl_file_leaves_min_free_kbytes_to_the_host():
    text = install.render_sysctl_conf(None)
    assert "\nvm.min_free_kbytes" not in text
    assert "# vm.min_free_kbytes = <computed>" in text
    assert "5000000" in text and settings.MIN_FREE_KBYTES_RULE in text
    for name, value in [("vm.overcommit_memory", 1), ("vm.zone_reclaim_mode", 0),
                        ("vm.max_map_count", 655360), ("vm.dirty_background_ratio", 50),
                        ("vm.dirty_ratio", 50), ("vm.page-cluster", 3),
                        ("vm.dirty_writeback_centisecs", 360000), ("vm.swappiness", 10)]:
        assert f"\n{name} = {value}\n" in text


def test_limits_file():
    text = install.render_limits_conf()
    lines = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    assert ["rocketpy", "soft", "nofile", "1000000"] in lines
    assert ["rocketpy", "hard", "nproc", "1000000"] in lines
    assert ["*", "hard", "nofile", "1000000"] in lines
    assert not any(line[0] == "*" and line[2] == "nproc" for line in lines)


# --- check ------------------------------------------------------------------------------

def test_check_all_ok(tmp_path):
    report = checks.check(make_host(tmp_path), "/var/lib/rocketpy")
    assert report.all_ok, [r for r in report.results if r.status is not Status.OK]
    assert all(r.status is Status.OK for r in report.results)
    assert any("drop_caches" in note for note in report.notes)
    assert any("min_free_kbytes" in note and "5000000" in note for note in report.notes)


@pytest.mark.parametrize("name, value, status", [
    ("vm.overcommit_memory", 0, Status.OFF),
    ("vm.overcommit_memory", 2, Status.OFF),
    ("vm.min_free_kbytes", 67584, Status.OFF),       # below 1% of 16 GiB
    ("vm.min_free_kbytes", 9_000_000, Status.OK),    # more than asked for is fine
    ("vm.zone_reclaim_mode", 1, Status.OFF),
    ("vm.max_map_count", 65530, Status.OFF),
    ("vm.max_map_count", 1_048_576, Status.OK),
    ("vm.dirty_background_ratio", 10, Status.OFF),
    ("vm.dirty_ratio", 20, Status.OFF),
    ("vm.page-cluster", 0, Status.OFF),
    ("vm.dirty_writeback_centisecs", 500, Status.OFF),
    ("vm.swappiness", 60, Status.OFF),
    ("vm.swappiness", 1, Status.OK),
    ("fs.nr_open", 65536, Status.OFF),
    ("vm.swappiness", "garbage", Status.UNKNOWN),
])
def test_check_sysctl(tmp_path, name, value, status):
    sysctls: dict[str, int | str] = dict(good_sysctls())
    sysctls[name] = value
    report = checks.check(make_host(tmp_path, sysctls=sysctls), "/x")
    assert by_name(report)[name].status is status
    assert report.all_ok is (status is not Status.OFF)


def test_check_missing_sysctl_is_unknown_not_off(tmp_path):
    sysctls = good_sysctls()
    del sysctls["vm.zone_reclaim_mode"]        # a kernel without NUMA
    report = checks.check(make_host(tmp_path, sysctls=sysctls), "/x")
    result = by_name(report)["vm.zone_reclaim_mode"]
    assert result.status is Status.UNKNOWN
    assert "no vm.zone_reclaim_mode" in result.current
    assert report.all_ok


def test_check_min_free_kbytes_without_meminfo_is_unknown(tmp_path):
    report = checks.check(make_host(tmp_path, mem_total_kb=None), "/x")
    assert by_name(report)["vm.min_free_kbytes"].status is Status.UNKNOWN


@pytest.mark.parametrize("nofile, nproc, status", [
    ((1_000_000, 1_000_000), (1_000_000, 1_000_000), Status.OK),
    ((1_048_576, 1_048_576), (resource.RLIM_INFINITY, resource.RLIM_INFINITY), Status.OK),
    ((1024, 1_000_000), (1_000_000, 1_000_000), Status.OFF),     # soft limit too low
    ((1_000_000, 1_000_000), (4096, 4096), Status.OFF),
])
def test_check_rlimits(tmp_path, nofile, nproc, status):
    host = make_host(tmp_path, rlimits=fixed_rlimits(nofile, nproc))
    results = [r for r in checks.check(host, "/x").results if r.kind == "rlimit"]
    assert {r.name for r in results} == {"ulimit nofile", "ulimit nproc"}
    assert (Status.OFF in {r.status for r in results}) is (status is Status.OFF)


@pytest.mark.parametrize("disk, dev, status, device_name", [
    (FakeDisk("sda", 8, 0, partitions=2), (8, 2), Status.OK, "sda"),      # partition -> disk
    (FakeDisk("sda", 8, 0, scheduler="mq-deadline [none]"), (8, 0), Status.OFF, "sda"),
    (FakeDisk("sda", 8, 0, scheduler="[bfq] none"), (8, 0), Status.OFF, "sda"),
    (FakeDisk("sda", 8, 0, scheduler="noop [deadline] cfq"), (8, 0), Status.OK, "sda"),
    (FakeDisk("nvme0n1", 259, 0, scheduler="[none] mq-deadline", rotational=False,
              partitions=1), (259, 1), Status.OK, "nvme0n1"),
    (FakeDisk("vda", 254, 0, scheduler="[none] mq-deadline", rotational=True,
              bus="pci0000:00/0000:00:05.0/virtio2"), (254, 0), Status.OK, "vda"),
    (FakeDisk("sdb", 8, 16, scheduler=None), (8, 16), Status.UNKNOWN, "sdb"),
])
def test_check_disk_scheduler(tmp_path, disk, dev, status, device_name):
    report = checks.check(make_host(tmp_path, disk=disk, dev=dev), "/var/lib/rocketpy")
    disk_results = [r for r in report.results if r.kind == "disk"]
    assert [r.status for r in disk_results] == [status]
    assert f"({device_name}," in disk_results[0].name


def test_check_disk_follows_device_mapper_to_its_disks(tmp_path):
    root = build(tmp_path / "host", disks=[
        FakeDisk("sda", 8, 0, partitions=1),
        FakeDisk("sdb", 8, 16, scheduler="[none] mq-deadline"),
        FakeDisk("dm-0", 253, 0, scheduler="none", slaves=("sda", "sdb"),
                 bus="virtual"),
    ])
    host = Host(root, getrlimit=fixed_rlimits(), stat=stat_on_device(253, 0))
    results = [r for r in checks.check(host, "/store").results if r.kind == "disk"]
    assert [(r.name.split(",")[0], r.status) for r in results] == [
        ("disk scheduler (sda", Status.OK), ("disk scheduler (sdb", Status.OFF)]


def test_check_disk_on_virtual_filesystem_is_unknown(tmp_path):
    report = checks.check(make_host(tmp_path, dev=(0, 42)), "/store")
    result = next(r for r in report.results if r.kind == "disk")
    assert result.status is Status.UNKNOWN
    assert "virtual file system" in result.current


def test_check_disk_without_store_path_is_unknown(tmp_path):
    report = checks.check(make_host(tmp_path), None)   # no /var/lib/rocketpy in the fake root
    result = next(r for r in report.results if r.kind == "disk")
    assert result.status is Status.UNKNOWN
    assert "--store-path" in result.reason


@pytest.mark.parametrize("thp, status", [
    ("always [madvise] never", Status.OK),
    ("always madvise [never]", Status.OK),
    ("[always] madvise never", Status.OFF),
    (None, Status.UNKNOWN),
])
def test_check_transparent_hugepage(tmp_path, thp, status):
    report = checks.check(make_host(tmp_path, thp=thp), "/x")
    assert by_name(report)["transparent_hugepage"].status is status


def test_check_json_shape(tmp_path):
    sysctls = good_sysctls()
    sysctls["vm.swappiness"] = 60
    data = checks.check(make_host(tmp_path, sysctls=sysctls), "/x").to_json()
    assert data["ok"] is False and data["off"] == 1
    assert {"name", "kind", "current", "recommended", "status", "reason"} <= set(data["results"][0])


# --- plan and apply -------------------------------------------------------------------------

def off_host(tmp_path: Path, **changes: int) -> Host:
    sysctls = good_sysctls()
    sysctls.update({"vm.swappiness": 60, "vm.max_map_count": 65530, "vm.min_free_kbytes": 67584})
    sysctls.update({k.replace("__", "."): v for k, v in changes.items()})
    return make_host(tmp_path, sysctls=sysctls)


def test_plan_lists_exactly_the_files(tmp_path):
    root = tmp_path / "root"
    the_plan = install.plan(root, off_host(tmp_path))
    assert [f.path for f in the_plan.files] == [root / p for p in INSTALLED]
    assert all(f.action is FileAction.CREATE for f in the_plan.files)
    assert not the_plan.live
    assert not root.exists(), "a plan writes nothing"
    changes = {s.name: s for s in the_plan.sysctls}
    assert "vm.drop_caches" not in changes and "fs.nr_open" not in changes
    assert changes["vm.swappiness"].action is SysctlAction.SET
    assert (changes["vm.swappiness"].current, changes["vm.swappiness"].target) == (60, 10)
    assert changes["vm.min_free_kbytes"].target == 16 * GIB_KB // 100
    assert changes["vm.overcommit_memory"].action is SysctlAction.UNCHANGED


def test_apply_into_root_twice_is_idempotent(tmp_path):
    root, host = tmp_path / "root", off_host(tmp_path)
    first = install.apply(root, host)
    assert first.changed and not first.failed
    assert [f.action for f in first.files] == [FileAction.CREATE] * len(INSTALLED)
    assert first.live == (), "the running kernel is only touched when the root is /"
    for rel in INSTALLED:
        path = root / rel
        assert path.stat().st_mode & 0o777 == 0o644
    sysctl_text = (root / INSTALLED[0]).read_text()
    assert f"\nvm.min_free_kbytes = {16 * GIB_KB // 100}\n" in sysctl_text
    assert "\nvm.swappiness = 10\n" in sysctl_text
    assert not list(root.rglob(".*rocketpy-tmp")), "no temp files left behind"

    second = install.apply(root, host)
    assert not second.changed and not second.failed
    assert all(f.action is FileAction.UNCHANGED for f in second.files)
    assert not install.plan(root, host).changes_anything


def test_apply_repairs_an_edited_file(tmp_path):
    root, host = tmp_path / "root", off_host(tmp_path)
    install.apply(root, host)
    unit = root / INSTALLED[4]
    unit.write_text(unit.read_text().replace("WatchdogSec=30", "WatchdogSec=1"))
    actions = {f.path: f.action for f in install.plan(root, host).files}
    assert actions[unit] is FileAction.UPDATE
    assert sum(a is FileAction.UPDATE for a in actions.values()) == 1
    install.apply(root, host)
    assert "WatchdogSec=30" in unit.read_text()


def test_apply_keeps_a_host_value_already_past_the_advice(tmp_path):
    host = off_host(tmp_path, vm__max_map_count=1_048_576)
    install.apply(tmp_path / "root", host)
    text = (tmp_path / "root" / INSTALLED[0]).read_text()
    assert "\nvm.max_map_count = 1048576\n" in text


def test_apply_reports_a_file_it_cannot_write(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "etc").write_text("not a directory")
    report = install.apply(root, off_host(tmp_path))
    assert report.failed
    assert all(f.error and "cannot write" in f.error for f in report.files)


def test_exec_path_goes_into_the_units(tmp_path):
    root = tmp_path / "root"
    install.apply(root, off_host(tmp_path), exec_path="/opt/rocketpy/bin/rocketpy")
    text = (root / INSTALLED[4]).read_text()
    assert "ExecStart=/opt/rocketpy/bin/rocketpy broker -c /etc/rocketpy/broker.properties" in text


@pytest.mark.parametrize("root, live", [("/", True), ("/tmp/..", True), ("/tmp", False)])
def test_only_root_slash_is_live(root, live):
    assert install.is_live_root(root) is live


# --- live values (fake /proc/sys, injected writer) ---------------------------------------------

def test_apply_live_sets_and_then_finds_nothing_to_do(tmp_path):
    host = off_host(tmp_path)
    results = {r.name: r for r in install.apply_live(install.plan("/", host).sysctls, host)}
    assert results["vm.swappiness"].status is LiveStatus.APPLIED
    assert results["vm.swappiness"].message == "60 -> 10"
    assert results["vm.overcommit_memory"].status is LiveStatus.UNCHANGED
    assert host.read_sysctl("vm.max_map_count").as_int() == 655360
    assert host.read_sysctl("vm.min_free_kbytes").as_int() == 16 * GIB_KB // 100

    again = install.apply_live(install.plan("/", host).sysctls, host)
    assert all(r.status is LiveStatus.UNCHANGED for r in again)


@pytest.mark.parametrize("err, words", [
    (errno.EROFS, "read-only"),
    (errno.EACCES, "permission denied"),
    (errno.EPERM, "permission denied"),
    (errno.ENOENT, "no such setting"),
    (errno.EINVAL, "rejected"),
])
def test_apply_live_explains_each_failure(tmp_path, err, words):
    host = off_host(tmp_path)

    def refuse(path: Path, value: str) -> None:
        raise OSError(err, "refused", str(path))

    results = install.apply_live(install.plan("/", host).sysctls, host, refuse)
    failed = [r for r in results if r.status is LiveStatus.FAILED]
    assert {r.name for r in failed} == {"vm.swappiness", "vm.max_map_count", "vm.min_free_kbytes"}
    assert all(words in r.message for r in failed)


def test_apply_live_notices_a_value_the_kernel_did_not_take(tmp_path):
    host = off_host(tmp_path)

    def clamp(path: Path, value: str) -> None:
        path.write_text("7\n")

    results = install.apply_live(install.plan("/", host).sysctls, host, clamp)
    swappiness = next(r for r in results if r.name == "vm.swappiness")
    assert swappiness.status is LiveStatus.FAILED
    assert "kept 7" in swappiness.message
