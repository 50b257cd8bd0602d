"""Every absl flag of `python -m tfbreak.main`, and the ExperimentConfig built from them.

Flags name the paper's quantities (App. C, D); `configs/*.flags` set them per experiment.
"""

from __future__ import annotations

from absl import flags

from tfbreak.config import (
    BN_MODES,
    HVP_MODES,
    MEASUREMENTS,
    STRATEGIES,
    ConfigError,
    ExperimentConfig,
)

_D = ExperimentConfig()
SWEEP_AXES: tuple[str, ...] = ("lr", "batch_size", "momentum")

# What to train
flags.DEFINE_string("model", _D.model, "Model name (tfbreak.models.MODEL_NAMES).")
flags.DEFINE_string("dataset", _D.dataset, "Data set name (tfbreak.data.DATASET_NAMES).")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data directory.")
flags.DEFINE_bool("download", False, "Allow tensorflow-datasets to download missing data.")
flags.DEFINE_string("bert_handle", None, "TF-Hub handle (URL or directory) of the BERT encoder.")
flags.DEFINE_multi_string("model_option", [], "Extra model builder option key=value.")
flags.DEFINE_multi_string("data_option", [], "Extra data loader option key=value.")
# SGD (App. D, F, G)
flags.DEFINE_float("lr", _D.lr, "Learning rate eta.")
flags.DEFINE_integer("batch_size", _D.batch_size, "Training batch size S.")
flags.DEFINE_float("momentum", _D.momentum, "Heavy-ball momentum beta (App. F).")
flags.DEFINE_float("weight_decay", _D.weight_decay, "Weight decay (ResNet-32: 1e-4, App. D).")
flags.DEFINE_list("lr_decay_epochs", [], "Epochs at which eta is multiplied by lr_decay_factor.")
flags.DEFINE_float("lr_decay_factor", _D.lr_decay_factor, "Learning-rate decay factor (App. G).")
flags.DEFINE_float("epochs", _D.epochs, "Training epochs.")
flags.DEFINE_integer("max_steps", None, "Stop after this many SGD steps (overrides epochs).")
flags.DEFINE_integer("seed", _D.seed, "Seed of initialisation, data order and measurements.")
# Run directory
flags.DEFINE_string("output_dir", _D.output_dir, "Directory that holds run directories.")
flags.DEFINE_string("run_name", _D.run_name, "Run (or sweep) directory name in output_dir.")
flags.DEFINE_string(
    "sweep", None, "Sweep one axis, e.g. lr:0.1,0.01 or batch_size:10,100 (one run per value)."
)
flags.DEFINE_list("seeds", [], "Replicate every run with these seeds (overrides --seed).")
flags.DEFINE_bool("report", False, "Write the report (figures, conjecture table) at the end.")
flags.DEFINE_bool("progress", True, "Show progress on stderr.")
# Measurements (App. C)
flags.DEFINE_list("measurements", list(_D.measurements), f"Subset of {','.join(MEASUREMENTS)}.")
flags.DEFINE_float("hessian_fraction", _D.hessian_fraction, "Hessian sample fraction (5%).")
flags.DEFINE_integer("hessian_sample_size", None, "Hessian sample size (overrides fraction).")
flags.DEFINE_integer("hessian_batch_size", _D.hessian_batch_size, "Batch size of HVP passes.")
flags.DEFINE_enum("hvp_mode", _D.hvp_mode, HVP_MODES, "Autodiff mode of Hessian-vector products.")
flags.DEFINE_integer("top_k", _D.top_k, "Number of top Hessian eigenpairs (Lanczos).")
flags.DEFINE_integer("lanczos_max_iter", _D.lanczos_max_iter, "Lanczos iteration cap.")
flags.DEFINE_float("lanczos_tol", _D.lanczos_tol, "Lanczos relative Ritz residual tolerance.")
flags.DEFINE_integer(
    "lanczos_converge_k", _D.lanczos_converge_k, "Eigenpairs Lanczos converges (1: lambda_1)."
)
flags.DEFINE_integer("trace_samples", _D.trace_samples, "Hutchinson probe vectors for Tr(H).")
flags.DEFINE_integer("density_vectors", _D.density_vectors, "SLQ probe vectors.")
flags.DEFINE_integer("density_steps", _D.density_steps, "SLQ Lanczos steps per vector.")
flags.DEFINE_integer("k_L", _D.k_L, "Number L of mini-batch gradients for K (App. C: 25).")
flags.DEFINE_integer("k_M", None, "Mini-batch size M for K (default: batch_size; 128 in S sweeps).")
flags.DEFINE_enum("bn_mode", _D.bn_mode, BN_MODES, "BatchNorm statistics used in measurements.")
flags.DEFINE_integer("measure_dense_every", _D.measure_dense_every, "Early measurement period.")
flags.DEFINE_integer("measure_dense_until", _D.measure_dense_until, "End of the dense phase.")
flags.DEFINE_float("measure_every_epochs", _D.measure_every_epochs, "Later period, in epochs.")
flags.DEFINE_integer("eval_subset", _D.eval_subset, "Fixed test examples for predictions.")
flags.DEFINE_bool("save_eigenvectors", False, "Save the top Hessian eigenvectors each time.")
flags.DEFINE_float("divergence_factor", _D.divergence_factor, "Loss > factor x initial: stop.")
# Scale-out (tfbreak.distribute)
flags.DEFINE_enum(
    "strategy",
    _D.strategy,
    STRATEGIES,
    "tf.distribute strategy: default (one device), mirrored (all local GPUs), multi_worker "
    "(MultiWorkerMirroredStrategy; cluster from the TF_CONFIG environment variable).",
)

