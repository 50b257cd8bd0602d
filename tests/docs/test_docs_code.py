"""The documentation's code is true: every ```python block of README.md, docs/*.md and
benchmarks/README.md runs as written (a page's blocks in order, as one script in a fresh
directory and process); a block marked ```python excerpt=PATH is a passage of that source file;
every tfbreak command line of a ```bash block parses and validates (in this process, without the
data it would read)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGES = sorted(
    [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *(ROOT / "docs").glob("*.md")]
)
FENCE = re.compile(r"^( *)```(\w*)([^\n]*)\n(.*?)^\1```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    page: Path
    language: str
    info: str
    code: str


def blocks(page: Path) -> list[Block]:
    out = []
    for match in FENCE.finditer(page.read_text(encoding="utf-8")):
        indent, language, info, code = match.groups()
        code = "\n".join(line.removeprefix(indent) for line in code.splitlines())
        out.append(Block(page, language, info.strip(), code))
    return out


ALL = [b for page in PAGES for b in blocks(page)]
RUNNABLE = sorted({b.page for b in ALL if b.language == "python" and not b.info})
EXCERPTS = [b for b in ALL if b.language == "python" and b.info.startswith("excerpt=")]


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_pages_have_code_to_check():
    assert {"README.md", "docs/library.md"} <= {_name(p) for p in RUNNABLE}
    assert len(EXCERPTS) >= 3 and len(COMMANDS) >= 6
    untagged = [b for b in ALL if b.language not in ("python", "bash", "text")]
    assert not untagged, f"fence without a language (python, bash or text): {untagged[:1]}"


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=_name)
def test_python_blocks_run(page, tmp_path):
    script = "\n\n".join(b.code for b in blocks(page) if b.language == "python" and not b.info)
    (tmp_path / "page.py").write_text(script, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "page.py"], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _squashed(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("block", EXCERPTS, ids=lambda b: f"{_name(b.page)}:{b.info}")
def test_excerpts_are_in_their_source(block):
    source = ROOT / block.info.removeprefix("excerpt=")
    assert source.is_file(), f"{_name(block.page)}: no file {source}"
    assert _squashed(block.code) in _squashed(source.read_text(encoding="utf-8")), (
        f"{_name(block.page)}: the excerpt is not (any more) in {source.relative_to(ROOT)}"
    )


def _commands(block: Block) -> list[list[str]]:
    """The tfbreak command lines of a shell block (continuations joined, comments dropped)."""
    out = []
    for line in block.code.replace("\\\n", " ").splitlines():
        if not line.lstrip().startswith(("python -m tfbreak.main", "tfbreak ")):
            continue
        words = shlex.split(line, comments=True)
        if words[:3] == ["python", "-m", "tfbreak.main"]:
            out.append(words[3:])
        elif words[:1] == ["tfbreak"]:
            out.append(words[1:])
    return out


COMMANDS = [
    (f"{_name(b.page)}: {shlex.join(args)}", args)
    for b in ALL
    if b.language == "bash"
    for args in _commands(b)
]


@pytest.mark.parametrize(("where", "args"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_command_lines_parse_and_validate(where, args, monkeypatch):
    """Flags and values, flagfiles, sweeps: what `python -m tfbreak.main` checks before it
    looks at the machine (paths, prepared data sets and installed extras are the user's)."""
    from absl import flags

    from tfbreak import main

    monkeypatch.chdir(ROOT)
    try:
        main.parse_flags(["tfbreak", *args])
        if not flags.FLAGS.list_configs:
            assert main.configured_runs()
    except SystemExit as exit_:
        pytest.fail(f"{where}: exit {exit_.code}")
    finally:
        flags.FLAGS.unparse_flags()
