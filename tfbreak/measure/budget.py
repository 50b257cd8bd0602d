"""The memory budget of a run: the expected peak memory of each measurement, from the sizes
alone, before anything is measured (docs/memory.md). TensorFlow-free.

Units: V = D x itemsize bytes, one parameter vector (4 bytes a parameter for a float32 model);
A, the float values a model's layers output for one example (their activations). A measurement
adds, above the model, the data and the training state (`MemoryEstimate`):

  hessian    Lanczos (`curvature.algorithms.lanczos`): its basis of max_iter + block vectors,
             at most --lanczos_basis_vectors (thick restarts; `settings.basis_vectors`), (the
             products' precision on the host, or as --lanczos_basis says), the products
             of one pass over a batch of the Hessian sample (`hvp_device`), then the k Ritz
             vectors;
  breakeven  the curvatures along e1_H over the Hessian sample: e1 and its per-batch passes;
  trace      Hutchinson: 4 probes and their products (`trace.PROBES_PER_PASS`);
  density    SLQ: every probe's basis of steps + 1 vectors, all probes in one pass per step;
  K          the L gradients (L V, on the device or the host: --k_storage), the float64 column
             blocks of the Gram matrix, one mini-batch gradient pass (none of this for M = 1
             with per-layer factors: L x A values);
  overlap    the probe batch's gradient, on the host in float64 beside e1_H, a gradient pass;
  delta_loss the SGD update and the parameters before and after (4 V), a gradient pass.

Measured peaks (benchmarks/memory.py: wide MLPs of 10M-100M parameters, docs/memory.md) are
0.83-1.04 times the estimate; the activation factors are those measured on ResNet-32 and SimpleCNN
(`hvp_device`). Not counted: the data set, the model and
the training state (resident before the first measurement), and TensorFlow's own code. On a
machine without an accelerator the device's share is host memory too (`combined_bytes`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tfbreak.measure.settings import MeasurementSettings
from tfbreak.validation import ConfigError

MiB = 1 << 20
RUNTIME_BYTES = 128 * MiB
"""Per measurement: TensorFlow's tracing of its functions and its allocator's pools (measured
0.02-0.2 GB on the first measurement of a process)."""
K_GRAM_BLOCK_ELEMENTS = 1 << 24
"""K's float64 column block of the L gradients (`covariance.CHUNK_ELEMENTS` values, or L x D
when smaller); with its centred copy and their product, 3 x 8 bytes each (<= 384 MiB)."""
PROBES_PER_PASS = 4
"""Hutchinson probes per pass (`curvature.algorithms.trace.PROBES_PER_PASS`)."""
HVP_GRADIENTS = 2.0
"""Cost of one Hessian-vector product over n examples in gradients of n examples (1.9-2.3x on
SimpleCNN, benchmarks/hvp_cost.py)."""
LIMIT_ENV = "TFBREAK_MEMORY_LIMIT"
"""Environment variable that sets the available host memory (bytes; K, M, G, T suffixes are
powers of 1024), instead of what the machine reports."""


@dataclass(frozen=True)
class Sizes:
    """What the memory of the measurements depends on, besides the settings.

    parameters: D. hessian_sample: examples in the Hessian sample. batch_size: S (the probe
    batch of Delta L; K's default M). activations: A, float values the model's layers output per
    example (None: unknown, activations not counted). itemsize: bytes of a parameter.
    factored_k: K at M = 1 comes from per-layer factors (no L x D gradients). accelerator: the
    device is not the host."""

    parameters: int
    hessian_sample: int
    hessian_batch_size: int
    batch_size: int
    k_Ms: tuple[int, ...]
    activations: int | None = None
    itemsize: int = 4
    factored_k: bool = False
    accelerator: bool = False


@dataclass(frozen=True)
class MemoryEstimate:
    """The expected peak memory of one measurement and its cost.

    host_bytes: host arrays (Krylov basis, products, warm start); device_bytes: tensors
    (gradients, Hessian-vector products, activations); combined_bytes: both at once where they
    coexist (a CPU-only machine); hvp_products: Hessian-vector products at most;
    gradients: cost in per-example gradients (a product over n examples ~ 2 n); flag: the
    setting that lowers it."""

    host_bytes: int
    device_bytes: int
    combined_bytes: int
    hvp_products: int
    gradients: float
    flag: str

    def peak(self, accelerator: bool) -> int:
        """The host memory it needs: its host arrays, and its tensors too without accelerator."""
        return self.host_bytes if accelerator else self.combined_bytes


def _estimate(phases: list[tuple[float, float]], products: int, gradients: float, flag: str):
    """The peak over phases (host, device) that happen one after the other."""
    host = max(h for h, _ in phases) + RUNTIME_BYTES
    device = max(d for _, d in phases)
    combined = max(h + d for h, d in phases) + RUNTIME_BYTES
    return MemoryEstimate(int(host), int(device), int(combined), products, gradients, flag)


def _activations(sizes: Sizes, examples: int, factor: float) -> float:
    return factor * examples * (sizes.activations or 0) * sizes.itemsize


def hvp_device(sizes: Sizes, vectors: int, device_basis: bool = False) -> float:
    """Device bytes of one Hessian-vector pass over a batch for `vectors` vectors: each vector's
    product, per variable, and the pass's other tensors ((b + 1/2) V: the vectors are read in
    place from host rows and the products written into host rows piece by piece,
    `HessianOperator.matvec_rows_into`; measured on a 10M-parameter MLP: 1.0-1.3 V for one
    vector, 2.3 V for two), or with the basis on the device (`apply_block`) the vectors split
    per variable, the products, their flattening and stacking ((3 b + 1) V); and the
    activations of the forward, backward and outer backward passes ((2.5 + 0.6 b) x batch x A
    values; ResNet-32 and SimpleCNN at batch 256-512: 2.5-3.6)."""
    v = sizes.parameters * sizes.itemsize
    held = 3 * vectors + 1 if device_basis else vectors + 0.5
    return held * v + _activations(sizes, sizes.hessian_batch_size, 2.5 + 0.6 * vectors)


def _basis_itemsize(settings: MeasurementSettings, sizes: Sizes) -> int:
    return 8 if settings.lanczos_basis == "host_float64" else sizes.itemsize


def _krylov(
    settings: MeasurementSettings, sizes: Sizes, vectors: int, block: int, extra: float, copies: int
):
    """(host, device) phases of a Krylov run: `vectors` basis vectors, `block` products per pass
    (`copies` host copies of block vectors: the products, and the stacked vectors of SLQ's
    probes); then `extra` host bytes (the Ritz vectors) beside the basis."""
    d, v = sizes.parameters, sizes.parameters * sizes.itemsize
    basis = vectors * d * _basis_itemsize(settings, sizes)
    passes = hvp_device(sizes, block, settings.lanczos_basis == "device")
    if settings.lanczos_basis == "device":
        return [(copies * block * v, basis + passes), (extra, basis)]
    return [(basis + copies * block * v, passes), (basis + extra, 0.0)]


def _hessian(settings: MeasurementSettings, sizes: Sizes) -> MemoryEstimate:
    k = min(settings.top_k, sizes.parameters)
    block = min(settings.lanczos_block, k)
    products = settings.lanczos_max_iter + block - 1
    ritz = k * sizes.parameters * _basis_itemsize(settings, sizes)
    vectors = min(settings.lanczos_max_iter + block, settings.basis_vectors(k))
    phases = _krylov(settings, sizes, vectors, block, ritz, 1)
    cost = HVP_GRADIENTS * products * sizes.hessian_sample
    return _estimate(phases, products, cost, "lanczos_basis_vectors")


def _breakeven(settings: MeasurementSettings, sizes: Sizes) -> MemoryEstimate:
    v = sizes.parameters * sizes.itemsize
    k = min(settings.top_k, sizes.parameters)
    phases = [(k * v, 2 * v + _activations(sizes, sizes.hessian_batch_size, 3.0))]
    return _estimate(phases, 0, HVP_GRADIENTS * sizes.hessian_sample, "measurements")


def _trace(settings: MeasurementSettings, sizes: Sizes) -> MemoryEstimate:
    v = sizes.parameters * sizes.itemsize
    probes = min(PROBES_PER_PASS, settings.trace_samples)
    phases = [(2 * probes * v, hvp_device(sizes, probes))]
    products = settings.trace_samples
    return _estimate(
        phases, products, HVP_GRADIENTS * products * sizes.hessian_sample, "measurements"
    )


def _density(settings: MeasurementSettings, sizes: Sizes) -> MemoryEstimate:
    n, steps = settings.density_vectors, settings.density_steps
    phases = _krylov(settings, sizes, n * (steps + 1), n, 0.0, 2)
    products = n * steps
    return _estimate(
        phases, products, HVP_GRADIENTS * products * sizes.hessian_sample, "density_steps"
    )


def _k(settings: MeasurementSettings, sizes: Sizes) -> MemoryEstimate:
    v = sizes.parameters * sizes.itemsize
    L = settings.k_L
    phases, cost = [], 0.0
    for m in sizes.k_Ms:
        cost += L * m
        if m == 1 and sizes.factored_k:
            phases.append((0.0, _activations(sizes, L, 3.0) + 2 * v))
            continue
        examples = L if m == 1 else m  # M = 1: the per-example gradients of L examples at once
        stored = L * v + 3 * 8 * min(L * sizes.parameters, K_GRAM_BLOCK_ELEMENTS)
        pass_ = 2 * v + _activations(sizes, examples, 1.0)
        eigenvectors = 4 * 5 * 8 * sizes.parameters if settings.save_eigenvectors else 0.0
        if settings.k_storage == "host":
            phases.append((stored + eigenvectors, pass_))
        else:
            phases.append((eigenvectors, stored + pass_))
    probe = _activations(sizes, sizes.batch_size, 1.0)
    phases = [(h, d + v + probe) for h, d in phases]  # the probe batch's gradient (||g|| / ||g5||)
    return _estimate(phases, 0, cost + sizes.batch_size, "k_L")


def _overlap(settings: MeasurementSettings, sizes: Sizes) -> MemoryEstimate:
    v = sizes.parameters * sizes.itemsize
    phases = [(3 * v, 2 * v + _activations(sizes, sizes.batch_size, 1.0))]  # g: float32, float64
    return _estimate(phases, 0, float(sizes.batch_size), "measurements")


def _delta_loss(settings: MeasurementSettings, sizes: Sizes) -> MemoryEstimate:
    v = sizes.parameters * sizes.itemsize
    phases = [(0.0, 4 * v + _activations(sizes, sizes.batch_size, 1.0))]
    return _estimate(phases, 0, float(sizes.batch_size), "measurements")


ESTIMATORS = {
    "hessian": _hessian,
    "breakeven": _breakeven,
    "trace": _trace,
    "density": _density,
    "K": _k,
    "overlap": _overlap,
    "delta_loss": _delta_loss,
}
"""One estimate per selectable measurement part (`tfbreak.measure.parts.MEASUREMENTS`, in their
order); the parts measured whenever they apply (||gamma||, the held-out subset) hold no
parameter vector and are not counted."""


def measurement_memory(settings: MeasurementSettings, sizes: Sizes) -> dict[str, MemoryEstimate]:
    """The estimate of each measurement in `settings.measurements`, in their order."""
    return {name: ESTIMATORS[name](settings, sizes) for name in settings.measurements}


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" or abs(n) >= 100 else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def parse_bytes(text: str, name: str) -> int:
    """'16G' -> 16 x 1024^3; a plain number is bytes. ConfigError naming `name` otherwise."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?(?:e[0-9]+)?)\s*([KMGT]?)i?B?\s*", text, re.I)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(
            f"{name}: expected a positive number of bytes (e.g. 17179869184 or 16G), got {text!r}"
        )
    power = " KMGT".index(match.group(2).upper() or " ")
    return int(float(match.group(1)) * 1024**power)


