"""BreakEvenCallback on the pipelines Keras users train with: every form of the same examples
gives the rows of the arrays, bit for bit; staged fits, a user's loss, mixed precision.

The model trains with SGD at learning rate 0, so that its weights, and so every measurement,
depend on the measured samples only (a shuffled pipeline trains on other batches than arrays
do; here that changes nothing). Training-log metrics (train/*) average the batches fit saw, in
its order, and are left out of the comparisons."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbreak
from tfbreak.runs import load_run, names

N, S = 128, 32
RNG = np.random.default_rng(0)
X = RNG.standard_normal((N, 6)).astype(np.float32)
Y = RNG.integers(0, 3, N).astype(np.int32)
SETTINGS = dict(
    measurements=("hessian", "K"),
    hessian_sample_size=32,
    k_L=3,
    top_k=1,
    lanczos_block=1,
    lanczos_max_iter=8,
    measure_schedule="linear",
    measure_dense_every=2,
    measure_dense_until=2,
    measure_every_epochs=1.0,
)


def _model(lr: float = 0.0, dict_inputs: bool = False, **layer_kwargs) -> keras.Model:
    keras.utils.set_random_seed(0)
    if dict_inputs:
        a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
        h = keras.layers.Dense(8, activation="tanh")(keras.layers.Concatenate()([a, b]))
        model = keras.Model({"a": a, "b": b}, keras.layers.Dense(3, **layer_kwargs)(h))
    else:
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(8, activation="tanh"),
                keras.layers.Dense(3, **layer_kwargs),
            ]
        )
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _measurements(run_dir) -> list[dict]:
    keep = lambda k: k not in names.WALL_CLOCK and not k.startswith("train/")  # noqa: E731
    rows = load_run(run_dir).rows
    return [{k: v for k, v in r.items() if keep(k)} for r in rows if r["kind"] == "measurement"]


def _fit(run_dir, train_data, fit_data, model=None, callback_kwargs=None, **fit_kwargs):
    model = model or _model()
    callback = tfbreak.BreakEvenCallback(
        run_dir, train_data, batch_size=S, **SETTINGS, **(callback_kwargs or {})
    )
    model.fit(fit_data, epochs=1, callbacks=[callback], verbose=0, **fit_kwargs)
    return _measurements(run_dir)


def _dataset(x=X):
    return tf.data.Dataset.from_tensor_slices((x, Y))


def _generator():
    order = np.random.default_rng(1).permutation(N)
    while True:
        for a in range(0, N, S):
            i = order[a : a + S]
            yield X[i], Y[i]


PIPELINES = {
    "shuffle": lambda: (_dataset().shuffle(N).batch(S), {}, {}),
    "repeat": lambda: (
        _dataset().shuffle(N).batch(S).repeat().prefetch(2),
        {"num_examples": N},
        {"steps_per_epoch": N // S},
    ),
}


@pytest.fixture(scope="module")
def arrays_rows(tmp_path_factory):
    rows = _fit(tmp_path_factory.mktemp("arrays") / "run", (X, Y), X, y=Y, batch_size=S)
    assert [r["step"] for r in rows] == [0, 2, 4]
    return rows


@pytest.mark.parametrize("form", PIPELINES)
def test_pipeline_gives_the_rows_of_the_arrays(form, tmp_path, arrays_rows):
    """The rows of a reshuffling pipeline, and of a repeated one fit reads by steps_per_epoch,
    equal those of the arrays (the prefetched, cached, mapped, unbatched and dict-input forms
    have the arrays' measurement pool, tests/measure/test_measure_pool.py, and so their rows:
    the rows are a function of the weights, the pool and the seed)."""
    data, callback_kwargs, fit_kwargs = PIPELINES[form]()
    rows = _fit(tmp_path / "run", data, data, callback_kwargs=callback_kwargs, **fit_kwargs)
    assert rows == arrays_rows


def test_a_generator_gives_the_rows_of_the_arrays(tmp_path, arrays_rows):
    rows = _fit(
        tmp_path / "run",
        _generator(),
        _generator(),
        callback_kwargs={"num_examples": N},
        steps_per_epoch=N // S,
    )
    assert rows == arrays_rows
    with pytest.raises(ValueError, match=r"^num_examples: train_data is a Python generator"):
        _fit(tmp_path / "no_size", _generator(), _generator(), steps_per_epoch=N // S)


def test_an_infinite_pipeline_without_num_examples_is_one_line(tmp_path):
    """One pass of a repeat below a map cannot be told (one above it is found by itself)."""
    data = _dataset().repeat().map(lambda x, y: (x, y)).batch(S)
    with pytest.raises(ValueError, match=r"^num_examples: train_data is infinite \(repeat\(\)\)"):
        _fit(tmp_path / "run", data, data, steps_per_epoch=4)


def test_two_fits_continue_one_run(tmp_path):
    """The second fit's rows continue the first's steps, epochs and schedule; `fit` says which
    fit wrote a row; the metadata records both."""
    model = _model(lr=0.05)
    callback = tfbreak.BreakEvenCallback(tmp_path / "run", (X, Y), batch_size=S, **SETTINGS)
    for _ in range(2):
        model.fit(X, Y, batch_size=S, epochs=1, callbacks=[callback], verbose=0, shuffle=False)
    run = load_run(tmp_path / "run")
    measured = [(r["step"], r["fit"]) for r in run.rows if r["kind"] == "measurement"]
    assert measured == [(0, 0), (2, 0), (4, 0), (8, 1)]  # every 4 steps after step 2
    epochs = [(r["step"], r["epoch"], r["fit"]) for r in run.rows if r["kind"] == "epoch"]
    assert epochs == [(4, 1.0, 0), (8, 2.0, 1)]
    fits = run.metadata["fits"]
    assert [(f["start_step"], f["end_step"], f["end_epoch"]) for f in fits] == [
        (0, 4, 1.0),
        (4, 8, 2.0),
    ]
    assert run.status == "completed"


@pytest.mark.slow
def test_a_staged_script_rerun_after_a_crash_in_its_second_fit(tmp_path):
    """A script of two fits stopped in the second one (here by an exception, its writer
    abandoned as by a killed process), then run again with a new model and callback: the
    first fit is not trained again (its end state is restored), the second resumes from its
    last completed epoch, and the rows equal those of the uninterrupted script."""

    class Crash(keras.callbacks.Callback):
        def __init__(self, at):
            super().__init__()
            self.at, self.steps = at, 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            if self.steps == self.at:
                raise RuntimeError("killed")

    made = []

    def script(run_dir, crash_at=None):
        model = _model(lr=0.05)
        callback = tfbreak.BreakEvenCallback(run_dir, (X, Y), batch_size=S, **SETTINGS)
        made.append(callback)
        for stage in range(2):
            crash = [Crash(crash_at)] if crash_at and stage == 1 else []
            model.fit(
                X,
                Y,
                batch_size=S,
                epochs=2,
                callbacks=[callback, *crash],
                verbose=0,
                shuffle=False,
            )

    script(tmp_path / "ref")
    with pytest.raises(RuntimeError, match="killed"):
        script(tmp_path / "run", crash_at=6)  # in the second fit's second epoch
    made[-1].writer.close()  # the process "dies": its writer is abandoned, its lock released
    assert load_run(tmp_path / "run").status == "running"
    script(tmp_path / "run")
    assert _measurements(tmp_path / "run") == _measurements(tmp_path / "ref")
    epochs = lambda d: [r for r in load_run(d).rows if r["kind"] == "epoch"]  # noqa: E731
    assert epochs(tmp_path / "run") == epochs(tmp_path / "ref")
    assert load_run(tmp_path / "run").status == "completed"


def test_loss_fn_on_a_model_compiled_with_mse(tmp_path):
    """A regression model compiled with "mse": the callback takes `loss_fn` as Curvature does,
    and measures the same lambda_1 at step 0 (no held-out accuracy: outputs are no classes)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4, "tanh"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    target = X[:, :1] - X[:, 1:2]

    def loss_fn(batch):
        x, y = batch
        return tf.reduce_sum((model(x, training=False) - y) ** 2, axis=-1)

    settings = {**SETTINGS, "lanczos_max_iter": 30, "lanczos_tol": 1e-6}
    curvature = tfbreak.Curvature(
        model,
        (X, target),
        loss_fn=loss_fn,
        sample=32,
        **{k: settings[k] for k in ("lanczos_max_iter", "lanczos_tol", "top_k", "lanczos_block")},
    )
    expected = curvature.top_eigenvalues(1).eigenvalues[0]
    callback = tfbreak.BreakEvenCallback(
        tmp_path / "run",
        (X, target),
        batch_size=S,
        loss_fn=loss_fn,
        test_data=(X, target),
        **settings,
    )
    with pytest.warns(UserWarning, match="held-out accuracy is not measured"):
        model.fit(X, target, batch_size=S, epochs=1, callbacks=[callback], verbose=0)
    run = load_run(tmp_path / "run")
    assert run.rows[0][names.HESSIAN_LAMBDA_1] == pytest.approx(expected, rel=1e-6)
    assert names.TEST_ACCURACY_SUBSET not in run.rows[0]
    assert run.metadata["noise_layers"] == "loss_fn" and run.metadata["loss"] == "loss_fn"


@pytest.mark.parametrize(
    ("policy", "head"),
    [("mixed_float16", None), pytest.param("mixed_bfloat16", "float32", marks=pytest.mark.slow)],
)
def test_mixed_precision_measures_the_float32_model(policy, head, tmp_path, arrays_rows):
    """Under a mixed policy, with a float16 (bfloat16) head or a float32 one, the callback
    measures in float32: the rows of the float32 model with the same weights (rel 1e-6, the
    float32 operator's precision; in practice bit for bit). Curvature: all four cases,
    tests/curvature/test_curvature_modes.py."""
    reference = _model()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = _model(dtype=head)
        model.set_weights(reference.get_weights())
        rows = _fit(tmp_path / "run", (X, Y), X, model=model, y=Y, batch_size=S)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert [r["step"] for r in rows] == [r["step"] for r in arrays_rows]
    for got, want in zip(rows, arrays_rows, strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            numeric = isinstance(value, float | list)
            assert got[key] == (pytest.approx(value, rel=1e-6) if numeric else value), key
    meta = load_run(tmp_path / "run").metadata
    assert meta["dtype_policy"] == policy and meta["measurement_dtype"] == "float32"
