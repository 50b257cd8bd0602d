"""The experiment flagfiles (one per paper setting, plus the offline quickstart): `configs/` in a
checkout, `tfbreak/configs/` inside an installed wheel (CMake installs them there). A flagfile is
found by name (`quickstart`) or by the path a checkout would use (`configs/quickstart.flags`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
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
    packaged flagfile of that name, and a ``--flagfile=PATH`` (or ``--flagfile PATH``) that
    does not exist resolved by name among the packaged ones (a checkout's `configs/X.flags`
    works from any directory and from an installed wheel). ValueError naming --config for an
    unknown name, --flagfile for a file that is neither."""
    out, args = [], iter(argv)
    for arg in args:
        if arg in ("--config", "--flagfile"):
            arg = f"{arg}={next(args, '')}"
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
            path = resolve(os.path.expanduser(given)) if given else None
            if path is None:
                raise ValueError(
                    f"--flagfile: {given or '(empty)'} is not a file, nor the name of a shipped "
                    "flagfile (tfbreak --list_configs)"
                )
            arg = f"--flagfile={path}"
        out.append(arg)
    return out


def arguments(argv: list[str]) -> Iterator[tuple[str, str | None]]:
    """The arguments absl parses from `argv` (as `expand` returns it): each flagfile's lines
    in its place, read the way absl reads them (blank lines and lines starting with ``#`` or
    ``//`` skipped, nested ``--flagfile=`` lines followed), each with where it was written,
    ``"PATH line N"``, or None for the command line. For naming the line of a bad flag."""

    def lines(path: str, stack: tuple[str, ...]) -> Iterator[tuple[str, str | None]]:
        if path in stack:
            return
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.readlines()
        except OSError:
            return
        for number, line in enumerate(text, 1):
            if line.isspace() or line.startswith(("#", "//")):
                continue
            if line.startswith(("--flagfile=", "-flagfile=")):
                nested = os.path.expanduser(line.split("=", 1)[1].strip())
                yield f"--flagfile={nested}", f"{path} line {number}"
                yield from lines(nested, (*stack, path))
            else:
                yield line.strip(), f"{path} line {number}"

    for arg in argv:
        if arg.startswith(("--flagfile=", "-flagfile=")):
            yield from lines(os.path.expanduser(arg.split("=", 1)[1]), ())
        else:
            yield arg, None
