"""Chaos test of resumable runs: SIGKILL `python -m tfbreak.main` at random moments, resume it,
and compare every metric row and every array with an uninterrupted run.

Each trial starts a fresh run directory and kills the run 1 to --max-kills times before
letting it finish. A kill is aimed at one of three windows:

- start-up: a random moment of the attempt's start-up (data loading, model building), which
  is measured on the reference run; for a new run the directory then holds only its lock;
- write: the moment a temporary file of an atomic write or of a checkpoint appears, the k-th
  time one does (k random in 1..40; the directory is polled every ~0.2 ms; tfbreak's and
  TensorFlow's temporaries both count);
- random: a uniform moment of the training phase.

Where each kill landed is judged from the directory right after it: in start-up when the
attempt had taken the directory's lock but changed neither metadata.json nor metrics.jsonl, in
a write window when temporaries are left. After the final, uninterrupted attempt the run must
be completed, hold no stop row, no temporary file, and equal the reference: the same rows
(wall-clock fields aside) and bit-identical arrays.

    python scripts/chaos.py --trials 30            # the acceptance run (about 30 minutes)
    python scripts/chaos.py --trials 1 --keep      # one trial, keep the directories

Prints one line per trial and a summary; exits 1 if any trial differs or leaves temporaries.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WINDOWS = ("start-up", "write", "random")
FLAGS = [
    "--model=mlp",
    "--dataset=fashion_mnist",
    "--batch_size=1000",  # 60 steps per epoch: the run crosses an epoch boundary
    "--epochs=2",
    "--measure_dense_every=3",
    "--measure_dense_until=120",
    "--hessian_sample_size=64",
    "--hessian_batch_size=64",
    "--k_L=4",
    "--k_M=8",
    "--top_k=2",
    "--lanczos_max_iter=6",
    "--eval_subset=64",
    "--progress=false",
]
"""The run every trial repeats: the paper's MLP on the real Fashion-MNIST, 120 SGD steps, a
measurement (a row and an arrays file) and a checkpoint every 3 steps, two epoch rows."""
WALL_CLOCK = ("time/measurement_seconds",)
# Independent of tfbreak's own patterns on purpose: anything that looks temporary counts.
TEMPORARY = re.compile(r"(\.tmp$|\.tmp[0-9a-f]+$|\.tempstate\d*$|_temp$|^\.tfbreak-probe-)")


def launch(
    output_dir: Path, run_name: str, flags: list[str], log_dir: Path | None = None
) -> subprocess.Popen:
    """Start the run; its output goes to LOG_DIR/RUN_NAME.N.log (N: the attempt; LOG_DIR:
    `output_dir` by default), named by the returned process's `log_path`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [sys.executable, "-m", "tfbreak.main", *flags]
    args += [f"--output_dir={output_dir}", f"--run_name={run_name}"]
    log_dir = log_dir or output_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{run_name}.{len(list(log_dir.glob(f'{run_name}.*.log')))}.log"
    with open(path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    proc.log_path = path
    return proc


def log_tail(proc: subprocess.Popen, chars: int = 800) -> str:
    """The end of the output of a `launch`ed run."""
    return proc.log_path.read_text(errors="replace")[-chars:]


def temporaries(run_dir: Path) -> list[str]:
    """Paths (relative) of everything temporary-looking in the run directory tree."""
    if not run_dir.is_dir():
        return []
    return sorted(
        str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if TEMPORARY.search(p.name)
    )


def _scan_for_temporaries(run_dir: Path) -> bool:
    for sub in ("", "arrays", "checkpoints"):
        try:
            with os.scandir(run_dir / sub) as entries:
                if any(TEMPORARY.search(e.name) for e in entries):
                    return True
        except FileNotFoundError:
            continue
    return False


def _lock_held(run_dir: Path) -> bool:
    """True while a process holds the run directory's flock (probed with a shared lock)."""
    try:
        fd = os.open(run_dir / ".lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock


def _kill(proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def kill_in_window(
    proc: subprocess.Popen, run_dir: Path, window: str, rng: random.Random, timing: dict
) -> bool:
    """SIGKILL `proc` in `window`; False if it ended first."""
    start = time.monotonic()
    if window == "start-up":  # once the attempt holds the lock: loading data, building
        while not _lock_held(run_dir) and proc.poll() is None:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.9) * (timing["startup"] - timing["locked"]))
        return _kill(proc)
    if window == "random":  # (a run slowed by a busy machine may still be starting)
        time.sleep(timing["startup"] + rng.uniform(0.0, 0.9) * timing["training"])
        return _kill(proc)
    # The k-th write window seen (k random), so that kills land in every kind of write.
    remaining, inside = rng.randint(1, 40), False
    deadline = start + timing["startup"] + timing["training"] + 30
    while time.monotonic() < deadline and proc.poll() is None:
        seen = _scan_for_temporaries(run_dir)
        if seen and not inside:
            remaining -= 1
            if remaining == 0:
                return _kill(proc)
        inside = seen
        time.sleep(0.0002)
    return _kill(proc)  # it ended first


def written(run_dir: Path) -> list[tuple[int, int] | None]:
    """(mtime, size) of metadata.json and metrics.jsonl: what an attempt changes first."""
    out = []
    for name in ("metadata.json", "metrics.jsonl"):
        p = run_dir / name
        out.append((p.stat().st_mtime_ns, p.stat().st_size) if p.exists() else None)
    return out


def rows(run_dir: Path) -> list[dict]:
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        out.append({k: v for k, v in row.items() if k not in WALL_CLOCK})
    return out


def differences(run_dir: Path, reference: Path) -> list[str]:
    """What differs between two run directories' rows and arrays (empty: identical)."""
    found = []
    mine, theirs = rows(run_dir), rows(reference)
    if mine != theirs:
        pairs = enumerate(zip(mine, theirs, strict=False))
        first = next((i for i, (a, b) in pairs if a != b), None)
        found.append(f"rows differ ({len(mine)} vs {len(theirs)} rows, first at {first})")
    names = sorted(p.name for p in (reference / "arrays").iterdir())
    if sorted(p.name for p in (run_dir / "arrays").iterdir()) != names:
        found.append("different arrays files")
        return found
    for name in names:
        with np.load(run_dir / "arrays" / name) as a, np.load(reference / "arrays" / name) as b:
            if sorted(a.files) != sorted(b.files):
                found.append(f"{name}: keys differ")
                continue
            for key in a.files:
                x, y = a[key], b[key]
                if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                    found.append(f"{name}[{key}] differs")
    return found


@dataclass
class Kill:
    window: str  # aimed at
    landed_in_startup: bool  # the attempt had created or locked the directory, written nothing
    temporaries: list[str] = field(default_factory=list)  # left behind by this kill


def run_reference(workdir: Path) -> tuple[Path, dict]:
    """The uninterrupted run, and when (seconds after launch) its lock was taken ("locked")
    and its metadata written ("startup"), and how long training took after that."""
    start = time.monotonic()
    proc = launch(workdir, "reference", FLAGS)
    run_dir = workdir / "reference"
    timing = {}
    while "startup" not in timing and proc.poll() is None:
        if "locked" not in timing and (run_dir / ".lock").exists():
            timing["locked"] = time.monotonic() - start
        if (run_dir / "metadata.json").exists():
            timing["startup"] = time.monotonic() - start
        time.sleep(0.005)
    if proc.wait() != 0 or "startup" not in timing:
        raise SystemExit(f"reference run failed:\n{log_tail(proc)}")
    timing["training"] = time.monotonic() - start - timing["startup"]
    return run_dir, timing


def trial(
    workdir: Path, name: str, windows: list[str], rng: random.Random, timing: dict, reference
) -> tuple[list[Kill], list[str], list[str]]:
    """Kill a fresh run once per entry of `windows`, then finish it. Returns the kills that
    happened, the differences from the reference and the temporaries left at the end."""
    run_dir = workdir / name
    kills = []
    for window in windows:
        before = written(run_dir)
        proc = launch(workdir, name, FLAGS)
        if kill_in_window(proc, run_dir, window, rng, timing):
            startup = (run_dir / ".lock").exists() and written(run_dir) == before
            kills.append(Kill(window, startup, temporaries(run_dir)))
    proc = launch(workdir, name, FLAGS)
    if proc.wait() != 0:
        return kills, [f"final attempt exited {proc.returncode}: {log_tail(proc)}"], []
    problems = differences(run_dir, reference)
    meta = json.loads((run_dir / "metadata.json").read_text())
    if meta["status"] != "completed":
        problems.append(f"status {meta['status']}")
    if any(r["kind"] == "stop" for r in rows(run_dir)):
        problems.append("stop row left")
    return kills, problems, temporaries(run_dir)


def plan(trials: int, max_kills: int, rng: random.Random) -> list[list[str]]:
    """The windows of each trial: the first kill of trial i cycles through WINDOWS (so a third
    of the trials begin with a start-up kill), the others are random."""
    out = []
    for i in range(trials):
        n = rng.randint(1, max_kills)
        out.append([WINDOWS[i % len(WINDOWS)]] + [rng.choice(WINDOWS) for _ in range(n - 1)])
    return out


def summary(kills: list[Kill], identical: int, trials: int, stale: int) -> dict:
    return {
        "trials": trials,
        "identical": identical,
        "stale_temporaries": stale,
        "kills": len(kills),
        "kills_startup_aimed": sum(k.window == "start-up" for k in kills),
        "kills_startup_landed": sum(k.landed_in_startup for k in kills),
        "kills_write_aimed": sum(k.window == "write" for k in kills),
        "kills_leaving_temporaries": sum(bool(k.temporaries) for k in kills),
        "kills_random": sum(k.window == "random" for k in kills),
    }


def chaos(workdir: Path, trials: int, max_kills: int, seed: int, log=print) -> dict:
    """Run the reference and `trials` trials in `workdir`; returns the summary counts."""
    rng = random.Random(seed)
    reference, timing = run_reference(workdir)
    log(
        f"reference: lock taken after {timing['locked']:.1f}s, metadata written after "
        f"{timing['startup']:.1f}s, training {timing['training']:.1f}s"
    )
    all_kills, identical, stale = [], 0, 0
    for i, windows in enumerate(plan(trials, max_kills, rng)):
        kills, problems, left = trial(workdir, f"t{i:02d}", windows, rng, timing, reference)
        all_kills += kills
        identical += not problems
        stale += len(left)
        landed = ", ".join(
            f"{k.window}{' (in start-up)' if k.landed_in_startup else ''}"
            + (f" left {', '.join(k.temporaries)}" if k.temporaries else "")
            for k in kills
        )
        verdict = "identical" if not problems else "; ".join(problems)
        log(f"trial {i:2d}: kills [{landed}] -> {verdict}" + (f"; stale {left}" if left else ""))
    return summary(all_kills, identical, trials, stale)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--max-kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tfbreak-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        result = chaos(workdir, args.trials, args.max_kills, args.seed)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"resumed runs bit-identical: {result['identical']}/{result['trials']}")
    print(f"stale temporary files: {result['stale_temporaries']}")
    print(
        f"kills: {result['kills']} (aimed at start-up {result['kills_startup_aimed']}, landed "
        f"in start-up {result['kills_startup_landed']}; aimed at a write window "
        f"{result['kills_write_aimed']}, leaving temporaries {result['kills_leaving_temporaries']}"
        f"; random {result['kills_random']})"
    )
    print(f"minutes={(time.monotonic() - start) / 60:.1f}")
    for key, value in result.items():
        print(f"{key}={value}")
    ok = result["identical"] == result["trials"] and result["stale_temporaries"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