@dataclass(frozen=True)
class Available:
    """Host memory a run may still take, and where the figure comes from."""

    bytes: int
    source: str


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory(
    environ: Mapping[str, str] = os.environ, root: Path = Path("/")
) -> Available | None:
    """The host memory available now: $TFBREAK_MEMORY_LIMIT when set, else the smaller of
    /proc/meminfo's MemAvailable and the control group's limit minus its usage (cgroup v2 or
    v1); None when none can be read (not Linux)."""
    if environ.get(LIMIT_ENV):
        return Available(parse_bytes(environ[LIMIT_ENV], LIMIT_ENV), LIMIT_ENV)
    found: list[Available] = []
    try:
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(Available(int(line.split()[1]) * 1024, "MemAvailable"))
    except (OSError, ValueError, IndexError):
        pass
    cgroups = [
        ("sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory.current"),
        (
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ]
    for limit_path, usage_path in cgroups:
        limit, usage = _read_int(root / limit_path), _read_int(root / usage_path)
        if limit is not None and usage is not None and limit < 1 << 60:
            found.append(Available(max(limit - usage, 0), "the control group's memory limit"))
    return min(found, key=lambda a: a.bytes, default=None)


def _least(settings: MeasurementSettings, flag: str) -> int:
    """The smallest value of `flag` (`FLAG_LIMITS`)."""
    if flag == "lanczos_basis_vectors":
        return settings.least_basis_vectors()
    return 2 if flag == "k_L" else 1


def _current(settings: MeasurementSettings, flag: str) -> int:
    if flag == "lanczos_basis_vectors":  # unset: the default cap
        return min(settings.basis_vectors(), settings.lanczos_max_iter + settings.lanczos_block)
    return getattr(settings, flag)


FLAG_LIMITS = ("lanczos_basis_vectors", "density_steps", "k_L")
"""The flags an estimate names whose largest fitting value the refusal proposes (`_least`: the
smallest each can be). The hessian's is the basis' cap, not --lanczos_max_iter: a smaller
basis restarts (thick restart) and keeps lambda_1's accuracy, fewer products lose it."""


@dataclass(frozen=True)
class Budget:
    """The estimates of a run's measurements against the memory available."""

    settings: MeasurementSettings
    sizes: Sizes
    estimates: dict[str, MemoryEstimate]
    available: Available | None

    @classmethod
    def of(cls, settings: MeasurementSettings, sizes: Sizes, available: Available | None) -> Budget:
        return cls(settings, sizes, measurement_memory(settings, sizes), available)

    @property
    def peak(self) -> int:
        """The host memory the largest measurement needs (measurements run one at a time)."""
        acc = self.sizes.accelerator
        return max((e.peak(acc) for e in self.estimates.values()), default=0)

    def line(self) -> str:
        """One line for the start of a run."""
        acc = self.sizes.accelerator
        parts = []
        for name, e in self.estimates.items():
            size = (
                f"{format_bytes(e.host_bytes)} + {format_bytes(e.device_bytes)} on the device"
                if acc
                else format_bytes(e.combined_bytes)
            )
            parts.append(f"{name} {size}")
        where = (
            f"{format_bytes(self.available.bytes)} available ({self.available.source})"
            if self.available
            else "available memory unknown"
        )
        return (
            f"tfbreak: memory: D = {self.sizes.parameters:,} parameters; expected peak of each "
            f"measurement: {', '.join(parts) or 'none'}; {where} (docs/memory.md)"
        )

    def as_metadata(self) -> dict:
        """metadata.json's memory_budget (docs/run_directory.md)."""
        return {
            "parameters": self.sizes.parameters,
            "activations_per_example": self.sizes.activations,
            "accelerator": self.sizes.accelerator,
            "available_bytes": self.available.bytes if self.available else None,
            "available_source": self.available.source if self.available else None,
            "measurements": {
                name: {
                    "host_bytes": e.host_bytes,
                    "device_bytes": e.device_bytes,
                    "combined_bytes": e.combined_bytes,
                    "hvp_products": e.hvp_products,
                    "gradients": e.gradients,
                }
                for name, e in self.estimates.items()
            },
        }

    def largest_fitting(self, name: str, flag: str) -> int | None:
        """The largest value of `flag` at which measurement `name` fits (None: none does)."""
        best, lo, hi = None, _least(self.settings, flag), _current(self.settings, flag)
        while lo <= hi:
            mid = (lo + hi) // 2
            trial = self.settings.replace(**{flag: mid})
            if (
                ESTIMATORS[name](trial, self.sizes).peak(self.sizes.accelerator)
                <= self.available.bytes
            ):
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return best

    def check(self) -> None:
        """ConfigError naming the flag to lower when a measurement needs more host memory than
        is available."""
        if self.available is None:
            return
        acc = self.sizes.accelerator
        over = [(e.peak(acc), name) for name, e in self.estimates.items()]
        over = [item for item in over if item[0] > self.available.bytes]
        if not over:
            return
        need, name = max(over)  # the largest: lowering its flag frees the most
        flag = self.estimates[name].flag
        if name in ("hessian", "density") and self.settings.lanczos_basis == "host_float64":
            flag, advice = "lanczos_basis", "--lanczos_basis=host halves its basis"
        else:
            fits = self.largest_fitting(name, flag) if flag in FLAG_LIMITS else None
            advice = f"--{flag}={fits} fits" if fits else f"leave {name} out of --measurements"
            flag = flag if fits else "measurements"
        raise ConfigError(
            f"--{flag}: {name} needs about {format_bytes(need)} of host memory at "
            f"D = {self.sizes.parameters:,} parameters, more than the "
            f"{format_bytes(self.available.bytes)} available ({self.available.source}); "
            f"{advice} (docs/memory.md)"
        )


def table_row(name: str, settings: MeasurementSettings, sizes: Sizes, num_train: int) -> str:
    """One row of docs/memory.md's table: per measurement host / device bytes (on a machine
    with an accelerator), the largest peak on a CPU-only machine, Hessian-vector products and the
    cost in epochs of per-example gradients, per measurement point."""
    estimates = measurement_memory(settings, sizes)
    cells = [
        f"{format_bytes(e.host_bytes)} / {format_bytes(e.device_bytes)}"
        if (e := estimates.get(m))
        else "-"
        for m in ESTIMATORS
    ]
    cpu = max(e.combined_bytes for e in estimates.values())
    products = sum(e.hvp_products for e in estimates.values())
    epochs = sum(e.gradients for e in estimates.values()) / num_train
    a = "?" if sizes.activations is None else f"{sizes.activations:,}"
    return (
        f"| {name} | {sizes.parameters:,} | {a} | {' | '.join(cells)} | {format_bytes(cpu)} | "
        f"{products} | {epochs:.2g} |"
    )


TABLE_HEADER = (
    "| config | D | A | "
    + " | ".join(ESTIMATORS)
    + " | CPU-only peak | HVP products | cost (epochs) |\n"
    "|---|---:|---:|" + "---:|" * len(ESTIMATORS) + "---:|---:|---:|"
)
"""The header of docs/memory.md's table (`table_row`)."""


__all__ = [
    "Available",
    "Budget",
    "MemoryEstimate",
    "Sizes",
    "available_memory",
    "format_bytes",
    "hvp_device",
    "measurement_memory",
    "parse_bytes",
    "table_row",
]
