"""One default per measurement setting: the flags read it from the settings dataclasses, and the
measurement core takes the values as arguments without defaults of its own."""

import dataclasses
import inspect

import pytest

from tfbreak.config import ExperimentConfig
from tfbreak.measure.settings import MeasurementSettings
from tfbreak.validation import ConfigError

# Setting -> the (callable, parameter) of the measurement core that receives its value.
CORE_PARAMETERS = {
    "top_k": ("tfbreak.curvature.algorithms.lanczos:lanczos", "k"),
    "lanczos_tol": ("tfbreak.curvature.algorithms.lanczos:lanczos", "tol"),
    "lanczos_max_iter": ("tfbreak.curvature.algorithms.lanczos:lanczos", "max_iter"),
    "lanczos_converge_k": ("tfbreak.curvature.algorithms.lanczos:lanczos", "converge_k"),
    "lanczos_block": ("tfbreak.curvature.algorithms.lanczos:lanczos", "block"),
    "lanczos_basis": ("tfbreak.curvature.algorithms.lanczos:lanczos", "basis"),
    "trace_samples": ("tfbreak.curvature.algorithms.trace:hutchinson_trace", "num_samples"),
    "density_vectors": ("tfbreak.curvature.algorithms.trace:slq_density", "num_vectors"),
    "density_steps": ("tfbreak.curvature.algorithms.trace:slq_density", "steps"),
    "k_storage": (
        "tfbreak.curvature.operators.covariance:CovarianceOperator.minibatches",
        "on_host",
    ),
    "hvp_mode": ("tfbreak.curvature.operators.hessian:HessianOperator", "mode"),
    "bn_mode": ("tfbreak.curvature.keras_loss:classification_loss", "bn_mode"),
}


def _resolve(path: str):
    import importlib

    module, name = path.split(":")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def test_flag_defaults_are_the_dataclass_defaults():
    from tfbreak import flags as tfflags

    checked = 0
    for cls in (ExperimentConfig, MeasurementSettings):
        for f in dataclasses.fields(cls):
            if "help" not in f.metadata:
                continue
            flag = tfflags.FLAGS[f.name]
            default = tuple(flag.default) if isinstance(f.default, tuple) else flag.default
            if isinstance(f.default, tuple) and f.default and isinstance(f.default[0], int):
                default = tuple(int(v) for v in default)
            assert default == f.default, f.name
            assert flag.help.endswith(f.metadata["help"]), f.name  # enums prefix their choices
            checked += 1
    # Every setting has a flag; the only fields without one are the nested ones.
    fields = [*dataclasses.fields(ExperimentConfig), *dataclasses.fields(MeasurementSettings)]
    assert {f.name for f in fields if "help" not in f.metadata} == {
        "model_options",
        "data_options",
        "measure",
    }
    assert checked == len(fields) - 3


@pytest.mark.parametrize("setting", sorted(CORE_PARAMETERS))
def test_the_core_has_no_default_of_its_own(setting):
    assert setting in {f.name for f in dataclasses.fields(MeasurementSettings)}
    target, parameter = CORE_PARAMETERS[setting]
    fn = _resolve(target)
    param = inspect.signature(fn).parameters[parameter]
    assert param.default is inspect.Parameter.empty, f"{target}({parameter}=...) has a default"


def test_callback_takes_the_settings_not_copies_of_their_defaults():
    from tfbreak.training.callback import BreakEvenCallback

    params = inspect.signature(BreakEvenCallback).parameters
    names = {f.name for f in dataclasses.fields(MeasurementSettings)}
    assert not names & set(params)
    assert params["settings"].default is None


def test_settings_validation_names_the_flag():
    with pytest.raises(ConfigError, match="^--k_L:"):
        MeasurementSettings(k_L=1).validate()
    with pytest.raises(ConfigError, match="^--hvp_mode:"):
        MeasurementSettings(hvp_mode="finite_differences").validate()
    config = ExperimentConfig.create(top_k=3, lr=0.5)
    assert config.measure.top_k == 3 and config.lr == 0.5
    assert config.to_dict()["top_k"] == 3 and "measure" not in config.to_dict()
    with pytest.raises(TypeError):
        ExperimentConfig.create(nonsense=1)