FLAGS = flags.FLAGS


def _options(items: list[str], flag: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--{flag}: expected key=value, got {item!r}")
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def config_from_flags() -> ExperimentConfig:
    """The ExperimentConfig of the parsed flags (not yet validated)."""
    try:
        decay = tuple(int(e) for e in FLAGS.lr_decay_epochs)
    except ValueError as err:
        raise ConfigError(
            f"--lr_decay_epochs: expected integers, got {FLAGS.lr_decay_epochs}"
        ) from err
    model_options = _options(FLAGS.model_option, "model_option")
    data_options = _options(FLAGS.data_option, "data_option")
    if FLAGS.bert_handle:
        model_options.setdefault("handle", FLAGS.bert_handle)
        data_options.setdefault("bert_handle", FLAGS.bert_handle)
    return ExperimentConfig(
        model=FLAGS.model,
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        download=FLAGS.download,
        model_options=model_options,
        data_options=data_options,
        lr=FLAGS.lr,
        batch_size=FLAGS.batch_size,
        momentum=FLAGS.momentum,
        weight_decay=FLAGS.weight_decay,
        lr_decay_epochs=decay,
        lr_decay_factor=FLAGS.lr_decay_factor,
        epochs=FLAGS.epochs,
        max_steps=FLAGS.max_steps,
        seed=FLAGS.seed,
        output_dir=FLAGS.output_dir,
        run_name=FLAGS.run_name,
        measurements=tuple(FLAGS.measurements),
        hessian_fraction=FLAGS.hessian_fraction,
        hessian_sample_size=FLAGS.hessian_sample_size,
        hessian_batch_size=FLAGS.hessian_batch_size,
        hvp_mode=FLAGS.hvp_mode,
        top_k=FLAGS.top_k,
        lanczos_max_iter=FLAGS.lanczos_max_iter,
        lanczos_tol=FLAGS.lanczos_tol,
        lanczos_converge_k=FLAGS.lanczos_converge_k,
        trace_samples=FLAGS.trace_samples,
        density_vectors=FLAGS.density_vectors,
        density_steps=FLAGS.density_steps,
        k_L=FLAGS.k_L,
        k_M=FLAGS.k_M,
        bn_mode=FLAGS.bn_mode,
        measure_dense_every=FLAGS.measure_dense_every,
        measure_dense_until=FLAGS.measure_dense_until,
        measure_every_epochs=FLAGS.measure_every_epochs,
        eval_subset=FLAGS.eval_subset,
        save_eigenvectors=FLAGS.save_eigenvectors,
        divergence_factor=FLAGS.divergence_factor,
        strategy=FLAGS.strategy,
    )


def parse_sweep(text: str | None) -> tuple[str, list] | None:
    """`axis:v1,v2,...` -> (axis, values); None when no sweep."""
    if not text:
        return None
    axis, sep, values = text.partition(":")
    if not sep or axis not in SWEEP_AXES or not values:
        raise ConfigError(
            f"--sweep: expected AXIS:V1,V2,... with AXIS in {','.join(SWEEP_AXES)}, got {text!r}"
        )
    cast = int if axis == "batch_size" else float
    try:
        parsed = [cast(v) for v in values.split(",")]
    except ValueError as err:
        raise ConfigError(
            f"--sweep: values of {axis} must be {cast.__name__}s, got {values!r}"
        ) from err
    if len(set(parsed)) != len(parsed):
        raise ConfigError(f"--sweep: repeated values in {values!r}")
    return axis, parsed


def parse_seeds(values: list[str]) -> list[int]:
    """`--seeds=0,1,2` -> [0, 1, 2]: replicates of every sweep value."""
    try:
        seeds = [int(v) for v in values]
    except ValueError as err:
        raise ConfigError(f"--seeds: expected integers >= 0, got {','.join(values)}") from err
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: expected distinct integers >= 0, got {','.join(values)}")
    return seeds


def sweep_configs(
    base: ExperimentConfig, sweep: tuple[str, list] | None, seeds: list[int] | None = None
) -> list[tuple[ExperimentConfig, dict | None]]:
    """One config per (sweep value, seed), laid out as output_dir/run_name/AXIS=VALUE (Sec. 4.2),
    with `,seed=S` appended when several seeds are run (output_dir/run_name/seed=S without a
    sweep). In a batch-size sweep K uses M = 128 unless --k_M is given (App. C)."""
    if sweep is None and not seeds:
        return [(base, None)]
    axis, values = sweep if sweep is not None else (None, [None])
    out = []
    for v in values:
        for seed in seeds or [base.seed]:
            name = ",".join(([f"{axis}={v}"] if axis else []) + ([f"seed={seed}"] if seeds else []))
            changes = {
                "seed": seed,
                "output_dir": f"{base.output_dir}/{base.run_name}",
                "run_name": name,
            }
            if axis:
                changes[axis] = v
            if axis == "batch_size" and base.k_M is None:
                changes["k_M"] = 128
            out.append((base.replace(**changes), {"axis": axis, "value": v} if axis else None))
    return out
