"""Training engine: SGD arithmetic, schedules, determinism, exact resume after SIGKILL,
divergence, and the CLI's answers to bad input."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbreak.config import ConfigError, ExperimentConfig
from tfbreak.curvature import classification_loss
from tfbreak.curvature.keras_loss import output_convention
from tfbreak.runs import load_run, names
from tfbreak.training.schedules import MeasurementSchedule, learning_rate
from tfbreak.training.sgd import SGD, TrainStep
from tfbreak.training.trainer import Trainer

# ----------------------------------------------------------------------------- arithmetic


def test_learning_rate_decay_and_measurement_schedule():
    assert learning_rate(0.1, 99, (100,), 0.1) == 0.1
    assert learning_rate(0.1, 100, (100,), 0.1) == pytest.approx(0.01)
    assert learning_rate(1.0, 160, (100, 150), 0.5) == 0.25
    s = MeasurementSchedule("linear", 10, 12, dense_until=50, every_steps=100, last_step=250)
    assert s.steps() == [0, 10, 20, 30, 40, 50, 100, 200, 250]
    log = MeasurementSchedule("log", 10, 4, dense_until=100, every_steps=400, last_step=1000)
    # 10 ** (j / 4): 1, 1.8, 3.2, 5.6, 10, 17.8, 31.6, 56.2, 100
    assert log.steps() == [0, 1, 2, 3, 6, 10, 18, 32, 56, 100, 400, 800, 1000]
    assert all(map(log.density_due, log.steps()))  # density_every 0: at every measurement
    sparse = MeasurementSchedule(
        "log", 10, 4, dense_until=100, every_steps=400, last_step=1000, density_every=2
    )
    assert [s for s in sparse.steps() if sparse.density_due(s)] == [0, 1, 10, 100, 800, 1000]


def test_sgd_momentum_and_weight_decay_match_hand_computation():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    kernel, bias = model.trainable_variables
    sgd = SGD([kernel, bias], decay=[kernel], momentum=0.9, weight_decay=0.01)
    loss = classification_loss(model, bn_mode="inference")
    x = tf.constant(np.random.default_rng(0).standard_normal((4, 3)), tf.float32)
    y = tf.constant([0, 1, 1, 0])
    step = TrainStep(model, sgd, (x, y), loss, output_convention(model))
    w, b = kernel.numpy().astype(np.float64), bias.numpy().astype(np.float64)
    bw, bb = np.zeros_like(w), np.zeros_like(b)
    for _ in range(2):
        with tf.GradientTape() as tape:
            mean = tf.reduce_mean(loss((x, y)))
        gw, gb = (g.numpy() for g in tape.gradient(mean, [kernel, bias]))
        bw, bb = 0.9 * bw + gw + 0.01 * w, 0.9 * bb + gb  # no decay on the bias
        expected_update = -0.1 * np.concatenate([bw.ravel(), bb])
        np.testing.assert_allclose(step.update((x, y), 0.1).numpy(), expected_update, rtol=1e-5)
        w, b = w - 0.1 * bw, b - 0.1 * bb
        step.step((x, y), tf.constant(0.1))
        np.testing.assert_allclose(kernel.numpy(), w, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(bias.numpy(), b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "changes,flag",
    [
        ({"lr": 0.0}, "--lr"),
        ({"lr": -1.0}, "--lr"),
        ({"batch_size": 0}, "--batch_size"),
        ({"momentum": 1.0}, "--momentum"),
        ({"k_L": 1}, "--k_L"),
        ({"measurements": ("hessian", "nope")}, "--measurements"),
        ({"measurements": ("breakeven",)}, "--measurements"),
        ({"top_k": 5, "lanczos_max_iter": 3}, "--lanczos_max_iter"),
        ({"bn_mode": "train"}, "--bn_mode"),
        ({"run_name": "a/b"}, "--run_name"),
        ({"epochs": float("nan")}, "--epochs"),
    ],
)
def test_config_validation_names_the_flag(changes, flag):
    with pytest.raises(ConfigError, match=f"^{flag}:"):
        ExperimentConfig.create(**changes).validate()


# ----------------------------------------------------------------------------- whole runs


def test_same_seed_same_metrics_and_divergence_is_recorded(tmp_path, tiny, reproducible_rows):
    a = Trainer(
        ExperimentConfig.create(**tiny, output_dir=str(tmp_path), run_name="a"), progress=False
    )
    b = Trainer(
        ExperimentConfig.create(**tiny, output_dir=str(tmp_path), run_name="b"), progress=False
    )
    assert a.run().status == b.run().status == "completed"
    rows = reproducible_rows(tmp_path / "a")
    assert rows == reproducible_rows(tmp_path / "b")
    assert [r["step"] for r in rows if r["kind"] == "measurement"] == [0, 4, 8, 12]
    meta = load_run(tmp_path / "a").metadata
    assert meta["data_source"].startswith(("debian:", "tfds:"))
    budget = meta["memory_budget"]  # the expected peaks checked at start (docs/memory.md)
    assert budget["parameters"] == meta["num_parameters"] == 266610
    assert set(budget["measurements"]) == {"hessian", "breakeven", "K", "delta_loss"}  # keys sorted
    assert meta["num_train"] == 60000 and meta["bn_mode"] == "inference"

    config = ExperimentConfig.create(
        **{**tiny, "lr": 200.0}, output_dir=str(tmp_path), run_name="d"
    )
    result = Trainer(config, progress=False).run()
    assert result.status == "diverged" and result.exit_code == 3
    run = load_run(tmp_path / "d")
    assert run.status == "diverged" and "diverged at step" in run.stop_reason
    assert run.rows[-1]["kind"] == "stop"
    assert (tmp_path / "d" / "checkpoints" / "checkpoint").is_file()  # kept intact


# ----------------------------------------------------------------------------- bad input
# (the answers before a run: tests/test_cli.py)


@pytest.mark.slow
def test_bad_input_leaves_an_existing_run_untouched_and_a_bn_mode_without_bn_warns(
    tmp_path, tiny_flags, run_cli, monkeypatch
):
    done = run_cli(*tiny_flags, "--max_steps=2", f"--output_dir={tmp_path}", "--run_name=r")
    assert done.returncode == 0, done.stderr
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*")}
    for args, flag in [
        (["--model=nope"], "--model"),
        ([*tiny_flags, "--batch_size=100000"], "--batch_size"),
        ([*tiny_flags, "--model_option=depth=3"], "--model_option"),
        ([*tiny_flags, "--lr=0.5"], "--run_name"),
    ]:
        proc = run_cli(*args, f"--output_dir={tmp_path}", "--run_name=r")
        assert proc.returncode == 2 and proc.stderr.startswith(f"tfbreak: error: {flag}: ")
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*")} == before
    # A BN mode on a model without BatchNorm is a warning, not an error.
    warn = run_cli(
        *tiny_flags, "--max_steps=1", "--bn_mode=batch", f"--output_dir={tmp_path}", "--run_name=w"
    )
    assert warn.returncode == 0
    assert "tfbreak: warning: --bn_mode: batch has no effect: model mlp has no BatchNorm" in (
        warn.stderr
    )
    assert "tfbreak: memory: D = 266,610 parameters; expected peak" in warn.stderr
    assert json.loads((tmp_path / "w" / "metadata.json").read_text())["bn_mode"] == "batch"
    # A run whose measurements cannot fit in memory is refused, in one line, before any record.
    monkeypatch.setenv("TFBREAK_MEMORY_LIMIT", "1M")
    small = run_cli(*tiny_flags, f"--output_dir={tmp_path}", "--run_name=small")
    assert small.returncode == 2 and small.stderr.startswith("tfbreak: error: --")
    assert "needs about" in small.stderr and len(small.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "small").exists()


def test_sweep_layout(tmp_path):
    from tfbreak import flags as tfflags

    base = ExperimentConfig(output_dir=str(tmp_path), run_name="s")
    runs = tfflags.sweep_configs(base, tfflags.parse_sweep("batch_size:10,100"))
    assert [Path(c.output_dir) / c.run_name for c, _ in runs] == [
        tmp_path / "s" / "batch_size=10",
        tmp_path / "s" / "batch_size=100",
    ]
    assert [c.K_Ms for c, _ in runs] == [(128,), (128,)]  # App. C: M = 128 when S varies
    assert runs[1][1] == {"axis": "batch_size", "value": 100}
    seeded = tfflags.sweep_configs(base, tfflags.parse_sweep("lr:0.1,0.01"), [0, 1])
    assert [c.run_name for c, _ in seeded] == [
        "lr=0.1,seed=0",
        "lr=0.1,seed=1",
        "lr=0.01,seed=0",
        "lr=0.01,seed=1",
    ]
    assert [c.seed for c, _ in seeded] == [0, 1, 0, 1]
    assert [c.run_name for c, _ in tfflags.sweep_configs(base, None, [3])] == ["seed=3"]
    with pytest.raises(ConfigError, match="^--seeds:"):
        tfflags.parse_seeds(["1", "1"])


def test_break_even_is_written_live_once(tmp_path, tiny):
    """Every measurement row carries Eq. 1's LHS and lr_max (Eq. 1 solved for eta); the first
    with LHS >= 1 is followed by one break_even event row with the same values."""
    from tfbreak.curvature.eq1 import eq1_lhs

    config = ExperimentConfig.create(**{**tiny, "lr": 0.5}, output_dir=str(tmp_path), run_name="b")
    assert Trainer(config, progress=False).run().status in ("completed", "diverged")
    run = load_run(tmp_path / "b")
    rows = [r for r in run.rows if r["kind"] == "measurement"]
    for r in rows:
        lhs = eq1_lhs(r[names.LR], r[names.HESSIAN_LAMBDA_1], r[names.BREAKEVEN_S2], 60000, 32)
        assert r[names.BREAKEVEN_EQ1_LHS] == pytest.approx(float(lhs), rel=1e-12)
        at_max = eq1_lhs(
            r[names.BREAKEVEN_LR_MAX], r[names.HESSIAN_LAMBDA_1], r[names.BREAKEVEN_S2], 60000, 32
        )
        assert float(at_max) == pytest.approx(1.0, rel=1e-9)
    (event,) = run.events(names.EVENT_BREAK_EVEN)
    first = next(r for r in rows if r[names.BREAKEVEN_EQ1_LHS] >= 1)
    assert event["step"] == first["step"]
    assert event[names.BREAKEVEN_EQ1_LHS] == first[names.BREAKEVEN_EQ1_LHS]
    steps, _, _ = run.series(names.BREAKEVEN_EQ1_LHS)
    assert len(steps) == len(rows)  # the event row does not repeat a point of the series


def test_density_only_where_the_schedule_says(tmp_path, tiny):
    """--density_every_epochs: the SLQ density at step 0 and the last step (no power of 10 and
    no periodic measurement falls in this run), the other parts at every measurement."""
    config = ExperimentConfig.create(
        **tiny,
        measurements=("hessian", "density", "K"),
        density_vectors=1,
        density_steps=4,
        density_every_epochs=1.0,
        output_dir=str(tmp_path),
        run_name="r",
    )
    assert Trainer(config, progress=False).run().status == "completed"
    run = load_run(tmp_path / "r")
    assert run.array_steps(names.ARRAY_HESSIAN_DENSITY) == [0, 12]
    assert run.array_steps(names.ARRAY_HESSIAN_RITZ_VALUES) == [0, 4, 8, 12]
    arrays = run.arrays(4)
    bounds = arrays[names.ARRAY_HESSIAN_RITZ_BOUNDS]
    assert bounds.shape == arrays[names.ARRAY_HESSIAN_RITZ_VALUES].shape and (bounds >= 0).all()
    # a period shorter than the measurement period still spaces the density (every one)
    short = MeasurementSchedule.of(config.measure.replace(density_every_epochs=0.1), 100, 1000)
    assert short.density_every == 1
    with pytest.raises(ConfigError, match="--density_every_epochs: expected 0 unless"):
        config.measure.replace(measurements=("hessian",)).validate()
