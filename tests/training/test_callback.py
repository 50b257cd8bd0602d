"""BreakEvenCallback inside model.fit writes a valid run directory with the same measurements."""

import numpy as np
import pytest
import tensorflow as tf
from fit_script import toy_classifier  # tests/training/fit_script.py

import tfbreak
from tfbreak.curvature import ParameterSpace, classification_loss
from tfbreak.data import fixed_subset
from tfbreak.measure.inputs import as_examples
from tfbreak.measure.samples import SampleStream
from tfbreak.runs import load_run, names


def test_callback_in_model_fit(tmp_path):
    model, x, y = toy_classifier()
    callback = tfbreak.BreakEvenCallback(
        tmp_path / "run",
        (x, y),
        batch_size=32,
        test_data=(x[:64], y[:64]),
        hessian_sample_size=128,
        k_L=5,
        measure_schedule="linear",
        measure_dense_every=2,
        measure_dense_until=4,
        measure_every_epochs=1.0,  # 8 steps per epoch
        lanczos_tol=1e-8,
        lanczos_max_iter=40,
    )
    # lambda_1(H) at initialisation on the callback's own Hessian sample (drawn from the
    # measurement pool of (x, y) with the Hessian stream's seed), computed densely.
    pool = as_examples((x, y), seed=0)
    sample = fixed_subset(pool.dataset, 128, SampleStream.HESSIAN.seed(0), lookup=pool.lookup)
    loss_fn = classification_loss(model, bn_mode="inference")
    space = ParameterSpace(model.trainable_variables)
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            loss = tf.reduce_mean(loss_fn(sample))
        g = space.flatten(inner.gradient(loss, space.variables))
    hess = np.concatenate(
        [tf.reshape(j, [space.dim, -1]).numpy() for j in outer.jacobian(g, space.variables)], 1
    )
    lam = np.linalg.eigvalsh(0.5 * (hess + hess.T))[-1]
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[callback], verbose=0, shuffle=False)
    run = load_run(tmp_path / "run")
    assert run.status == "completed"
    measured = [r["step"] for r in run.rows if r["kind"] == "measurement"]
    assert measured == [0, 2, 4, 8, 16]
    assert [r["step"] for r in run.rows if r["kind"] == "epoch"] == [8, 16]
    first = run.rows[0]
    assert first[names.HESSIAN_LAMBDA_1] == pytest.approx(lam, rel=1e-4)  # float32 HVPs
    assert first[names.K_LAMBDA_1] > 0 and 0 < first[names.K_RATIO] <= 1
    assert names.LOSS_DELTA in first and names.TEST_ACCURACY_SUBSET in first
    assert run.rows[-1][names.TRAIN_ACCURACY_EPOCH] > 0.5
    # Per-batch logs give the accuracy of the batches since the previous measurement: the
    # measurement at the epoch's end and the epoch row agree on the epoch's mean when they
    # cover it all (steps 8 -> 16 = the second epoch).
    at_16 = next(r for r in run.rows if r["step"] == 16 and r["kind"] == "measurement")
    assert at_16[names.TRAIN_ACCURACY_SINCE_LAST] == pytest.approx(
        run.rows[-1][names.TRAIN_ACCURACY_EPOCH], rel=1e-5
    )
    at_2 = run.rows[1]
    assert at_2["step"] == 2 and 0 <= at_2[names.TRAIN_ACCURACY_SINCE_LAST] <= 1


def test_on_break_even_is_called_once_at_the_first_crossing(tmp_path):
    """With a learning rate far above 2 / lambda_1(H) the first measurement is past break-even:
    the hook fires there, once, and the run directory holds the event row."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((128, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    calls = []

    class Recording(tfbreak.BreakEvenCallback):
        def on_break_even(self, step, row):
            calls.append((step, row[names.BREAKEVEN_EQ1_LHS], row[names.BREAKEVEN_LR_MAX]))

    callback = Recording(
        tmp_path / "run",
        (x, y),
        batch_size=32,
        hessian_sample_size=64,
        k_L=3,
        measure_schedule="linear",
        measure_dense_every=1,
        measure_dense_until=4,
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(50.0), loss=loss)
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[callback], verbose=0, shuffle=False)
    assert len(calls) == 1 and calls[0][0] == 0
    step, lhs, lr_max = calls[0]
    assert lhs >= 1 and lr_max < 50.0
    (event,) = load_run(tmp_path / "run").events(names.EVENT_BREAK_EVEN)
    assert event["step"] == 0 and event[names.BREAKEVEN_EQ1_LHS] == lhs


@pytest.mark.slow
def test_a_killed_fit_rerun_ends_with_the_rows_of_an_uninterrupted_one(tmp_path, reproducible_rows):
    """SIGKILL in the second epoch, then the same script again: the callback restores the model
    and optimizer of the last completed epoch (fit restarts there), drops the rows after it,
    replays the pipeline's reshuffling (fit_script.py trains on a shuffled dataset, reshuffled
    at every epoch) and ends with the rows of an uninterrupted fit, wall-clock fields aside."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("fit_script.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def fit(run_dir, *kill):
        return subprocess.run(
            [sys.executable, str(script), str(run_dir), *kill], env=env, capture_output=True
        )

    assert fit(tmp_path / "ref").returncode == 0
    killed = fit(tmp_path / "run", "13")  # 8 steps per epoch: in epoch 2
    assert killed.returncode == -9
    assert load_run(tmp_path / "run").status == "running"
    rerun = fit(tmp_path / "run")
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert reproducible_rows(tmp_path / "run") == reproducible_rows(tmp_path / "ref")
    assert load_run(tmp_path / "run").status == "completed"


def test_softmax_model_through_the_callback_measures_the_logits_model(tmp_path):
    """The same weights as logits or behind a softmax (compiled for probabilities): the first
    measurement rows agree (float32 on the device: 1e-5)."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((128, 6)).astype(np.float32)
    y = rng.integers(0, 3, 128).astype(np.int32)
    rows = {}
    for head in ("logits", "softmax"):
        keras.utils.set_random_seed(0)
        activation = "softmax" if head == "softmax" else None
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(8, activation="tanh"),
                keras.layers.Dense(3, activation=activation),
            ]
        )
        loss = "sparse_categorical_crossentropy" if head == "softmax" else None
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss)
        callback = tfbreak.BreakEvenCallback(
            tmp_path / head, (x, y), batch_size=32, hessian_sample_size=64, k_L=3
        )
        if head == "logits":
            model.compile(
                optimizer=keras.optimizers.SGD(0.0),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
        model.fit(x, y, batch_size=32, epochs=1, callbacks=[callback], verbose=0, shuffle=False)
        rows[head] = load_run(tmp_path / head).rows[0]
    for name in (names.HESSIAN_LAMBDA_1, names.K_TRACE, names.LOSS_DELTA, names.BREAKEVEN_S2):
        assert rows["softmax"][name] == pytest.approx(rows["logits"][name], rel=1e-5), name
