"""docs/sdk.md is what tools/gen_sdk_docs.py makes from the current docstrings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_committed_sdk_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("gen_sdk_docs", REPO / "tools" / "gen_sdk_docs.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    expected = gen.render()
    assert "class `Producer`" in expected and "send_message_in_transaction" in expected
    assert (REPO / "docs" / "sdk.md").read_text() == expected, "run: python tools/gen_sdk_docs.py"
