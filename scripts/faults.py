"""Environment faults of resumable runs: the disk fills up at a random write, the run directory
is read-only at resume, the output directory vanishes while the run writes, a row is torn at
the newest checkpoint's step. The run is scripts/chaos.py's (the paper's MLP on the real
Fashion-MNIST, 120 SGD steps), written on its own small tmpfs.

While the fault lasts, the command must end with one line on the terminal (no traceback) and
exit 1, keep every row it had written up to its checkpoint and leave no torn row (a torn row at
the checkpoint is outside damage instead: one warning, and the run completes). After the fault
is removed, the same command must complete the run identical to an uninterrupted one: the same
rows (wall-clock fields aside), bit-identical arrays, no temporary file.

    sudo python scripts/faults.py --trials 24      # about an hour on 2 busy cores
    sudo python scripts/faults.py --trials 4 --keep

Needs root: it mounts tmpfs file systems (``mount -t tmpfs``, ``mount -o remount,ro``). Prints
one line per trial and a summary; exits 1 if any trial fails.
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import chaos  # noqa: E402 - the run, its launch and its comparison

FAULTS = ("disk-full", "read-only", "vanished", "torn-row")
SIZE_MB = 64  # every trial's tmpfs (the run needs about 10 MB)


@dataclass
class Outcome:
    """What one trial saw: `during` the fault (exit code, the tfbreak lines, where it hit) and
    `problems` (empty: the trial passed)."""

    fault: str
    code: int
    lines: list[str]
    where: str
    problems: list[str]


def mount(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(path)], check=True
    )


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=False)


def fill(mount_point: Path, leave: int) -> Path:
    """A file taking all free space of `mount_point` but `leave` bytes."""
    stat = os.statvfs(mount_point)
    size = max(stat.f_bavail * stat.f_frsize - leave, 0)
    filler = mount_point / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    return filler


def attempt(output_dir: Path, log_dir: Path) -> tuple[int, str]:
    """Run the command to its end; its exit code and output."""
    proc = chaos.launch(output_dir, "run", chaos.FLAGS, log_dir=log_dir)
    proc.wait()
    return proc.returncode, proc.log_path.read_text(errors="replace")


def when_rows(proc: subprocess.Popen, run_dir: Path, rows: int) -> None:
    """Wait until the run has written `rows` lines of metrics (or ended)."""
    path = run_dir / "metrics.jsonl"
    while proc.poll() is None:
        try:
            if path.read_bytes().count(b"\n") >= rows:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.05)


def stopped(output_dir: Path, log_dir: Path, rng: random.Random, total_rows: int) -> None:
    """A run stopped by SIGTERM at a random point of its training (resumable)."""
    proc = chaos.launch(output_dir, "run", chaos.FLAGS, log_dir=log_dir)
    when_rows(proc, output_dir / "run", rng.randint(3, int(0.8 * total_rows)))
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait()


def newest_checkpoint(run_dir: Path) -> int | None:
    found = [re.match(r"ckpt-(\d+)\.index$", p.name) for p in (run_dir / "checkpoints").glob("*")]
    return max((int(m.group(1)) for m in found if m), default=None)


def _lines(run_dir: Path) -> list[dict | None]:
    """The rows of metrics.jsonl (wall-clock fields aside), None for a line that is not JSON."""
    path = run_dir / "metrics.jsonl"
    out = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            out.append({k: v for k, v in json.loads(line).items() if k not in chaos.WALL_CLOCK})
        except json.JSONDecodeError:
            out.append(None)
    return out


def rows_until(run_dir: Path, step: int | None) -> list[dict]:
    """The rows up to `step` (a checkpoint's), stop rows aside."""
    if step is None:
        return []
    return [r for r in _lines(run_dir) if r and r["step"] <= step and r["kind"] != "stop"]


def torn_lines(run_dir: Path) -> int:
    return sum(r is None for r in _lines(run_dir))


def tear_row(run_dir: Path, step: int, rng: random.Random) -> None:
    """Cut the measurement row of `step` short, as a bad disk or a careless edit would."""
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    i = next(
        i for i, line in enumerate(lines) if f'"step": {step},' in line and "measurement" in line
    )
    lines[i] = lines[i][: rng.randint(1, len(lines[i]) - 2)] + "\n"
    path.write_text("".join(lines))


def where_it_hit(line: str) -> str:
    """The part of the run directory the one line names (checkpoints, arrays, metrics, ...)."""
    m = re.search(r"\((?:[a-z -]+): (\S+?)[);]", line)
    if not m:
        return "?"
    parts = Path(m.group(1)).parts
    return parts[parts.index("run") + 1] if "run" in parts[:-1] else Path(m.group(1)).name


def check_fault(outcome: Outcome, expect_code: int, cause: str) -> None:
    """Exit code, one line naming the cause, and the traceback in the log file it names (a
    log outside the run directory, when the fault kept it from there, is removed after)."""
    p = outcome.problems
    if outcome.code != expect_code:
        p.append(f"exit {outcome.code}, expected {expect_code}")
    failures = [
        line
        for line in outcome.lines
        if not line.startswith(("tfbreak: warning:", "tfbreak: memory:"))  # start-up lines
    ]
    if len(failures) != 1 or cause not in failures[0]:
        p.append(f"expected one line naming {cause!r}, got {failures}")
    log = re.search(r"; traceback in (\S+)$", failures[0]) if failures else None
    if log:
        path = Path(log.group(1))
        if not path.is_file() or "Traceback (most recent call" not in path.read_text():
            p.append(f"no traceback in {path}")
        elif path.parent == Path(tempfile.gettempdir()):
            path.unlink()


def trial(fault: str, workdir: Path, rng: random.Random, reference: Path) -> Outcome:
    """One fault on a fresh tmpfs: a new run, or one stopped by SIGTERM first (resumed)."""
    mnt = workdir / "mnt"
    mount(mnt)
    try:
        return _trial(fault, mnt, workdir, rng, reference)
    finally:
        unmount(mnt)


def _trial(fault, mnt, workdir, rng, reference) -> Outcome:
    total_rows = len(chaos.rows(reference))
    output_dir, log_dir = mnt / "out", workdir / "logs"
    run_dir = output_dir / "run"
    fresh = fault in ("disk-full", "vanished") and rng.random() < 0.5
    if not fresh:
        stopped(output_dir, log_dir, rng, total_rows)
    checkpoint = newest_checkpoint(run_dir)
    kept = rows_until(run_dir, checkpoint)
    filler = None
    if fault == "disk-full":  # a few pages (a row, an array, metadata) or less than a checkpoint
        filler = fill(mnt, rng.choice([rng.randint(0, 16_384), rng.randint(16_384, 3_000_000)]))
        code, out = attempt(output_dir, log_dir)
        cause = "no space left on device"
    elif fault == "read-only":
        before = sorted((p, p.stat().st_mtime_ns) for p in run_dir.rglob("*"))
        remount(mnt, "ro")
        code, out = attempt(output_dir, log_dir)
        remount(mnt, "rw")
        cause = "read-only file system"
    elif fault == "vanished":  # removed by hand (or unmounted) while the run writes it
        proc = chaos.launch(output_dir, "run", chaos.FLAGS, log_dir=log_dir)
        when_rows(proc, run_dir, len(kept) + rng.randint(2, int(0.3 * total_rows)))
        shutil.rmtree(output_dir, ignore_errors=True)
        proc.wait()
        shutil.rmtree(output_dir, ignore_errors=True)  # what was written while it was removed
        code, out = proc.returncode, proc.log_path.read_text(errors="replace")
        cause = "no such file or directory"
    else:
        tear_row(run_dir, checkpoint, rng)
        code, out = attempt(output_dir, log_dir)
        cause = "completed"
    lines = [line for line in out.splitlines() if line.startswith("tfbreak:")]
    outcome = Outcome(fault, code, lines, "", [])
    if "Traceback" in out:
        outcome.problems.append("a traceback on the terminal")
    if fault == "torn-row":
        check_fault(outcome, 0, cause)
        warnings = [line for line in lines if line.startswith("tfbreak: warning:")]
        if len(warnings) != 1 or f"row of step {checkpoint} is missing or torn" not in warnings[0]:
            outcome.problems.append(f"expected one warning about step {checkpoint}: {warnings}")
        outcome.where = f"step {checkpoint}"
    elif fault == "vanished" and code == 0:
        outcome.where = "after its last write"  # the run had nothing left to write
    else:
        check_fault(outcome, 1, cause)
        outcome.where = where_it_hit(lines[-1]) if lines else "?"
    if (
        fault == "read-only"
        and sorted((p, p.stat().st_mtime_ns) for p in run_dir.rglob("*")) != before
    ):
        outcome.problems.append("the read-only attempt changed the run directory")
    if fault != "vanished":
        if torn_lines(run_dir) and fault != "torn-row":
            outcome.problems.append(f"{torn_lines(run_dir)} torn rows")
        if rows_until(run_dir, checkpoint)[: len(kept)] != kept and fault != "torn-row":
            outcome.problems.append("rows up to the checkpoint were lost")
    if filler is not None:
        filler.unlink()
    if fault != "torn-row":  # the fault is removed: the same command again
        code, out = attempt(output_dir, log_dir)
        if code != 0:
            outcome.problems.append(f"rerun exited {code}: {out[-500:]}")
    if not outcome.problems:
        outcome.problems += chaos.differences(run_dir, reference)
        meta = json.loads((run_dir / "metadata.json").read_text())
        if meta["status"] != "completed" or any(r["kind"] == "stop" for r in chaos.rows(run_dir)):
            outcome.problems.append(f"status {meta['status']} or a stop row left")
        if chaos.temporaries(run_dir):
            outcome.problems.append(f"temporaries left: {chaos.temporaries(run_dir)}")
    return outcome


def faults(workdir: Path, trials: int, seed: int, log=print) -> list[Outcome]:
    rng = random.Random(seed)
    reference, timing = chaos.run_reference(workdir / "reference")
    log(
        f"reference: metadata written after {timing['startup']:.1f}s, training "
        f"{timing['training']:.1f}s"
    )
    outcomes = []
    for i in range(trials):
        fault = FAULTS[i % len(FAULTS)]
        trial_dir = workdir / f"t{i:02d}"
        outcome = trial(fault, trial_dir, rng, reference)
        outcomes.append(outcome)
        verdict = "identical after the fix" if not outcome.problems else "; ".join(outcome.problems)
        last = outcome.lines[-1] if outcome.lines else "(no line)"
        log(
            f"trial {i:2d} {fault:9s} exit {outcome.code} at {outcome.where}: {verdict}\n    {last}"
        )
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the logs and the reference")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("faults.py mounts tmpfs file systems: run it as root", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tfbreak-faults-"))
    start = time.monotonic()
    try:
        outcomes = faults(workdir, args.trials, args.seed)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    passed = sum(not o.problems for o in outcomes)
    for fault in FAULTS:
        mine = [o for o in outcomes if o.fault == fault]
        ok = sum(not o.problems for o in mine)
        hits = sorted({o.where for o in mine})
        print(f"{fault}: {ok}/{len(mine)} passed (hit: {', '.join(hits)})")
    print(f"faults passed: {passed}/{len(outcomes)}")
    print(f"minutes={(time.monotonic() - start) / 60:.1f}")
    print(f"faults={len(outcomes)}")
    print(f"passed={passed}")
    return 0 if passed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
