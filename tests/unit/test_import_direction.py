"""Imports point one way (ARCHITECTURE.md): protocol <- store <- broker, ipc <- broker,
protocol <- client, protocol <- namesrv; limits, errors, clock and config are for everyone."""

from __future__ import annotations

import ast
from pathlib import Path

import rocketpy

PACKAGE_ROOT = Path(rocketpy.__file__).parent
COMMON = {"limits", "errors", "clock", "config", "sdnotify", "__init__", "progress"}

# area -> areas it may import (besides itself and COMMON)
ALLOWED: dict[str, set[str]] = {
    "protocol": set(),
    "store": {"protocol"},
    "ipc": set(),
    "namesrv": {"protocol", "metrics"},
    "client": {"protocol"},
    "broker": {"protocol", "store", "ipc", "client", "metrics"},
    "tune": set(),
    "cli": {"protocol", "store", "ipc", "namesrv", "client", "broker", "tune", "metrics"},
    "metrics": {"protocol"},
}


def _area(path: Path) -> str:
    rel = path.relative_to(PACKAGE_ROOT)
    return rel.parts[0].removesuffix(".py")


def _imported_areas(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    module_parts = list(path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
    areas: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "rocketpy" and len(parts) > 1:
                    areas.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module_parts[: len(module_parts) - node.level]
                if path.name == "__init__.py":
                    base = module_parts[: len(module_parts) - node.level + 1]
                parts = base + (node.module.split(".") if node.module else [])
                if parts:
                    areas.add(parts[0])
                else:
                    areas.update(a.name for a in node.names)
            elif node.module:
                parts = node.module.split(".")
                if parts[0] == "rocketpy":
                    if len(parts) > 1:
                        areas.add(parts[1])
                    else:
                        areas.update(_module_or_init(a.name) for a in node.names)
    return areas


def _module_or_init(name: str) -> str:
    """`from rocketpy import x`: x is an area if it is a module or package, else a name in __init__."""
    if (PACKAGE_ROOT / name).is_dir() or (PACKAGE_ROOT / f"{name}.py").exists():
        return name
    return "__init__"


def test_every_area_has_a_rule():
    for child in PACKAGE_ROOT.iterdir():
        if child.is_dir() and (child / "__init__.py").exists():
            assert child.name in ALLOWED, f"new package {child.name} needs a rule in ALLOWED"


def test_imports_point_one_way():
    violations = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        area = _area(path)
        if area in COMMON:
            # the shared modules import nothing but each other
            bad = _imported_areas(path) - COMMON
        else:
            bad = _imported_areas(path) - ALLOWED[area] - COMMON - {area}
        if bad:
            violations.append(f"{path.relative_to(PACKAGE_ROOT)} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_checker_sees_a_violation(tmp_path, monkeypatch):
    """The checker itself must be able to fail."""
    fake_root = tmp_path / "rocketpy"
    (fake_root / "protocol").mkdir(parents=True)
    bad = fake_root / "protocol" / "x.py"
    bad.write_text("from rocketpy.store import commitlog\nfrom ..broker import worker\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE_ROOT", fake_root, raising=False)
    globals()["PACKAGE_ROOT"] = fake_root
    try:
        assert _imported_areas(bad) == {"store", "broker"}
    finally:
        globals()["PACKAGE_ROOT"] = Path(rocketpy.__file__).parent
