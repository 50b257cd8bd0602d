"""The memory budget: its estimates against hand-computed sums of parameter-sized buffers, the
available memory read from the machine (or $TFBREAK_MEMORY_LIMIT), and the refusal that names
the flag to lower."""

from __future__ import annotations

import pytest

from tfbreak.config import ConfigError, ExperimentConfig
from tfbreak.measure import budget
from tfbreak.measure.budget import (
    RUNTIME_BYTES,
    Available,
    Budget,
    Sizes,
    available_memory,
    hvp_device,
    measurement_memory,
    parse_bytes,
)
from tfbreak.measure.parts import MEASUREMENTS
from tfbreak.measure.settings import MeasurementSettings

D = 10_000_000
V = 4 * D
SIZES = Sizes(parameters=D, hessian_sample=1000, hessian_batch_size=100, batch_size=32, k_Ms=(32,))


def settings(**changes) -> MeasurementSettings:
    return MeasurementSettings(**{"measurements": MEASUREMENTS, **changes}).validate()


def test_every_measurement_has_an_estimate():
    assert set(budget.ESTIMATORS) == set(MEASUREMENTS)
    assert list(measurement_memory(settings(), SIZES)) == list(MEASUREMENTS)


def test_the_constants_are_those_of_the_code_they_describe():
    from tfbreak.curvature.algorithms import trace
    from tfbreak.curvature.operators import covariance

    assert budget.K_GRAM_BLOCK_ELEMENTS == covariance.CHUNK_ELEMENTS
    assert budget.PROBES_PER_PASS == trace.PROBES_PER_PASS


def test_lanczos_basis_storage():
    """Default: max_iter + block float32 vectors on the host, at most the cap (20), then the
    Ritz vectors; the products of one pass (b + 1/2 vectors on the device, b on the host; with
    the basis on the device 3 b + 1)."""
    s = settings(top_k=5, lanczos_block=2, lanczos_max_iter=30)
    e = measurement_memory(s, SIZES)["hessian"]
    assert s.basis_vectors() == 20
    basis = 20 * V
    assert e.host_bytes == basis + 5 * V + RUNTIME_BYTES
    assert e.device_bytes == hvp_device(SIZES, 2) == 2.5 * V
    # The pass (basis, 2 products, 2.5 V) or the 5 Ritz vectors beside the basis after it.
    assert e.combined_bytes == max(basis + 2 * V + 2.5 * V, basis + 5 * V) + RUNTIME_BYTES
    assert e.hvp_products == 31 and e.gradients == 2.0 * 31 * 1000
    f64 = measurement_memory(s.replace(lanczos_basis="host_float64"), SIZES)["hessian"]
    assert f64.host_bytes == 2 * basis + 5 * 8 * D + RUNTIME_BYTES
    device = measurement_memory(s.replace(lanczos_basis="device"), SIZES)["hessian"]
    assert device.device_bytes == basis + 7 * V == basis + hvp_device(SIZES, 2, True)
    assert device.host_bytes == 5 * V + RUNTIME_BYTES
    # Activations of a Hessian-vector pass: (2.5 + 0.6 b) x batch x A float32 values.
    with_a = Sizes(**{**SIZES.__dict__, "activations": 1000})
    assert hvp_device(with_a, 2) == 2.5 * V + 3.7 * 100 * 1000 * 4
    # No restart when max_iter + block vectors fit under the cap; a larger top_k raises the cap.
    few = measurement_memory(s.replace(lanczos_max_iter=10), SIZES)["hessian"]
    assert few.host_bytes == 12 * V + 5 * V + RUNTIME_BYTES
    wide = measurement_memory(s.replace(lanczos_basis_vectors=40), SIZES)["hessian"]
    assert wide.host_bytes == 32 * V + 5 * V + RUNTIME_BYTES
    assert s.replace(top_k=20, lanczos_max_iter=40).basis_vectors() == 24


def test_density_and_trace():
    e = measurement_memory(settings(density_vectors=2, density_steps=30), SIZES)["density"]
    assert e.combined_bytes == 62 * V + 4 * V + 2.5 * V + RUNTIME_BYTES
    assert e.hvp_products == 60
    t = measurement_memory(settings(trace_samples=10), SIZES)["trace"]
    assert t.combined_bytes == 8 * V + 4.5 * V + RUNTIME_BYTES and t.hvp_products == 10


