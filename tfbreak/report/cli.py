"""``python -m tfbreak.report``: the report of runs or sweeps (paper, Sec. 3 and 4.2; Eq. 1).

Usage:
  python -m tfbreak.report RUN_DIR_OR_SWEEP_DIR... [--out DIR] [--smoothing WINDOW]
      [--smoothing_mode trailing|centred] [--thresholds 0.6,0.75] [--no-umap] [--no-html]
      [--bootstrap 1000]

Every sweep directory given is reported on its own (``OUT/<name>/`` when several); run
directories given directly form one sweep together. Default OUT: ``<sweep dir>/report`` for a single
sweep directory, ``<run dir>/figures`` for a single run, ``./tfbreak_report`` otherwise.
Writes report.md, report.html (PNGs embedded as base64), conjectures.csv, conjectures.md,
conjectures_windows.csv (noise-aware statistics and verdicts per window) and the PNGs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tfbreak.analysis import noise
from tfbreak.report.build import ReportOptions, build
from tfbreak.report.document import write_report
from tfbreak.runs import NotARunError, find_runs, is_run_dir, load_run


def group_inputs(paths: Sequence[str | Path]) -> list[tuple[str, list[Path]]]:
    """(name, run dirs) per sweep: each sweep dir alone; all direct run dirs together."""
    groups: list[tuple[str, list[Path]]] = []
    direct: list[Path] = []
    for p in map(Path, paths):
        if is_run_dir(p):
            direct.append(p)
        else:
            groups.append((p.resolve().name or "sweep", find_runs(p)))
    if direct:
        name = direct[0].resolve().name if len(direct) == 1 else "runs"
        groups.insert(0, (name, direct))
    return groups


def default_out(paths: Sequence[str | Path]) -> Path:
    """``<run>/figures`` or ``<sweep>/report`` for one path, else ``./tfbreak_report``."""
    if len(paths) == 1:
        p = Path(paths[0])
        return p / "figures" if is_run_dir(p) else p / "report"
    return Path("tfbreak_report")


def _thresholds(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--thresholds: {err}") from err


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tfbreak-report",
        description="Figures, conjecture verdicts and break-even points for runs or sweeps.",
    )
    p.add_argument("paths", nargs="+", help="run directories or sweep directories")
    p.add_argument("--out", type=Path, default=None, help="output directory")
    p.add_argument(
        "--smoothing", type=int, default=None, help="moving-average window (measurements)"
    )
    p.add_argument("--smoothing_mode", choices=("trailing", "centred"), default="trailing")
    p.add_argument("--thresholds", type=_thresholds, default=ReportOptions.thresholds)
    p.add_argument("--no-umap", dest="umap", action="store_false", help="skip Figs. 1, 8")
    p.add_argument("--no-html", dest="html", action="store_false")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=noise.DEFAULT_REPLICATES,
        help="bootstrap replicates for noise-aware verdicts",
    )
    return p


def options(args: argparse.Namespace) -> ReportOptions:
    """The report options of parsed arguments."""
    return ReportOptions(
        window=args.smoothing,
        mode=args.smoothing_mode,
        thresholds=args.thresholds,
        umap=args.umap,
        replicates=args.bootstrap,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (``python -m tfbreak.report``); returns the exit status."""
    p = parser()
    args = p.parse_args(argv)
    if args.bootstrap < 1:
        p.error("--bootstrap must be >= 1")
    if args.smoothing is not None and args.smoothing < 1:
        p.error("--smoothing must be >= 1")
    try:
        groups = group_inputs(args.paths)
    except NotARunError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out or default_out(args.paths)
    for name, dirs in groups:
        target = out if len(groups) == 1 else out / name
        report = build([load_run(d) for d in dirs], target, options(args), title=name)
        print(write_report(report, target, html=args.html))
    return 0


def run() -> None:
    """Console-script entry point (``tfbreak-report``, ``python -m tfbreak.report``)."""
    sys.exit(main())
