"""tf.distribute scale-out: the SGD trajectory, HVPs, lambda_1(H), Tr(H), the SLQ density, the K
spectrum, s^2 along e1_H and Delta L under MirroredStrategy (2 and 3 logical CPUs) equal the
single-device values, uneven and empty shards included; a run (checkpoint, resume) under
MirroredStrategy and a two-worker MultiWorkerMirroredStrategy run on localhost match the
single-process metrics.

Logical devices must be configured before TensorFlow initialises them, so everything that needs
them runs in a subprocess: this file executed as a script (`python test_distribute.py MODE ...`)
prints one JSON line of measured relative differences.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfbreak.runs.names import WALL_CLOCK  # noqa: E402 (no TensorFlow import)

HERE = Path(__file__).resolve()
TINY = dict(
    model="mlp",
    model_options={"hidden_units": (64, 32)},
    dataset="fashion_mnist",
    batch_size=21,  # 21 = 10 + 11 on 2 replicas, 7 x 3 on 3
    max_steps=8,
    measure_schedule="linear",
    measure_dense_every=4,
    measure_dense_until=8,
    hessian_sample_size=45,  # one batch of 40 and one of 5
    hessian_batch_size=40,
    k_L=3,
    k_M=(7,),
    top_k=2,
    lanczos_max_iter=6,
    eval_subset=32,
    momentum=0.5,
    weight_decay=1e-4,
    lr=0.05,
)
F64_TOL = 1e-10
RUN_TOL = 1e-4  # whole float32 runs: 8 steps + measurements (measured ~1e-6, reported below)
SUBSET = {"train": 1200, "test": 200}  # real Fashion-MNIST examples, written as IDX files


def write_fashion_mnist_subset(directory: Path) -> Path:
    """The first examples of Debian's Fashion-MNIST as small gzipped IDX files (fast to load)."""
    import gzip

    from tfbreak.data.fashion_mnist import FILES, idx_directory, read_idx

    directory.mkdir(parents=True, exist_ok=True)
    for split, names in FILES.items():
        for name in names:
            data = read_idx(os.path.join(idx_directory(), name))[: SUBSET[split]]
            header = bytes([0, 0, 0x08, data.ndim]) + b"".join(
                int(d).to_bytes(4, "big") for d in data.shape
            )
            with gzip.open(directory / name, "wb") as f:
                f.write(header + data.tobytes())
    return directory


def tiny_config(data_dir: str | Path, **changes):
    from tfbreak.config import ExperimentConfig

    options = {"source": "idx", "fashion_mnist_dir": str(data_dir)}
    return ExperimentConfig.create(**TINY, data_options=options, **changes)


