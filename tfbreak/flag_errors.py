"""The command line's one-line answers to arguments absl cannot parse: ``--flag: what was
expected``, preceded by ``--flagfile: PATH line N:`` when the bad argument is a line of a
flagfile (`tfbreak.flagfiles.arguments`). TensorFlow-free."""

from __future__ import annotations

import difflib
import re

from absl import flags

from tfbreak import flagfiles

FLAGS = flags.FLAGS


def _expected(name: str, value: str) -> str:
    """`--name: expected ..., got 'value'` for a value absl cannot parse."""
    parser = FLAGS[name].parser
    kinds = {
        flags.IntegerParser: "an integer",
        flags.FloatParser: "a number",
        flags.BooleanParser: "true or false",
    }
    kind = next((k for cls, k in kinds.items() if isinstance(parser, cls)), None)
    if isinstance(parser, flags.EnumParser):
        kind = f"one of {', '.join(parser.enum_values)}"
    return f"--{name}: expected {kind or 'a valid value'}, got {value!r}"


def _unparsable(name: str, args: list[str]) -> tuple[str, str] | None:
    """The first argument setting --name (``--name=V``, or ``--name V``) to a value its parser
    refuses, and that value."""
    for i, arg in enumerate(args):
        flag, sep, value = arg.lstrip("-").partition("=")
        if flag != name or not arg.startswith("-"):
            continue
        if not sep:
            if i + 1 == len(args):
                continue
            value = args[i + 1]
        try:
            FLAGS[name].parser.parse(value)
        except (ValueError, TypeError):
            return arg, value
    return None


def describe(err: Exception, argv: list[str]) -> str:
    """absl's parse error as ``--flag: what was expected``, preceded by ``--flagfile: PATH line
    N:`` when the bad argument is a flagfile's line (`flagfiles.arguments`)."""
    args: dict[str, str | None] = {}  # each argument, in order, and where it was first given
    for arg, origin in flagfiles.arguments(argv):
        args.setdefault(arg, origin)
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    arg, message = None, text
    if isinstance(err, flags.UnrecognizedFlagError):
        arg, name = err.flagvalue, err.flagname.lstrip("-")
        close = difflib.get_close_matches(name, list(FLAGS), n=3)
        hint = f"; did you mean {', '.join('--' + c for c in close)}?" if close else ""
        message = f"--{name}: unknown flag{hint} (tfbreak --help lists them)"
    elif m := re.match(r"flag --([^=]+)=", text):
        name = m.group(1)
        found = _unparsable(name, list(args))
        arg = found[0] if found else None
        message = _expected(name, found[1]) if found else f"--{name}: {text}"
    elif m := re.match(r"Missing value for flag -+(\S+)", text):
        arg, message = m.group(0).split()[-1], f"--{m.group(1)}: needs a value (--{m.group(1)}=V)"
    elif m := re.match(r"-+no(\w+)=\S* does not take an argument", text):
        arg = text.split()[0]
        message = f"--no{m.group(1)}: takes no value (--{m.group(1)}=true or false)"
    elif isinstance(err, flags.CantOpenFlagFileError):
        m = re.search(r"\[Errno \d+\] ([^:]+): '(.*)'$", text)
        path, why = (m.group(2), m.group(1)) if m else ("", text)
        arg, message = f"--flagfile={path}", f"--flagfile: {path} cannot be read ({why})"
    origin = args.get(arg) if arg else None
    return f"--flagfile: {origin}: {message}" if origin else message


def stray(extra: list[str], argv: list[str]) -> str:
    """`extra`: the arguments absl left over (not flags); `argv`: as `flagfiles.expand` made it."""
    origin = dict(flagfiles.arguments(argv)).get(extra[0])
    if origin:
        return f"--flagfile: {origin}: {extra[0]!r} is not a flag (flags look like --name=value)"
    return f"unexpected arguments {extra}; flags look like --name=value"


__all__ = ["describe", "stray"]
