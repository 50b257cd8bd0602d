"""The package: `pip wheel .` builds the native extension and py.typed into the wheel (isolated
build: scikit-build-core, pybind11 and cmeel-eigen from PyPI); the public names; the core
dependencies and the extras, a missing one named in one line."""

import re
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
    assert "tfbreak/py.typed" in names
    shipped = {
        n.removeprefix("tfbreak/configs/") for n in names if n.startswith("tfbreak/configs/")
    }
    assert shipped == {p.name for p in (ROOT / "configs").glob("*.flags")}
    assert not any(n.startswith(("tests/", "csrc/")) for n in names)


def test_public_names_are_listed_without_importing_tensorflow():
    """`dir(tfbreak)` shows the public names (completion), `import tfbreak` loads no TensorFlow,
    and py.typed marks the package as typed."""
    code = (
        "import sys, tfbreak\n"
        "print(sorted(n for n in dir(tfbreak) if not n.startswith('_')), tfbreak.__all__)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    listed, imported = proc.stdout.splitlines()
    assert listed == (
        "['BreakEvenCallback', 'Curvature', 'MeasurementSettings'] "
        "['BreakEvenCallback', 'Curvature', 'MeasurementSettings', '__version__']"
    )
    assert imported == "False"
    assert (ROOT / "tfbreak" / "py.typed").is_file()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_core_dependencies_and_extras():
    """The core installs what the core imports; every package tfbreak.extras names is in its
    extra; [test] installs every extra."""
    from tfbreak.extras import EXTRAS

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    assert core == {"tensorflow", "keras", "numpy", "scipy", "absl-py", "tqdm"}
    optional = project["optional-dependencies"]
    for extra, packages in EXTRAS.items():
        assert set(packages.values()) <= _requirement_names(optional[extra]), extra
    assert "tfbreak[report,data,bert]" in optional["test"]


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, tmp_path):
    from tfbreak import extras, preflight
    from tfbreak.config import ConfigError, ExperimentConfig
    from tfbreak.data import DatasetUnavailableError
    from tfbreak.data.common import load_tfds_splits

    monkeypatch.setattr(extras, "_installed", lambda module: module not in ("matplotlib", "umap"))
    config = ExperimentConfig.create(model="mlp", dataset="fashion_mnist", output_dir=str(tmp_path))
    preflight.check_extras(config)  # no extra needed
    with pytest.raises(ConfigError) as err:
        preflight.check_extras(config, report=True)
    assert str(err.value) == (
        '--report: the report needs matplotlib, umap-learn: pip install "tfbreak[report]"'
    )
    monkeypatch.setattr(extras, "_installed", lambda module: False)
    cifar = ExperimentConfig.create(model="simple_cnn", dataset="cifar10")
    with pytest.raises(ConfigError, match=r"^--dataset: cifar10 needs tensorflow-datasets: pip"):
        preflight.check_extras(cifar)
    with pytest.raises(DatasetUnavailableError, match=r'pip install "tfbreak\[data\]"$'):
        load_tfds_splits("cifar10", ("train",), data_dir=None, download=False)
