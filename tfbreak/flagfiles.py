"""The experiment flagfiles (one per paper setting, plus the offline quickstart): `configs/` in a
checkout, `tfbreak/configs/` inside an installed wheel (CMake installs them there). A flagfile is
found by name (`quickstart`) or by the path a checkout would use (`configs/quickstart.flags`)."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).parent
SUFFIX = ".flags"


def config_dir() -> Path:
    """The packaged flagfiles (wheel) or the checkout's `configs/` (editable install)."""
    packaged = PACKAGE / "configs"
    return packaged if packaged.is_dir() else PACKAGE.parent / "configs"


def list_configs() -> list[str]:
    """Names of the flagfiles (`quickstart`, `simple_cnn_cifar10`, ...)."""
    return sorted(p.name.removesuffix(SUFFIX) for p in config_dir().glob(f"*{SUFFIX}"))


def resolve(name_or_path: str) -> Path | None:
    """An existing flagfile: the path as given, else the flagfile of that name (with or without
    `configs/` and `.flags`) among the packaged ones; None if there is none."""
    given = Path(name_or_path)
    if given.is_file():
        return given
    name = given.name.removesuffix(SUFFIX)
    packaged = config_dir() / f"{name}{SUFFIX}"
    return packaged if packaged.is_file() else None
