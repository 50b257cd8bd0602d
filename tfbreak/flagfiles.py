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


def description(name: str, width: int = 90) -> str:
    """The flagfile's leading comment (what the experiment is), cut to `width` characters."""
    path = config_dir() / f"{name}{SUFFIX}"
    comment = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    text = " ".join(comment)
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def expand(argv: list[str]) -> list[str]:
    """`argv` with ``--config=NAME`` (or ``--config NAME``) replaced by ``--flagfile=`` the
    packaged flagfile of that name, and a ``--flagfile=PATH`` that does not exist resolved by
    name among the packaged ones (a checkout's `configs/X.flags` works from any directory and
    from an installed wheel). ValueError naming --config for an unknown name."""
    out, args = [], iter(argv)
    for arg in args:
        if arg == "--config":
            arg = f"--config={next(args, '')}"
        if arg.startswith("--config="):
            name = arg.partition("=")[2]
            path = resolve(name) if name else None
            if path is None:
                raise ValueError(
                    f"--config: no experiment flagfile named {name!r}; one of "
                    f"{', '.join(list_configs())} (tfbreak --list_configs), or "
                    "--flagfile=PATH for your own"
                )
            arg = f"--flagfile={path}"
        elif arg.startswith("--flagfile="):
            given = arg.partition("=")[2]
            path = resolve(given) if given else None
            if path is not None:
                arg = f"--flagfile={path}"
        out.append(arg)
    return out
