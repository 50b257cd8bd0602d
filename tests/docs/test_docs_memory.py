"""docs/memory.md's per-config table is what the memory budget gives for the shipped configs at
the sizes written beside it (scripts/memory_table.py --write regenerates both)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("memory_table", ROOT / "scripts/memory_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_memory_table_is_the_budget_of_every_shipped_config():
    script = _script()
    doc = (ROOT / "docs" / "memory.md").read_text()
    sizes = json.loads(script.SIZES_RE.search(doc).group(1))
    assert set(sizes) == {p.stem for p in (ROOT / "configs").glob("*.flags")}
    assert script.block(sizes) in doc, "run: python scripts/memory_table.py --write"
