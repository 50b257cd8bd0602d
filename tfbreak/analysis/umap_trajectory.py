"""UMAP view of the optimisation trajectories (paper, Fig. 1 and Fig. 8; Sec. 4.1).

"Each model on the training trajectory, shown as a point, is represented by its test predictions
embedded into a two-dimensional space using UMAP. The background color indicates [a metric] at
the iteration with the closest embedding in Euclidean distance."

Here: every saved ``test_predictions`` array (n_test, classes) of every run of the sweep is
flattened into one vector; all vectors are embedded together (umap-learn, fixed random_state,
n_neighbors = min(15, n − 1)). The background is a grid over the embedding's bounding box; each
grid cell takes the inverse-distance-weighted mean (weights 1/d², in log space for metrics the
paper plots on a log scale) of the metric at its `NEIGHBOURS` nearest embedded points: the
paper's "closest embedding" is the nearest of them and dominates near every point, and the
weighting removes the jagged stripes of a nearest-neighbour (Voronoi) image between them.
A point's metric value is the run's measurement at the same step, or at the nearest measured step
of that run (training accuracy, for instance, is recorded at epoch ends). Fewer than 4 points:
skipped with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from tfbreak.analysis.figures import PAGE_WIDTH, literal_legend, save_figure  # noqa: E402
from tfbreak.analysis.series import (  # noqa: E402
    LOG_SCALE,
    TRAINING_ACCURACY,
    display,
    get_series,
    math_display,
)
from tfbreak.analysis.sweep import Sweep  # noqa: E402
from tfbreak.runs import names  # noqa: E402

MIN_POINTS = 4
NEIGHBOURS = 12  # background: inverse-distance-weighted over this many nearest points
FIG1_METRICS = (names.K_LAMBDA_1, TRAINING_ACCURACY)
FIG8_METRICS = (names.K_RATIO, names.K_TRACE, names.HESSIAN_LAMBDA_1)


@dataclass
class Trajectories:
    """Flattened test predictions of all runs, with the run index and step of each row."""

    x: np.ndarray  # (n_points, n_test * classes)
    run_index: np.ndarray  # (n_points,)
    steps: np.ndarray  # (n_points,)


def collect_predictions(sweep: Sweep) -> tuple[Trajectories | None, list[str]]:
    """Gather ``test_predictions`` along every trajectory (runs with another shape are skipped)."""
    msgs: list[str] = []
    xs, idx, steps = [], [], []
    shape = None
    for i, run in enumerate(sweep.runs):
        run_steps = run.array_steps("test_predictions")
        if not run_steps:
            msgs.append(f"UMAP: {sweep.labels[i]} has no test_predictions arrays")
            continue
        for s in run_steps:
            p = np.asarray(run.arrays(s)["test_predictions"], dtype=np.float64)
            if shape is None:
                shape = p.shape
            if p.shape != shape:
                msgs.append(
                    f"UMAP: {sweep.labels[i]} step {s}: test_predictions shape {p.shape} "
                    f"!= {shape}, skipped"
                )
                continue
            xs.append(p.ravel())
            idx.append(i)
            steps.append(s)
    if not xs:
        return None, msgs
    return Trajectories(np.stack(xs), np.asarray(idx), np.asarray(steps, dtype=np.int64)), msgs


def _import_umap():  # noqa: ANN202
    """Import umap-learn without its optional ParametricUMAP (which would import TensorFlow)."""
    import sys

    from tfbreak.extras import require

    require("report", "the UMAP view of the trajectory", ("umap",))

    if "umap" in sys.modules or "tensorflow" in sys.modules:
        import umap

        return umap
    sys.modules["umap.parametric_umap"] = None  # type: ignore[assignment]  # -> ImportError
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImportWarning)
            import umap
    finally:
        if sys.modules.get("umap.parametric_umap", 0) is None:
            del sys.modules["umap.parametric_umap"]
    return umap


def embed(x: np.ndarray, random_state: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-D UMAP embedding of the rows of `x` (n_neighbors clipped to n − 1; needs n >= 4)."""
    n = x.shape[0]
    if n < MIN_POINTS:
        raise ValueError(f"UMAP needs at least {MIN_POINTS} points, got {n}")
    reducer = _import_umap().UMAP(
        n_components=2,
        n_neighbors=max(2, min(n_neighbors, n - 1)),
        random_state=random_state,
        init="random" if n < 10 else "spectral",
        n_jobs=1,
    )
    return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def values_at_steps(steps: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Value at the nearest measured step (finite values only) for each query step; NaN if none."""
    ok = np.isfinite(values)
    s, v = np.asarray(steps)[ok], np.asarray(values)[ok]
    if s.size == 0:
        return np.full(len(query), np.nan)
    nearest = np.abs(s[None, :] - np.asarray(query)[:, None]).argmin(axis=1)
    return v[nearest]


def background(
    points: np.ndarray,
    values: np.ndarray,
    grid: int = 200,
    pad: float = 0.08,
    neighbours: int = NEIGHBOURS,
    log: bool = False,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Grid image over the points' bounding box: each cell the inverse-distance-weighted mean
    (1/d²) of the values at its `neighbours` nearest points with a finite value (of log values
    if `log`); a cell on a point takes its value."""
    ok = np.isfinite(values) & (values > 0 if log else True)
    pts, vals = points[ok], np.log(values[ok]) if log else values[ok]
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    lo, hi = lo - pad * span, hi + pad * span
    gx, gy = np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid)
    xx, yy = np.meshgrid(gx, gy)
    k = min(neighbours, len(vals))
    dist, nn = cKDTree(pts).query(np.column_stack([xx.ravel(), yy.ravel()]), k=k)
    dist, nn = dist.reshape(-1, k), nn.reshape(-1, k)
    weights = 1.0 / np.maximum(dist, 1e-12 * span.max()) ** 2
    img = (weights * vals[nn]).sum(axis=1) / weights.sum(axis=1)
    img = img.reshape(grid, grid)
    return (np.exp(img) if log else img), (lo[0], hi[0], lo[1], hi[1])


