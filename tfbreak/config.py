"""ExperimentConfig: every setting of one run, as a plain dataclass (built from flags by
`tfbreak.flags`, or directly by library users). Validation errors name the flag."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

MEASUREMENTS: tuple[str, ...] = ("hessian", "breakeven", "trace", "density", "K", "delta_loss")
"""hessian: lambda_1..k(H) by Lanczos; breakeven: s^2 along e1_H for Eq. 1 (needs hessian);
trace: Hutchinson Tr(H); density: SLQ spectral density of H; K: gradient covariance spectrum,
Tr(K) and ||g||/||g5||; delta_loss: Delta L. Accuracies, ||gamma|| and lr are always recorded."""

BN_MODES: tuple[str, ...] = ("inference", "batch")
HVP_MODES: tuple[str, ...] = ("reverse_over_reverse", "forward_over_reverse")
STRATEGIES: tuple[str, ...] = ("default", "mirrored", "multi_worker")
"""tf.distribute strategy (tfbreak.distribute): default = none (one device); mirrored = all local
GPUs (or logical CPUs); multi_worker = MultiWorkerMirroredStrategy from TF_CONFIG."""


class ConfigError(ValueError):
    """A setting is invalid; the message starts with the flag's name."""


@dataclass(frozen=True)
class ExperimentConfig:
    """One training run with measurements along its trajectory (paper Sec. 4, App. C-D)."""

    model: str = "mlp"
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    download: bool = False
    model_options: dict = field(default_factory=dict)
    data_options: dict = field(default_factory=dict)
    # SGD (App. D; momentum App. F; learning-rate decay App. G)
    lr: float = 0.01
    batch_size: int = 64
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_decay_epochs: tuple[int, ...] = ()
    lr_decay_factor: float = 0.1
    epochs: float = 1.0
    max_steps: int | None = None
    seed: int = 0
    # run directory
    output_dir: str = "runs"
    run_name: str = "run"
    # measurements (App. C)
    measurements: tuple[str, ...] = ("hessian", "breakeven", "K", "delta_loss")
    hessian_fraction: float = 0.05
    hessian_sample_size: int | None = None
    hessian_batch_size: int = 512
    hvp_mode: str = "reverse_over_reverse"
    top_k: int = 5
    lanczos_max_iter: int = 30
    lanczos_tol: float = 3e-3
    lanczos_converge_k: int = 1
    trace_samples: int = 10
    density_vectors: int = 2
    density_steps: int = 30
    k_L: int = 25
    k_M: int | None = None
    bn_mode: str = "inference"
    measure_dense_every: int = 10
    measure_dense_until: int = 100
    measure_every_epochs: float = 1.0
    eval_subset: int = 1000
    save_eigenvectors: bool = False
    divergence_factor: float = 10.0
    # scale-out (tfbreak.distribute); not part of a run's identity: a run may resume under another
    strategy: str = "default"

    @property
    def K_M(self) -> int:
        """Examples per gradient for K: the training batch size unless set (App. C)."""
        return self.k_M if self.k_M is not None else self.batch_size

    def validate(self) -> ExperimentConfig:
        """Raise ConfigError naming the flag of the first invalid setting; return self."""

        def need(ok: bool, flag: str, expected: str, value) -> None:
            if not ok:
                raise ConfigError(f"--{flag}: expected {expected}, got {value!r}")

        def positive(flag: str, value, integer: bool = True) -> None:
            kind = int if integer else (int, float)
            need(
                isinstance(value, kind)
                and not isinstance(value, bool)
                and value > 0
                and math.isfinite(value),
                flag,
                "a positive " + ("integer" if integer else "number"),
                value,
            )

        positive("lr", self.lr, integer=False)
        positive("batch_size", self.batch_size)
        need(0.0 <= self.momentum < 1.0, "momentum", "a number in [0, 1)", self.momentum)
        need(self.weight_decay >= 0.0, "weight_decay", "a number >= 0", self.weight_decay)
        need(
            0.0 < self.lr_decay_factor <= 1.0,
            "lr_decay_factor",
            "a number in (0, 1]",
            self.lr_decay_factor,
        )
        need(
            all(isinstance(e, int) and e > 0 for e in self.lr_decay_epochs),
            "lr_decay_epochs",
            "positive integer epochs",
            self.lr_decay_epochs,
        )
        positive("epochs", self.epochs, integer=False)
        if self.max_steps is not None:
            positive("max_steps", self.max_steps)
        need(isinstance(self.seed, int) and self.seed >= 0, "seed", "an integer >= 0", self.seed)
        need(
            bool(self.run_name) and "/" not in self.run_name,
            "run_name",
            "a non-empty name without '/'",
            self.run_name,
        )
        unknown = [m for m in self.measurements if m not in MEASUREMENTS]
        need(not unknown, "measurements", f"a subset of {','.join(MEASUREMENTS)}", unknown)
        need(
            "breakeven" not in self.measurements or "hessian" in self.measurements,
            "measurements",
            "'hessian' when 'breakeven' is measured (s^2 is along e1_H)",
            ",".join(self.measurements),
        )
        need(
            0.0 < self.hessian_fraction <= 1.0,
            "hessian_fraction",
            "a number in (0, 1]",
            self.hessian_fraction,
        )
        if self.hessian_sample_size is not None:
            positive("hessian_sample_size", self.hessian_sample_size)
        positive("hessian_batch_size", self.hessian_batch_size)
        need(self.hvp_mode in HVP_MODES, "hvp_mode", f"one of {HVP_MODES}", self.hvp_mode)
        positive("top_k", self.top_k)
        need(
            isinstance(self.lanczos_max_iter, int) and self.lanczos_max_iter >= self.top_k,
            "lanczos_max_iter",
            f"an integer >= --top_k={self.top_k}",
            self.lanczos_max_iter,
        )
        positive("lanczos_tol", self.lanczos_tol, integer=False)
        need(
            isinstance(self.lanczos_converge_k, int) and 1 <= self.lanczos_converge_k <= self.top_k,
            "lanczos_converge_k",
            f"an integer in [1, --top_k={self.top_k}]",
            self.lanczos_converge_k,
        )
        positive("trace_samples", self.trace_samples)
        positive("density_vectors", self.density_vectors)
        positive("density_steps", self.density_steps)
        need(
            isinstance(self.k_L, int) and self.k_L >= 2,
            "k_L",
            "an integer >= 2 (K has at most L - 1 non-zero eigenvalues)",
            self.k_L,
        )
        if self.k_M is not None:
            positive("k_M", self.k_M)
        need(self.bn_mode in BN_MODES, "bn_mode", f"one of {BN_MODES}", self.bn_mode)
        positive("measure_dense_every", self.measure_dense_every)
        need(
            isinstance(self.measure_dense_until, int) and self.measure_dense_until >= 0,
            "measure_dense_until",
            "an integer >= 0",
            self.measure_dense_until,
        )
        positive("measure_every_epochs", self.measure_every_epochs, integer=False)
        positive("eval_subset", self.eval_subset)
        need(
            self.divergence_factor > 1.0,
            "divergence_factor",
            "a number > 1",
            self.divergence_factor,
        )
        need(self.strategy in STRATEGIES, "strategy", f"one of {STRATEGIES}", self.strategy)
        return self

    def replace(self, **changes) -> ExperimentConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