def _env(**extra: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore", **extra}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def run_script(*args: str, timeout: float = 240) -> dict:
    proc = subprocess.run(
        [sys.executable, str(HERE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rel(a, b) -> float:
    """max |a - b| / max |b| (norm-wise, so near-zero entries do not blow up)."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return float(np.max(np.abs(a - b)) / scale) if scale > 0 else float(np.max(np.abs(a - b)))


def compare_rows(rows_a: list[dict], rows_b: list[dict]) -> float:
    """Max relative difference of two runs' metrics (same keys and kinds required)."""
    assert len(rows_a) == len(rows_b)
    worst = 0.0
    for a, b in zip(rows_a, rows_b, strict=True):
        assert set(a) == set(b), set(a) ^ set(b)
        for k in a:
            if k in WALL_CLOCK:
                continue
            if isinstance(a[k], int | float | list) and not isinstance(a[k], bool):
                worst = max(worst, rel(a[k], b[k]))
            else:
                assert a[k] == b[k], (k, a[k], b[k])
    return worst


# ----------------------------------------------------------------------------- in-process


def test_shard_bounds_cover_uneven_and_empty():
    from tfbreak.curvature.sharding import shard_bounds

    assert shard_bounds(7, 2) == [(0, 4), (4, 7)]
    assert shard_bounds(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert shard_bounds(2, 3) == [(0, 1), (1, 2), (2, 2)]
    assert shard_bounds(0, 2) == [(0, 0), (0, 0)]
    with pytest.raises(ValueError):
        shard_bounds(3, 0)


def test_strategy_setting_is_validated_and_named():
    from absl import flags

    from tfbreak import flags as tfflags
    from tfbreak.config import ConfigError, ExperimentConfig
    from tfbreak.distribute import make_strategy

    assert ExperimentConfig().strategy == "default"
    assert make_strategy("default") is None
    with pytest.raises(ConfigError, match="--strategy"):
        ExperimentConfig(strategy="tpu").validate()
    with pytest.raises(ValueError, match="--strategy"):
        make_strategy("tpu")
    fl = flags.FLAGS
    fl.unparse_flags()
    try:
        with pytest.raises(flags.IllegalFlagValueError, match="--strategy"):
            fl(["tfbreak", "--strategy=tpu"])
        fl.unparse_flags()
        fl(["tfbreak", "--strategy=mirrored"])
        assert tfflags.config_from_flags().strategy == "mirrored"
    finally:
        fl.unparse_flags()


def test_strategy_is_not_part_of_a_runs_identity(tmp_path):
    from tfbreak.config import ExperimentConfig, identity
    from tfbreak.runs import stored_config

    a = stored_config(ExperimentConfig(strategy="mirrored"))
    b = stored_config(ExperimentConfig())
    assert identity(a) == identity(b)
    b.pop("strategy")  # a run written before the setting existed
    assert identity(a) == identity(b)


# ----------------------------------------------------------------------------- subprocesses


@pytest.mark.slow
def test_mirrored_equals_single_device():
    """Every sharded computation equals the single device's to F64_TOL in float64, on three
    replicas: the batches of 7 examples split unevenly and those of 2 leave a replica empty (two
    replicas add no case). float32 mirrored runs are compared end to end by
    test_mirrored_run_with_resume_matches_single_device."""
    out = run_script("core", "3")
    print(json.dumps(out))
    assert out["replicas"] == 3
    for name, value in out["float64"].items():
        assert value <= F64_TOL, (name, value)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from tfbreak.data import DatasetUnavailableError
    from tfbreak.data.fashion_mnist import idx_directory, load_idx_arrays

    try:
        load_idx_arrays(idx_directory())
    except DatasetUnavailableError:
        pytest.skip("Fashion-MNIST IDX files are not installed")
    return write_fashion_mnist_subset(tmp_path_factory.mktemp("fashion_mnist"))


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, data_dir):
    """The TINY run on one device, in this process (default strategy)."""
    from tfbreak.training.trainer import Trainer

    out = tmp_path_factory.mktemp("ref")
    config = tiny_config(data_dir, output_dir=str(out), run_name="ref")
    result = Trainer(config, progress=False).run()
    assert result.status == "completed", result.reason
    return result.run_dir


@pytest.mark.slow
def test_mirrored_run_with_resume_matches_single_device(reference_run, data_dir, tmp_path):
    from tfbreak.runs import load_run

    out = run_script("trainer", "2", str(tmp_path), str(data_dir))
    run_dir = Path(out["run_dir"])
    assert out["interrupted"] == "interrupted" and out["status"] == "completed"
    run = load_run(run_dir)
    assert run.status == "completed"
    assert run.metadata["strategy"] == "mirrored" and run.metadata["num_replicas"] == 2
    assert (run_dir / "checkpoints" / "checkpoint").is_file()
    worst = compare_rows(run.rows, load_run(reference_run).rows)
    print(f"mirrored(2) run vs single device: max relative difference {worst:.3g}")
    assert worst <= RUN_TOL


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
def test_two_worker_run_on_localhost_matches_single_process(reference_run, data_dir, tmp_path):
    from tfbreak.distribute import tf_config_for
    from tfbreak.runs import load_run

    ports = _free_ports(2)
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE), "worker", str(tmp_path), str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(TF_CONFIG=tf_config_for(ports, i)),
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 240
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic())))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr[-4000:]
    results = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    assert [r["chief"] for r in results] == [True, False]
    assert all(r["status"] == "completed" for r in results)
    run = load_run(tmp_path / "mw")
    assert run.status == "completed"
    assert run.metadata["strategy"] == "multi_worker" and run.metadata["num_replicas"] == 2
    worst = compare_rows(run.rows, load_run(reference_run).rows)
    print(f"multi-worker (2 x 1) run vs single process: max relative difference {worst:.3g}")
    assert worst <= RUN_TOL


# ----------------------------------------------------------------------------- script side


