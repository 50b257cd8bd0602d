"""`pip wheel .` builds the native extension into the wheel (isolated build: scikit-build-core,
pybind11 and cmeel-eigen from PyPI)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_wheel_contains_the_native_module(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("tfbreak-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("tfbreak/_native") and n.endswith(".so") for n in names), names
    assert "tfbreak/curvature/algorithms/lanczos.py" in names
    shipped = {
        n.removeprefix("tfbreak/configs/") for n in names if n.startswith("tfbreak/configs/")
    }
    assert shipped == {p.name for p in (ROOT / "configs").glob("*.flags")}
    assert not any(n.startswith(("tests/", "csrc/")) for n in names)
