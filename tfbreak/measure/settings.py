"""What to measure along a trajectory and how: the one place where measurement defaults live.

`MeasurementSettings` is read by the flags (one absl flag per field, same name), the Trainer, the
Keras callback and the benchmarks; the measurement core takes its values as explicit arguments and
has no defaults of its own for them. TensorFlow-free.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tfbreak.curvature.modes import BN_MODES, HVP_MODES
from tfbreak.measure.parts import HESSIAN_MEASUREMENTS, MEASUREMENTS, PARTS
from tfbreak.validation import (
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    Check,
    ConfigError,
    at_least,
    between,
    check_fields,
    require,
    setting,
)

BATCH_SIZE_SWEEP_K_M = 128
"""K's mini-batch size M in a batch-size sweep when `k_M` is not given: one M for every S, so
that K is comparable across the sweep (App. C)."""
SAMPLE_MODES: tuple[str, ...] = ("fresh", "fixed")
"""fresh: drawn anew at every measurement (deterministic from the seed and the step, so reruns
and resumed runs draw the same); fixed: drawn once per run (smoother curves, but one draw's bias
persists along the whole trajectory)."""
KRYLOV_BASES: tuple[str, ...] = ("host", "host_float64", "device")
"""Where the Lanczos and SLQ Krylov basis is kept (`tfbreak.curvature.algorithms.lanczos`):
host memory in the precision of the Hessian-vector products (float32 for a float32 model; inner
products in float64), host memory in float64 (twice as much), or a tf.Variable on the
accelerator (on a CPU-only machine that is host memory, all of it allocated at once)."""
LANCZOS_BASIS_VECTORS = 20
"""The Lanczos basis' default cap (`MeasurementSettings.basis_vectors`): on the 45.5M-parameter
MLP of docs/memory.md lambda_1 needs 17 products (18 vectors) and peaks at 19.1 parameter
vectors without a restart; the quickstart's Lanczos takes at most 14 products, never
restarting."""
K_STORAGES: tuple[str, ...] = ("device", "host")
"""Where K's L gradients are kept: on the device (falling back to host memory, with a warning,
when the device runs out), or in host memory (float32, L x D x 4 bytes)."""
SCHEDULES: tuple[str, ...] = ("log", "linear")
"""The early phase of the measurement schedule: log = `measure_per_decade` log-spaced steps per
decade of steps, linear = every `measure_dense_every` steps; both until `measure_dense_until`,
then every `measure_every_epochs`."""


@dataclass(frozen=True)
class MeasurementSettings:
    """Measurements of paper Sec. 4 and App. C at scheduled steps (dense early, then periodic)."""

    measurements: tuple[str, ...] = setting(
        ("hessian", "breakeven", "K", "delta_loss"), f"Subset of {','.join(MEASUREMENTS)}."
    )
    hessian_fraction: float = setting(
        0.05, "Hessian sample: fraction of the training set (5%).", check=FRACTION
    )
    hessian_sample_size: int | None = setting(
        None, "Hessian sample size in examples (overrides --hessian_fraction).", check=POSITIVE_INT
    )
    hessian_target_error: float | None = setting(
        None,
        "Adaptive Hessian sample: grow the sample (from --hessian_fraction or "
        "--hessian_sample_size through doubling sizes, nested draws) until the standard error "
        "of lambda_1(H) / |lambda_1(H)| is at most this, up to --hessian_max_fraction (unset, "
        "the default: the fixed sample).",
        check=POSITIVE,
    )
    hessian_max_fraction: float = setting(
        0.25,
        "With --hessian_target_error: the largest Hessian sample, as a fraction of the training "
        "set.",
        check=FRACTION,
    )
    hessian_batch_size: int = setting(
        512, "Batch size of Hessian-vector product passes.", check=POSITIVE_INT
    )
    hvp_mode: str = setting(
        "reverse_over_reverse", "Autodiff mode of Hessian-vector products.", choices=HVP_MODES
    )
    top_k: int = setting(5, "Number of top Hessian eigenpairs (Lanczos).", check=POSITIVE_INT)
    lanczos_max_iter: int = setting(
        30, "Lanczos iteration cap (Hessian-vector products).", check=POSITIVE_INT
    )
    lanczos_tol: float = setting(
        1e-3, "Lanczos tolerance: certified error bound of lambda_1 / |lambda_1|.", check=POSITIVE
    )
    lanczos_converge_k: int = setting(
        1, "Eigenpairs Lanczos converges (1: lambda_1 only).", check=POSITIVE_INT
    )
    lanczos_block: int = setting(
        2,
        "Lanczos start block: the previous top eigenvectors (warm) or random vectors (cold); "
        ">= 2 resolves a near-double lambda_1.",
        check=POSITIVE_INT,
    )
    lanczos_basis: str = setting(
        "host",
        "Lanczos/SLQ basis storage: host (in the Hessian-vector products' precision, float32 "
        "for a float32 model), host_float64 (twice the memory), device (accelerator memory).",
        choices=KRYLOV_BASES,
    )
    lanczos_basis_vectors: int | None = setting(
        None,
        "Most vectors the Lanczos Krylov basis holds (host memory: this many parameter "
        "vectors); when it is full before lambda_1 is certified, a thick restart keeps the top "
        "Ritz vectors and Lanczos goes on, certified as before (unset: "
        f"max({LANCZOS_BASIS_VECTORS}, --top_k + --lanczos_block + 2); at least that; SLQ's "
        "basis is not capped).",
        check=POSITIVE_INT,
    )
    trace_samples: int = setting(10, "Hutchinson probe vectors for Tr(H).", check=POSITIVE_INT)
    density_vectors: int = setting(
        2, "SLQ probe vectors for the spectral density of H.", check=POSITIVE_INT
    )
    density_steps: int = setting(30, "SLQ Lanczos steps per probe vector.", check=POSITIVE_INT)
    density_every_epochs: float = setting(
        0.0,
        "With density in --measurements, the density only at step 0, the last step, steps 1, "
        "10, 100, ... up to --measure_dense_until and every this many epochs (0: at every "
        "measurement).",
        check=NON_NEGATIVE,
    )
    k_L: int = setting(
        25,
        "Number L of mini-batch gradients for K (App. C: 25).",
        check=at_least(2, " (K has at most L - 1 non-zero eigenvalues)"),
    )
    k_M: tuple[int, ...] = setting(
        (),
        f"Mini-batch size M for K (default: the training batch size; {BATCH_SIZE_SWEEP_K_M} in S "
        "sweeps); a second "
        "value also measures K at that M (Fig. 9: --k_M=1,128), written as K2/*.",
        check=Check(
            lambda v: len(v) <= 2 and len(set(v)) == len(v) and all(map(POSITIVE_INT.ok, v)),
            "one or two distinct positive integers",
        ),
    )
    k_storage: str = setting(
        "device",
        "Where K's L gradients are kept: device (host float32 when the device runs out of "
        "memory) or host (L x D x 4 bytes of host memory).",
        choices=K_STORAGES,
    )
    k_batches: str = setting(
        "fresh", "K's L mini-batches: drawn at every measurement, or once.", choices=SAMPLE_MODES
    )
    probe_batch: str = setting(
        "fresh",
        "The batch of Delta L and ||g||/||g5||: drawn at every measurement, or once.",
        choices=SAMPLE_MODES,
    )
    bn_mode: str = setting(
        "auto",
        "BatchNorm statistics of measurements: batch for BN models, moving averages else (auto).",
        choices=BN_MODES,
    )
    measure_schedule: str = setting(
        "log",
        "Early measurement steps: log-spaced, or every --measure_dense_every.",
        choices=SCHEDULES,
    )
    measure_per_decade: int = setting(
        12,
        "Log schedule: measurements per decade of steps (12: x1.21 apart; at most 1000).",
        check=between(1, 1000, " (1000 per decade measures every step up to about 430)"),
    )
    measure_dense_every: int = setting(
        10, "Linear schedule: measurement period (steps) of the early phase.", check=POSITIVE_INT
    )
    measure_dense_until: int = setting(
        1000, "Last step of the early, dense phase.", check=at_least(0)
    )
    measure_every_epochs: float = setting(
        1.0, "Measurement period after it, in epochs.", check=POSITIVE
    )
    eval_subset: int = setting(
        1000, "Fixed held-out examples for accuracy and predictions.", check=POSITIVE_INT
    )
    save_eigenvectors: bool = setting(False, "Save the top eigenvectors of H and K each time.")

    def validate(self) -> MeasurementSettings:
        """Raise ConfigError naming the flag of the first invalid setting; return self."""
        unknown = [m for m in self.measurements if m not in MEASUREMENTS]
        require(not unknown, "measurements", f"a subset of {','.join(MEASUREMENTS)}", unknown)
        for part in PARTS:
            for needed in part.requires if self.wants(part.name) else ():
                require(
                    needed in self.measurements,
                    "measurements",
                    f"'{needed}' when '{part.name}' is measured (it reads its results)",
                    ",".join(self.measurements),
                )
        check_fields(self)
        require(
            self.lanczos_max_iter >= self.top_k,
            "lanczos_max_iter",
            f"an integer >= --top_k={self.top_k}",
            self.lanczos_max_iter,
        )
        require(
            self.lanczos_block <= self.top_k,
            "lanczos_block",
            f"an integer in [1, --top_k={self.top_k}] (the warm start keeps top_k eigenvectors)",
            self.lanczos_block,
        )
        least = self.least_basis_vectors()
        require(
            self.lanczos_basis_vectors is None or self.lanczos_basis_vectors >= least,
            "lanczos_basis_vectors",
            f"an integer >= --top_k + --lanczos_block + 2 = {least} (a thick restart keeps "
            "top_k + 1 Ritz vectors and the block's pending vectors, and makes one more)",
            self.lanczos_basis_vectors,
        )
        require(
            self.lanczos_converge_k <= self.top_k,
            "lanczos_converge_k",
            f"an integer in [1, --top_k={self.top_k}]",
            self.lanczos_converge_k,
        )
        require(
            self.hessian_target_error is None or "hessian" in self.measurements,
            "hessian_target_error",
            "unset unless --measurements includes hessian (the error is that of lambda_1(H))",
            self.hessian_target_error,
        )
        require(
            self.hessian_target_error is None
            or self.hessian_sample_size is not None
            or self.hessian_max_fraction >= self.hessian_fraction,
            "hessian_max_fraction",
            f"at least --hessian_fraction={self.hessian_fraction} (the initial Hessian sample "
            "the adaptive sample grows from)",
            self.hessian_max_fraction,
        )
        require(
            self.density_every_epochs == 0 or "density" in self.measurements,
            "density_every_epochs",
            "0 unless --measurements includes density (it spaces the density measurements)",
            self.density_every_epochs,
        )
        return self

    def wants(self, measurement: str) -> bool:
        return measurement in self.measurements

    def least_basis_vectors(self, k: int | None = None) -> int:
        """The smallest Lanczos basis a thick restart can work in for k eigenpairs (default
        top_k): k + block + 2 (`lanczos.restart_keep`)."""
        k = self.top_k if k is None else k
        return k + min(self.lanczos_block, k) + 2

    def basis_vectors(self, k: int | None = None) -> int:
        """The Lanczos basis' cap for k eigenpairs (default top_k): `lanczos_basis_vectors`, or
        when unset LANCZOS_BASIS_VECTORS; never below `least_basis_vectors(k)` (the library's
        `top_eigenvalues(k)` with k > top_k)."""
        return max(self.lanczos_basis_vectors or LANCZOS_BASIS_VECTORS, self.least_basis_vectors(k))

    def hessian_size(self, num_train: int) -> int:
        """Examples in the Hessian sample: `hessian_sample_size`, else `hessian_fraction` of the
        training set (App. C: ~5%), at most the training set."""
        n = self.hessian_sample_size or max(1, int(round(self.hessian_fraction * num_train)))
        return min(n, num_train)

    def hessian_max_size(self, num_train: int) -> int:
        """The adaptive sample's largest size: `hessian_max_fraction` of the training set."""
        return min(num_train, max(1, int(round(self.hessian_max_fraction * num_train))))

    def check_sizes(self, num_train: int, batch_size: int) -> None:
        """Raise ConfigError naming the flag when the samples do not fit in `num_train` training
        examples: K's L mini-batches of M (App. C), the adaptive sample's largest size."""
        for m in self.K_Ms(batch_size) if self.wants("K") else ():
            if self.k_L * m > num_train:
                raise ConfigError(
                    f"--k_L: L * M = {self.k_L} * {m} = {self.k_L * m} exceeds the training set "
                    f"({num_train} examples); K needs L mini-batches of M examples (--k_M, by "
                    "default --batch_size)"
                )
        if self.hessian_target_error is not None:
            initial, largest = self.hessian_size(num_train), self.hessian_max_size(num_train)
            if largest < initial:
                raise ConfigError(
                    f"--hessian_max_fraction: {self.hessian_max_fraction} of the training set "
                    f"is {largest} examples, fewer than the initial Hessian sample ({initial}, "
                    "from --hessian_fraction / --hessian_sample_size); expected at least that "
                    "many"
                )

    def degenerate(self, num_train: int) -> list[str]:
        """Legal settings that make a measured quantity degenerate, one line each naming the
        flag: a Hessian sample of one example (no sampling error of lambda_1(H)), K from L = 2
        gradients (lambda_*(K) is then lambda_1(K), App. C; no jackknife error bars)."""
        out = []
        if set(self.measurements) & HESSIAN_MEASUREMENTS and self.hessian_size(num_train) < 2:
            flag, given = (
                ("hessian_sample_size", "1")
                if self.hessian_sample_size
                else ("hessian_fraction", f"{self.hessian_fraction:g} of {num_train} examples")
            )
            out.append(
                f"--{flag}: {given} is a Hessian sample of one example: lambda_1(H) is that "
                "example's, with no standard error"
            )
        if self.wants("K") and self.k_L < 3:
            out.append(
                f"--k_L: K from L = {self.k_L} gradients has one non-zero eigenvalue, so "
                "lambda_*(K) = lambda_1(K) (ratio 1), and no jackknife error bars (L >= 3)"
            )
        return out

    def k_M_of_sweep(self) -> tuple[int, ...]:
        """`k_M` of every run of a batch-size sweep: as given, else `BATCH_SIZE_SWEEP_K_M`."""
        return self.k_M or (BATCH_SIZE_SWEEP_K_M,)

    def K_Ms(self, batch_size: int) -> tuple[int, ...]:
        """Examples per gradient of each K estimate: `k_M`, else the training batch size
        (App. C)."""
        return self.k_M or (int(batch_size),)

    def replace(self, **changes) -> MeasurementSettings:
        return dataclasses.replace(self, **changes)