def _logical_cpus(n: int) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def _core(devices: int) -> dict:
    _logical_cpus(devices)
    import keras
    import numpy as np
    import tensorflow as tf

    from tfbreak.curvature import (
        CovarianceOperator,
        CurvatureAlong,
        DeltaLoss,
        GradientFunctions,
        HessianOperator,
        ParameterSpace,
        classification_loss,
        covariance_spectrum,
        hutchinson_trace,
        lanczos,
        slq_density,
    )
    from tfbreak.curvature.keras_loss import output_convention
    from tfbreak.models import trainable_tf_variables, weight_decay_variables
    from tfbreak.models.mlp import build_mlp
    from tfbreak.training.sgd import SGD, TrainStep

    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(cpus)
    out: dict = {"replicas": strategy.num_replicas_in_sync}
    dtype = "float64"  # float32 runs are compared end to end by the resume test
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 6)).astype(dtype)
    y = rng.integers(0, 3, 30).astype(np.int32)

    def batch(a, b):
        return tf.constant(x[a:b]), tf.constant(y[a:b])

    def build(strategy_=None):
        keras.utils.set_random_seed(0)
        with strategy_.scope() if strategy_ else _null():
            model = build_mlp(
                num_classes=3,
                input_shape=(6,),
                hidden_units=(8, 5),
                activation="softplus",
                dtype=dtype,
            )
            variables = trainable_tf_variables(model)
            sgd = SGD(variables, weight_decay_variables(model), 0.9, 1e-3, strategy=strategy_)
            loss_fn = classification_loss(model, bn_mode="inference")
            convention = output_convention(model)
            step = TrainStep(model, sgd, batch(0, 7), loss_fn, convention, strategy=strategy_)
        return model, variables, sgd, loss_fn, step

    single = build()
    mirrored = build(strategy)
    space1, space2 = ParameterSpace(single[1]), ParameterSpace(mirrored[1])
    space2.assign(space1.values())
    diffs: dict[str, float] = {}
    # SGD trajectory: 7 examples (uneven on 2 and 3 replicas), 2 (an empty shard on 3).
    train = [batch(0, 7), batch(7, 14), batch(14, 16), batch(16, 23), batch(23, 25)]
    losses1, losses2 = [], []
    for b in train:
        losses1.append(float(single[4].step(b, tf.constant(0.1))[0]))
        losses2.append(float(mirrored[4].step(b, tf.constant(0.1))[0]))
    diffs["sgd_losses"] = rel(losses2, losses1)
    diffs["sgd_parameters"] = rel(space2.values().numpy(), space1.values().numpy())
    diffs["sgd_momentum"] = rel(
        ParameterSpace(mirrored[2].buffers).values().numpy(),
        ParameterSpace(single[2].buffers).values().numpy(),
    )
    # Measurements at identical parameters.
    space2.assign(space1.values())
    for i, b in enumerate(mirrored[2].buffers):
        b.assign(single[2].buffers[i])
    hess = [batch(0, 7), batch(7, 9), batch(9, 16)]  # 7, 2 (an empty shard on 3), 7
    rr = "reverse_over_reverse"
    op1 = HessianOperator(single[1], single[3], hess, mode=rr)
    op2 = HessianOperator(mirrored[1], mirrored[3], hess, mode=rr, strategy=strategy)
    op2f = HessianOperator(
        mirrored[1], mirrored[3], hess, mode="forward_over_reverse", strategy=strategy
    )
    v = rng.standard_normal(op1.dim)
    diffs["hvp"] = rel(op2.matvec(v), op1.matvec(v))
    diffs["hvp_forward_over_reverse"] = rel(op2f.matvec(v), op1.matvec(v))
    vectors = rng.standard_normal((3, op1.dim))  # several vectors in one pass
    diffs["hvp_block"] = rel(op2.matvec_block(vectors), op1.matvec_block(vectors))
    diffs["hvp_block_forward_over_reverse"] = rel(
        op2f.matvec_block(vectors), op1.matvec_block(vectors)
    )
    lz1 = lanczos(op1, k=2, tol=1e-6, max_iter=40, converge_k=2, block=2, seed=1, basis="host")
    lz2 = lanczos(op2, k=2, tol=1e-6, max_iter=40, converge_k=2, block=2, seed=1, basis="host")
    diffs["hessian_lambda_1"] = rel(lz2.eigenvalues[0], lz1.eigenvalues[0])
    diffs["hessian_top_2"] = rel(lz2.eigenvalues, lz1.eigenvalues)
    tr1 = hutchinson_trace(op1, num_samples=3, seed=2)
    tr2 = hutchinson_trace(op2, num_samples=3, seed=2)
    diffs["hessian_trace"] = rel(tr2.samples, tr1.samples)
    d1 = slq_density(op1, num_vectors=2, steps=6, seed=3, basis="host")
    d2 = slq_density(op2, num_vectors=2, steps=6, seed=3, basis="host")
    diffs["slq_nodes"] = rel(np.concatenate(d2.nodes), np.concatenate(d1.nodes))
    e1 = lz1.eigenvectors[0]
    c1 = CurvatureAlong(single[1], single[3])(hess, e1)
    c2 = CurvatureAlong(mirrored[1], mirrored[3], strategy=strategy)(hess, e1)
    diffs["per_example_curvature"] = rel(c2.values, c1.values)
    diffs["breakeven_s2"] = rel(c2.s2, c1.s2)
    g1 = GradientFunctions(single[1], single[3])
    g2 = GradientFunctions(mirrored[1], mirrored[3], strategy=strategy)
    k_batches = [batch(7 * i, 7 * i + 7) for i in range(4)]  # L = 4, M = 7
    k1 = covariance_spectrum(CovarianceOperator.minibatches(g1, k_batches, on_host=False))
    k2 = covariance_spectrum(CovarianceOperator.minibatches(g2, k_batches, on_host=False))
    diffs["K_spectrum"] = rel(k2.eigenvalues, k1.eigenvalues)
    diffs["K_lambda_1"] = rel(k2.lambda_1, k1.lambda_1)
    diffs["K_lambda_star"] = rel(k2.lambda_star, k1.lambda_star)
    p1 = covariance_spectrum(CovarianceOperator.per_example(g1, batch(0, 7), on_host=False))
    p2 = covariance_spectrum(CovarianceOperator.per_example(g2, batch(0, 7), on_host=False))
    diffs["K_per_example_spectrum"] = rel(p2.eigenvalues, p1.eigenvalues)
    two = batch(7, 9)  # an empty shard on 3 replicas
    diffs["per_example_gradients_2"] = rel(g2.per_example(two), g1.per_example(two))
    diffs["minibatch_gradient_2"] = rel(g2.minibatch(two), g1.minibatch(two))
    probe = batch(20, 27)
    u1 = single[4].update(probe, tf.constant(0.1))
    u2 = mirrored[4].update(probe, tf.constant(0.1))
    diffs["update"] = rel(u2.numpy(), u1.numpy())
    dl_single = DeltaLoss(single[1], single[3])
    dl_mirrored = DeltaLoss(mirrored[1], mirrored[3], strategy=strategy)
    diffs["delta_loss"] = rel(dl_mirrored(probe, u1), dl_single(probe, u1))
    two = batch(20, 22)
    diffs["delta_loss_2"] = rel(dl_mirrored(two, u1), dl_single(two, u1))
    out[dtype] = diffs
    return out


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _trainer(devices: int, output_dir: str, data_dir: str) -> dict:
    _logical_cpus(devices)
    from tfbreak.training.trainer import Trainer

    config = tiny_config(data_dir, output_dir=output_dir, run_name="mirrored", strategy="mirrored")
    trainer = Trainer(config, progress=False)
    measure = trainer._measure

    def interrupt_at_step_8(writer, progress):
        if int(trainer.state.step.numpy()) == 8:
            raise KeyboardInterrupt
        measure(writer, progress)

    trainer._measure = interrupt_at_step_8
    try:
        trainer.run()
    except KeyboardInterrupt:
        pass
    from tfbreak.runs import load_run

    interrupted = load_run(Path(output_dir) / "mirrored").status
    result = Trainer(config, progress=False).run()  # resumes from the step-4 checkpoint
    return {"interrupted": interrupted, "status": result.status, "run_dir": str(result.run_dir)}


def _worker(output_dir: str, data_dir: str) -> dict:
    from tfbreak.training.trainer import Trainer

    config = tiny_config(data_dir, output_dir=output_dir, run_name="mw", strategy="multi_worker")
    trainer = Trainer(config, progress=False)
    result = trainer.run()
    return {"chief": trainer.is_chief, "status": result.status, "reason": result.reason}


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "core":
        answer = _core(int(rest[0]))
    elif mode == "trainer":
        answer = _trainer(int(rest[0]), rest[1], rest[2])
    elif mode == "worker":
        answer = _worker(rest[0], rest[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(answer))
