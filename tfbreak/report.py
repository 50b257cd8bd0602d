"""Report over a sweep of runs: figures, conjecture verdicts, break-even points.

Usage:
  python -m tfbreak.report RUN_DIR_OR_SWEEP_DIR... [--out DIR] [--smoothing WINDOW]
      [--smoothing_mode trailing|centred] [--thresholds 0.6,0.75] [--no-umap] [--no-html]
      [--bootstrap 1000]

Every sweep directory given is reported on its own (``OUT/<name>/`` when several); run
directories given directly form one sweep together. Default OUT: ``<sweep dir>/report`` for a single
sweep directory, ``<run dir>/figures`` for a single run, ``./tfbreak_report`` otherwise.
Writes report.md, report.html (PNGs embedded as base64), conjectures.csv, conjectures.md,
conjectures_windows.csv (noise-aware maxima and verdicts per window) and the PNGs.
The reader never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import base64
import html
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tfbreak.analysis import breakeven, conjectures, figures, thresholds
from tfbreak.analysis.series import TRAINING_ACCURACY, has_series
from tfbreak.analysis.smoothing import Mode
from tfbreak.analysis.sweep import Sweep, make_sweep
from tfbreak.runs import NotARunError, Run, find_runs, is_run_dir, load_run

Block = tuple[Any, ...]


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


def _default_out(paths: Sequence[str | Path], n_groups: int) -> Path:
    if len(paths) == 1:
        p = Path(paths[0])
        return p / "figures" if is_run_dir(p) else p / "report"
    return Path("tfbreak_report")


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}" if np.isfinite(v) else "nan"
    return str(v)


def build_report(
    runs: list[Run],
    out: Path,
    *,
    title: str = "sweep",
    window: int | None = None,
    mode: Mode = "trailing",
    accuracy_thresholds: Sequence[float] = (0.6, 0.75),
    umap: bool = True,
    write_html: bool = True,
    replicates: int = 1000,
    bootstrap_seed: int = 0,
) -> Path:
    """Write the report of one sweep into `out`; returns the path of report.md."""
    out.mkdir(parents=True, exist_ok=True)
    sweep: Sweep = make_sweep(runs)
    msgs: list[str] = list(sweep.notes)
    ctx = figures.FigureContext(sweep, window=window, mode=mode)
    for i, run in enumerate(sweep.runs):
        ctx.crossings[i] = thresholds.accuracy_crossings(run, list(accuracy_thresholds))
        point, series, why = breakeven.detect_break_even(run)
        ctx.breakeven[i], ctx.eq1[i] = point, series
        if why:
            msgs.append(f"break-even, {sweep.labels[i]}: {why}")
        if run.status in conjectures.EXCLUDED_STATUSES:
            msgs.append(
                f"{sweep.labels[i]} {run.status}: {run.stop_reason or 'no stop reason recorded'}"
            )
    if len(sweep.runs) == 1:
        msgs.append("single run: the conjectures compare runs, so every verdict is inconclusive")

    # ---------------------------------------------------------------- figures
    fig_specs = [
        ("fig4_K.png", figures.fig4_k, "Fig. 4 analogue: λ1_K and λ*_K/λ1_K per run."),
        ("fig5_hessian.png", figures.fig5_hessian, "Fig. 5 analogue: λ1_H per run."),
        ("fig2_scatter.png", figures.fig2_scatter, "Fig. 2 analogue: λ1_H and ΔL vs λ1_K."),
        ("fig3_spectra.png", figures.fig3_spectra, "Fig. 3 analogue: spectra at the maximum."),
        ("trace_K.png", figures.fig_trace_k, "Tr(K) per run."),
        ("accuracy.png", figures.fig_accuracy, "Training and validation accuracy."),
        ("breakeven_eq1.png", figures.fig_breakeven, "LHS of Eq. 1; break-even where it hits 1."),
        ("fig7_bn.png", figures.fig7_bn, "Fig. 7 analogue (BatchNorm)."),
        ("fig9_M.png", figures.fig9_m_correlation, "Fig. 9 analogue: λ1_K with two M."),
    ]
    made: list[tuple[Path, str]] = []
    for fname, fn, caption in fig_specs:
        path, msg = fn(ctx, out / fname)
        if path is not None:
            made.append((path, caption))
        if msg:
            msgs.extend(msg.splitlines())
    if umap:
        from tfbreak.analysis import umap_trajectory

        written, umsgs = umap_trajectory.plot_umap(
            sweep, {"fig1": out / "fig1_umap.png", "fig8": out / "fig8_umap.png"}
        )
        msgs.extend(umsgs)
        for key, caption in (
            ("fig1", "Fig. 1 analogue: UMAP of test predictions; background λ1_K / accuracy."),
            ("fig8", "Fig. 8 analogue: background λ*_K/λ1_K, Tr(K), λ1_H."),
        ):
            if key in written:
                made.append((written[key], caption))
    else:
        msgs.append("UMAP (Figs. 1, 8): disabled (--no-umap)")

    # ---------------------------------------------------------------- conjectures
    summaries = conjectures.summarize_sweep(
        sweep, window, mode, replicates=replicates, seed=bootstrap_seed
    )
    verdicts = conjectures.check_conjectures(summaries, sweep, window, seed=bootstrap_seed)
    rows = conjectures.table_rows(summaries, window)
    table_md = conjectures.markdown_table(rows)
    (out / "conjectures.csv").write_text(conjectures.csv_table(summaries, window), encoding="utf-8")
    (out / "conjectures_windows.csv").write_text(
        conjectures.window_csv(summaries, verdicts), encoding="utf-8"
    )

    blocks: list[Block] = [("h", 1, f"tfbreak report: {title}")]
    blocks.append(
        (
            "p",
            f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} from "
            f"{len(sweep.runs)} run(s); sweep axis: {sweep.axis or 'none'}"
            + (f"; varies {', '.join(sweep.varying)}" if sweep.varying else "")
            + (f"; smoothing: {mode} moving average, window {window}" if window else "")
            + f"; accuracy thresholds: {', '.join(f'{t:g}' for t in accuracy_thresholds)}.",
        )
    )
    run_rows = []
    for i, r in enumerate(sweep.runs):
        md = r.metadata
        run_rows.append(
            {
                "run": sweep.labels[i],
                "directory": str(r.path),
                "model / data": f"{md.get('model', '—')} / {md.get('dataset', '—')}",
                "lr": _fmt(md.get("lr")),
                "S": _fmt(md.get("batch_size")),
                "K_M": _fmt(md.get("K_M")),
                "seed": _fmt(md.get("seed")),
                "status": r.status,
                "stop reason": r.stop_reason or "—",
                "last step": _fmt(r.last_step()),
            }
        )
    blocks += [("h", 2, "Runs"), ("table", run_rows)]

    blocks.append(("h", 2, "Conjectures (Sec. 3)"))
    items = []
    for v in verdicts:
        name = "variance reduction" if v.conjecture == 1 else "pre-conditioning"
        items.append(f"**Conjecture {v.conjecture} ({name}): {v.status}**")
        items.extend(f"&nbsp;&nbsp;{c.sentence}" for c in v.checks)
    blocks.append(("ul", items))
    if verdicts and verdicts[0].notes:
        blocks.append(("ul", [f"note: {n}" for n in verdicts[0].notes]))
    blocks.append(
        (
            "p",
            "Maxima are over raw measurements; the step where each is attained is in brackets"
            + (f"; smoothed columns use a {mode} moving average of {window}" if window else "")
            + ". Per-run numbers: conjectures.csv.",
        )
    )
    blocks.append(("md", table_md))
    (out / "conjectures.md").write_text(table_md, encoding="utf-8")

    blocks.append(("h", 3, "Noise-aware verdicts: whole trajectory, before and after break-even"))
    blocks.append(
        (
            "p",
            "Each maximum is bootstrapped over measurement noise (every measurement re-drawn from "
            "N(value, stderr²) where a standard-error series exists: jackknife errors of the K "
            "statistics, the Ritz residual for λ1_H) and, for sweep values with several seeds, "
            f"over seeds ({replicates} replicates). A check holds when at least 95% of "
            "replicates show the predicted ordering of every pair of sweep values, is violated "
            "when some pair is reversed in all but 5%/P of them (P pairs), and is inconclusive "
            "otherwise. Windows are split per run at its break-even step (before: strictly "
            "earlier measurements; after: from it on). Cells: verdict (share of replicates "
            "showing the predicted ordering).",
        )
    )
    blocks.append(("table", conjectures.window_verdict_rows(verdicts)))
    for v in verdicts:
        blocks.append(("p", conjectures.explain(v, summaries)))
    blocks.append(
        (
            "ul",
            [
                f"{c.windows[k].sentence}"
                for v in verdicts
                for c in v.checks
                for k in sorted(c.windows, key=lambda k: (k[1], k[0] != "whole"))
            ],
        )
    )
    blocks.append(("h", 3, "Maxima per window, with 95% bootstrap intervals"))
    blocks.append(("table", conjectures.window_maxima_rows(summaries, window)))

    blocks.append(("h", 2, "Break-even point (Eq. 1) and accuracy thresholds"))
    be_rows = []
    for i, _r in enumerate(sweep.runs):
        p = ctx.breakeven.get(i)
        s = ctx.eq1.get(i)
        row = {
            "run": sweep.labels[i],
            "Eq. 1 LHS": s.source if s is not None else "unavailable",
            "break-even step": _fmt(p.step) if p else "—",
            "epoch": _fmt(p.epoch) if p else "—",
            "LHS there": _fmt(p.value) if p else "—",
        }
        if p is not None and p.at_start:
            row["LHS there"] += " (already ≥ 1 at first measurement)"
        has_acc = has_series(_r, TRAINING_ACCURACY)
        for t, c in ctx.crossings[i].items():
            row[f"train acc > {t:g}: epoch"] = _fmt(c.epoch) if c else ("never" if has_acc else "—")
        be_rows.append(row)
    blocks.append(("table", be_rows))
    blocks.append(
        (
            "p",
            "Eq. 1 assumes the loss is quadratic along e1_H (Assumption 1); s² is measured on the "
            "Hessian sample; N, S from metadata. Recomputed values use tfbreak.analysis."
            "breakeven.eq1_lhs from hessian/lambda_1, breakeven/s2 and lr.",
        )
    )

    blocks.append(("h", 2, "Figures"))
    for path, caption in made:
        blocks.append(("img", path, caption))
    blocks.append(("h", 2, "Messages"))
    blocks.append(("ul", msgs or ["none"]))

    md_path = out / "report.md"
    md_path.write_text(_render_md(blocks, out), encoding="utf-8")
    if write_html:
        (out / "report.html").write_text(_render_html(blocks, title), encoding="utf-8")
    return md_path


def _md_table(rows: list[dict[str, Any]]) -> str:
    return conjectures.markdown_table(rows)


def _render_md(blocks: list[Block], out: Path) -> str:
    parts = []
    for b in blocks:
        if b[0] == "h":
            parts.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            parts.append(b[1])
        elif b[0] == "ul":
            parts.append("\n".join(f"- {x}" for x in b[1]))
        elif b[0] == "table":
            parts.append(_md_table(b[1]).rstrip())
        elif b[0] == "md":
            parts.append(b[1].rstrip())
        elif b[0] == "img":
            rel = b[1].relative_to(out)
            parts.append(f"![{b[2]}]({rel})\n\n*{b[2]}*")
    return "\n\n".join(parts) + "\n"


def _inline(text: str) -> str:
    t = html.escape(text).replace("&amp;nbsp;", "&nbsp;")
    while "**" in t:
        t = t.replace("**", "<b>", 1).replace("**", "</b>", 1)
    return t


def _html_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[k]))}</td>" for k in keys) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _render_html(blocks: list[Block], title: str) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;max-width:"
        "1200px;margin:auto}table{border-collapse:collapse;font-size:12px}td,th{border:1px "
        "solid #ccc;padding:2px 6px}img{max-width:100%}</style></head><body>",
    ]
    for b in blocks:
        if b[0] == "h":
            parts.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            parts.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "ul":
            parts.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b[1]) + "</ul>")
        elif b[0] == "table":
            parts.append(_html_table(b[1]))
        elif b[0] == "md":
            parts.append(f"<pre>{html.escape(b[1])}</pre>")
        elif b[0] == "img":
            data = base64.b64encode(b[1].read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(b[2])}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def _parse_thresholds(text: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--thresholds: {err}") from err
    return vals


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (``python -m tfbreak.report``); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tfbreak.report",
        description="Figures, conjecture verdicts and break-even points for runs or sweeps.",
    )
    parser.add_argument("paths", nargs="+", help="run directories or sweep directories")
    parser.add_argument("--out", type=Path, default=None, help="output directory")
    parser.add_argument(
        "--smoothing", type=int, default=None, help="moving-average window (measurements)"
    )
    parser.add_argument("--smoothing_mode", choices=("trailing", "centred"), default="trailing")
    parser.add_argument("--thresholds", type=_parse_thresholds, default=[0.6, 0.75])
    parser.add_argument("--no-umap", dest="umap", action="store_false", help="skip Figs. 1, 8")
    parser.add_argument("--no-html", dest="html", action="store_false")
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap replicates for noise-aware verdicts"
    )
    args = parser.parse_args(argv)
    if args.bootstrap < 1:
        parser.error("--bootstrap must be >= 1")
    if args.smoothing is not None and args.smoothing < 1:
        parser.error("--smoothing must be >= 1")
    try:
        groups = group_inputs(args.paths)
    except NotARunError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out or _default_out(args.paths, len(groups))
    for name, dirs in groups:
        target = out if len(groups) == 1 else out / name
        md = build_report(
            [load_run(d) for d in dirs],
            target,
            title=name,
            window=args.smoothing,
            mode=args.smoothing_mode,
            accuracy_thresholds=args.thresholds,
            umap=args.umap,
            write_html=args.html,
            replicates=args.bootstrap,
        )
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