def plot_umap(
    sweep: Sweep,
    paths: dict[str, Path],
    random_state: int = 0,
    embedding: tuple[Trajectories, np.ndarray] | None = None,
) -> tuple[dict[str, Path], list[str]]:
    """Fig. 1 (λ1_K, training accuracy) and Fig. 8 (λ*_K/λ1_K, Tr(K), λ1_H) UMAP panels.

    `paths` maps "fig1" / "fig8" to output files. Returns the files written and messages.
    """
    if embedding is None:
        traj, msgs = collect_predictions(sweep)
        if traj is None:
            return {}, [*msgs, "UMAP (Figs. 1, 8): skipped, no test_predictions arrays"]
        if traj.x.shape[0] < MIN_POINTS:
            return {}, [
                *msgs,
                f"UMAP (Figs. 1, 8): skipped, only {traj.x.shape[0]} points (< {MIN_POINTS})",
            ]
        emb = embed(traj.x, random_state=random_state)
    else:
        traj, emb = embedding
        msgs = []
    written: dict[str, Path] = {}
    for fig_name, metrics in (("fig1", FIG1_METRICS), ("fig8", FIG8_METRICS)):
        panels = []
        for m in metrics:
            vals = np.full(len(traj.steps), np.nan)
            for i, run in enumerate(sweep.runs):
                sel = traj.run_index == i
                if sel.any():
                    steps, _, v = get_series(run, m)
                    vals[sel] = values_at_steps(steps, v, traj.steps[sel])
            if np.isfinite(vals).any():
                panels.append((m, vals))
            else:
                msgs.append(f"UMAP {fig_name}: no panel for {display(m)} (not measured)")
        if not panels:
            continue
        fig, axes = plt.subplots(
            1,
            len(panels),
            figsize=(PAGE_WIDTH, 4.4 if len(panels) < 3 else 3.6),
            squeeze=False,
            layout="constrained",
        )
        for ax, (m, vals) in zip(axes[0], panels, strict=True):
            pos = vals[np.isfinite(vals)]
            log = m in LOG_SCALE and (pos > 0).all() and pos.max() > pos.min()
            img, extent = background(emb, vals, log=bool(log))
            norm = LogNorm(vmin=pos.min(), vmax=pos.max()) if log else None
            im = ax.imshow(
                img, origin="lower", extent=extent, aspect="auto", cmap="viridis", norm=norm
            )
            bar = fig.colorbar(im, ax=ax, label=math_display(m))
            if log:  # labels at 1, 2, 5 times powers of ten, as on the figures' log axes
                bar.ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
                bar.ax.yaxis.set_minor_formatter(NullFormatter())
            for i in range(len(sweep.runs)):
                sel = np.flatnonzero(traj.run_index == i)
                if sel.size == 0:
                    continue
                sel = sel[np.argsort(traj.steps[sel])]
                color = plt.get_cmap("tab10")(i % 10)
                ax.plot(emb[sel, 0], emb[sel, 1], "-", color="white", lw=2.5, alpha=0.7)
                ax.plot(
                    emb[sel, 0],
                    emb[sel, 1],
                    "o-",
                    color=color,
                    ms=4,
                    lw=1.2,
                    label=sweep.labels[i],
                    mec="white",
                    mew=0.5,
                )
                ax.plot(emb[sel[0], 0], emb[sel[0], 1], "s", color=color, ms=8, mec="k")
            ax.set_title(f"background: {math_display(m)}")
            ax.set_xlabel("UMAP 1")
            ax.set_ylabel("UMAP 2")
            literal_legend(ax.legend(fontsize=7, loc="best"))
        title = "Fig. 1" if fig_name == "fig1" else "Fig. 8"
        fig.suptitle(f"{title}: trajectories in a UMAP of the test predictions (square: start)")
        written[fig_name] = save_figure(fig, paths[fig_name])
    return written, msgs