def test_k_gradients_on_device_or_host():
    """L float32 gradients (L x D x 4 bytes: 17.8 GB for mBERT at L = 25) and the float64
    column block of the Gram matrix; per-layer factors (M = 1) hold no L x D gradients."""
    gram = 3 * 8 * (1 << 24)
    e = measurement_memory(settings(k_L=25), SIZES)["K"]
    assert e.device_bytes == 25 * V + gram + 2 * V + V
    assert e.host_bytes == RUNTIME_BYTES and e.gradients == 25 * 32 + 32
    host = measurement_memory(settings(k_L=25, k_storage="host"), SIZES)["K"]
    assert host.host_bytes == 25 * V + gram + RUNTIME_BYTES
    assert host.device_bytes == 3 * V
    factored = Sizes(**{**SIZES.__dict__, "k_Ms": (1,), "factored_k": True})
    assert measurement_memory(settings(k_L=25), factored)["K"].device_bytes == 3 * V
    mbert = Sizes(parameters=177_855_747, hessian_sample=1, hessian_batch_size=1, batch_size=32,
                  k_Ms=(32,))  # fmt: skip
    assert 17.7e9 < 25 * 4 * mbert.parameters < 17.8e9


def test_parse_bytes():
    assert parse_bytes("16G", "X") == 16 * 1024**3
    assert parse_bytes("1.5MiB", "X") == int(1.5 * 1024**2)
    assert parse_bytes("123", "X") == 123
    for bad in ("", "-1G", "lots", "0", "1Q"):
        with pytest.raises(ConfigError, match="^X: expected a positive number of bytes"):
            parse_bytes(bad, "X")


def test_available_memory_from_meminfo_cgroup_or_the_environment(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text("MemTotal: 100 kB\nMemAvailable:    2048 kB\n")
    assert available_memory({}, tmp_path) == Available(2048 * 1024, "MemAvailable")
    cg = tmp_path / "sys/fs/cgroup"
    cg.mkdir(parents=True)
    (cg / "memory.max").write_text("1000000\n")
    (cg / "memory.current").write_text("400000\n")
    assert available_memory({}, tmp_path).bytes == 600000  # the smaller: the control group
    (cg / "memory.max").write_text("max\n")  # no limit
    assert available_memory({}, tmp_path).source == "MemAvailable"
    env = {"TFBREAK_MEMORY_LIMIT": "3G"}
    assert available_memory(env, tmp_path) == Available(3 * 1024**3, "TFBREAK_MEMORY_LIMIT")
    with pytest.raises(ConfigError, match="^TFBREAK_MEMORY_LIMIT: expected"):
        available_memory({"TFBREAK_MEMORY_LIMIT": "plenty"}, tmp_path)
    assert available_memory({}, tmp_path / "nothing") is None


def test_check_names_the_flag_and_the_largest_value_that_fits():
    """A hessian that does not fit is offered a smaller basis (thick restarts keep lambda_1's
    accuracy), not fewer products."""
    s = settings(
        measurements=("hessian", "K"),
        top_k=1,
        lanczos_block=1,
        lanczos_max_iter=30,
        lanczos_basis_vectors=40,
        k_L=4,
    )
    need = measurement_memory(s, SIZES)["hessian"].combined_bytes
    room = Available(need - 10 * V, "test")
    plan = Budget.of(s, SIZES, room)
    with pytest.raises(
        ConfigError,
        match=r"^--lanczos_basis_vectors: hessian needs about .* --lanczos_basis_vectors=21 fits",
    ):
        plan.check()
    assert Budget.of(s.replace(lanczos_basis_vectors=21), SIZES, room).check() is None
    with pytest.raises(ConfigError, match="^--lanczos_basis: .* --lanczos_basis=host halves"):
        Budget.of(s.replace(lanczos_basis="host_float64"), SIZES, Available(need, "t")).check()
    with pytest.raises(ConfigError, match="^--measurements: .* leave hessian out"):
        Budget.of(s, SIZES, Available(RUNTIME_BYTES, "t")).check()
    # Trace has no size setting: the measurement itself is named.
    t = settings(measurements=("trace",))
    with pytest.raises(ConfigError, match="^--measurements: trace needs"):
        Budget.of(t, SIZES, Available(V, "t")).check()
    assert Budget.of(s, SIZES, None).check() is None  # unknown: not checked
    line = Budget.of(s, SIZES, room).line()
    assert line.startswith("tfbreak: memory: D = 10,000,000 parameters;") and "\n" not in line


def test_a_run_that_cannot_fit_is_refused_before_anything_is_recorded(tmp_path, tiny, monkeypatch):
    from tfbreak.training.trainer import Trainer

    monkeypatch.setenv("TFBREAK_MEMORY_LIMIT", "1M")
    config = ExperimentConfig.create(**tiny, output_dir=str(tmp_path), run_name="r")
    with pytest.raises(ConfigError, match=r"^--\w+: \w+ needs about .* more than the 1 MB"):
        Trainer(config, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing written
