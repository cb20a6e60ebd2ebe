"""Generate docs/sdk.md, the SDK's API reference, from the docstrings of rocketpy.client.

    python tools/gen_sdk_docs.py            # rewrite docs/sdk.md
    python tools/gen_sdk_docs.py --check    # exit 1 if docs/sdk.md is out of date

Only the standard library (inspect); the page lists every name of rocketpy.client.__all__
with its signature and docstring, and the public methods of each class.
"""

from __future__ import annotations

import argparse
import enum
import inspect
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "sdk.md"

HEADER = """# rocketpy Python SDK — API reference

Generated from the docstrings by `tools/gen_sdk_docs.py`; do not edit by hand.
The README's "Python SDK quick start" shows the common uses.

"""


_ADDRESS = re.compile(r" object at 0x[0-9a-fA-F]+")


def _signature(obj: object) -> str:
    try:
        text = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"
    return _ADDRESS.sub(" object", text)      # default objects' reprs carry memory addresses


def _doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else ""


def _own_and_private_bases(cls: type) -> dict[str, object]:
    """The class's members, with those it inherits from private rocketpy bases (`_Name`): a
    shared implementation detail, documented on each public class that has it."""
    members: dict[str, object] = {}
    for base in reversed(cls.__mro__):
        if base is cls or (base.__name__.startswith("_") and base.__module__.startswith("rocketpy")):
            members.update(vars(base))
    return members


def _class_section(name: str, cls: type) -> list[str]:
    lines = [f"## class `{name}`", ""]
    if issubclass(cls, enum.Enum):
        lines += [_doc(cls), "", "Members: " + ", ".join(f"`{m.name}`" for m in cls), ""]
        return lines
    lines += [f"```python\n{name}{_signature(cls)}\n```", "", _doc(cls), ""]
    for attr, member in sorted(_own_and_private_bases(cls).items()):
        if attr.startswith("_") and attr not in ("__enter__", "__aenter__"):
            continue
        if isinstance(member, property):
            doc = _doc(member.fget) if member.fget else ""
            lines += [f"- property `{attr}`" + (f": {doc.splitlines()[0]}" if doc else "")]
            continue
        func = member.__func__ if isinstance(member, classmethod | staticmethod) else member
        if not inspect.isfunction(func):
            continue
        kind = "async " if inspect.iscoroutinefunction(func) else ""
        doc = _doc(func)
        lines += [f"- {kind}`{attr}{_signature(func)}`" + (f" — {doc}" if doc else "")]
    lines.append("")
    return lines


def render() -> str:
    sys.path.insert(0, str(REPO))
    import rocketpy.client as sdk

    lines = [HEADER.rstrip("\n"), "", _doc(sdk), ""]
    for name in sorted(sdk.__all__):
        obj = getattr(sdk, name)
        if inspect.isclass(obj):
            lines += _class_section(name, obj)
        else:
            lines += [f"## `{name}`", "", f"`{obj!r}`" if not callable(obj) else _signature(obj), "", _doc(obj), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/sdk.md is current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print("docs/sdk.md is out of date: run python tools/gen_sdk_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
