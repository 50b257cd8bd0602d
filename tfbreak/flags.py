"""Every absl flag of `python -m tfbreak.main`, and the ExperimentConfig built from them.

One flag per field of `ExperimentConfig` and `MeasurementSettings`, with the field's name, default
and help (flags name the paper's quantities, App. C, D); `configs/*.flags` set them per
experiment. Besides them: --model_option/--data_option (builder keywords), --bert_handle, the
sweep (--sweep, --seeds) and what to show (--report, --progress).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any

from absl import flags

from tfbreak.catalog import canonical_dataset
from tfbreak.config import MAX_SEED, ConfigError, ExperimentConfig
from tfbreak.measure.settings import MeasurementSettings

SWEEP_AXES: tuple[str, ...] = ("lr", "batch_size", "momentum")
FLAGS = flags.FLAGS


def _kind(annotation: Any) -> tuple[type, bool]:
    """(base type, optional) of a field annotation such as `int | None` or `tuple[str, ...]`."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return _kind(inner)[0], True
    if typing.get_origin(annotation) is tuple:
        return tuple, False
    return annotation, False


def _element(annotation: Any) -> type:
    """Element type of a `tuple[X, ...]` field."""
    return typing.get_args(annotation)[0]


def _settings_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if "help" in f.metadata]


def _define(cls: type) -> None:
    """One absl flag per `setting` field of the dataclass `cls` (default and help from it)."""
    for f, annotation in _settings_fields(cls):
        kind, _ = _kind(annotation)
        default, help_ = f.default, f.metadata["help"]
        if f.metadata.get("choices"):
            flags.DEFINE_enum(f.name, default, f.metadata["choices"], help_)
        elif kind is bool:
            flags.DEFINE_bool(f.name, default, help_)
        elif kind is int:
            flags.DEFINE_integer(f.name, default, help_)
        elif kind is float:
            flags.DEFINE_float(f.name, default, help_)
        elif kind is str:
            flags.DEFINE_string(f.name, default, help_)
        elif kind is tuple:
            flags.DEFINE_list(f.name, [str(v) for v in default], help_)
        else:  # pragma: no cover - a new field type needs a flag kind here
            raise TypeError(f"no absl flag kind for {cls.__name__}.{f.name}: {annotation}")


def _values(cls: type) -> dict[str, Any]:
    """The parsed flag values of `cls`'s fields (lists of strings converted to tuples)."""
    out = {}
    for f, annotation in _settings_fields(cls):
        value = FLAGS[f.name].value
        if _kind(annotation)[0] is tuple:
            cast = _element(annotation)
            try:
                value = tuple(cast(v) for v in value)
            except ValueError as err:
                raise ConfigError(
                    f"--{f.name}: expected {cast.__name__}s, got {','.join(value)}"
                ) from err
        out[f.name] = value
    return out


_define(ExperimentConfig)
_define(MeasurementSettings)
flags.DEFINE_string("bert_handle", None, "TF-Hub handle (URL or directory) of the BERT encoder.")
flags.DEFINE_multi_string("model_option", [], "Extra model builder option key=value.")
flags.DEFINE_multi_string("data_option", [], "Extra data loader option key=value.")
flags.DEFINE_string(
    "sweep", None, "Sweep one axis, e.g. lr:0.1,0.01 or batch_size:10,100 (one run per value)."
)
flags.DEFINE_list("seeds", [], "Replicate every run with these seeds (overrides --seed).")
flags.DEFINE_bool("report", False, "Write the report (figures, conjecture table) at the end.")
flags.DEFINE_bool(
    "progress", True, "Show progress on stderr (a bar on a terminal, otherwise a line per event)."
)
flags.DEFINE_string(
    "config",
    None,
    "An experiment flagfile shipped with tfbreak, by name (e.g. quickstart); flags after it "
    "override it. See --list_configs.",
)
flags.DEFINE_bool("list_configs", False, "List the shipped experiment flagfiles and exit.")


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


def passed_flags() -> frozenset[str]:
    """The flags set on the command line or in a flagfile (the others have their default)."""
    return frozenset(name for name in FLAGS if FLAGS[name].present)


def config_from_flags() -> ExperimentConfig:
    """The ExperimentConfig of the parsed flags (not yet validated). --bert_handle is the
    model's `handle` option, and the tokeniser's `bert_handle` data option for MNLI."""
    model_options = _options(FLAGS.model_option, "model_option")
    data_options = _options(FLAGS.data_option, "data_option")
    if FLAGS.bert_handle:
        handle = os.path.expanduser(FLAGS.bert_handle)
        model_options.setdefault("handle", handle)
        if canonical_dataset(FLAGS.dataset) == "glue/mnli":
            data_options.setdefault("bert_handle", handle)
    return ExperimentConfig(
        **_values(ExperimentConfig),
        model_options=model_options,
        data_options=data_options,
        measure=MeasurementSettings(**_values(MeasurementSettings)),
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


def check_sweep_overrides(sweep: tuple[str, list] | None, seeds: list[int]) -> None:
    """A flag that the sweep (or --seeds) sets per run must not be passed as well: it would be
    ignored. The error names both flags."""
    overridden = []
    if sweep is not None:
        overridden.append((sweep[0], f"--sweep={FLAGS.sweep}"))
    if seeds:
        overridden.append(("seed", f"--seeds={','.join(FLAGS.seeds)}"))
    for name, by in overridden:
        if FLAGS[name].present:
            raise ConfigError(
                f"--{name}: {by} sets {name} for each run, so --{name}={FLAGS[name].value} "
                f"would be ignored; drop one of the two (an empty {by.split('=')[0]}= turns "
                "it off)"
            )


def parse_seeds(values: list[str]) -> list[int]:
    """`--seeds=0,1,2` -> [0, 1, 2]: replicates of every sweep value."""
    expected = f"--seeds: expected distinct integers in [0, {MAX_SEED}], got {','.join(values)}"
    try:
        seeds = [int(v) for v in values]
    except ValueError as err:
        raise ConfigError(expected) from err
    if any(not 0 <= s <= MAX_SEED for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(expected)
    return seeds


def sweep_configs(
    base: ExperimentConfig, sweep: tuple[str, list] | None, seeds: list[int] | None = None
) -> list[tuple[ExperimentConfig, dict | None]]:
    """One config per (sweep value, seed), laid out as output_dir/run_name/AXIS=VALUE (Sec. 4.2),
        with `,seed=S` appended when several seeds are run (output_dir/run_name/seed=S without a
        sweep). In a batch-size sweep K uses one M for every run unless --k_M is given
    (`MeasurementSettings.k_M_of_sweep`, App. C: 128)."""
    if sweep is None and not seeds:
        return [(base, None)]
    axis, values = sweep if sweep is not None else (None, [None])
    out = []
    for v in values:
        for seed in seeds or [base.seed]:
            name = ",".join(([f"{axis}={v}"] if axis else []) + ([f"seed={seed}"] if seeds else []))
            changes: dict[str, Any] = {
                "seed": seed,
                "output_dir": f"{base.output_dir}/{base.run_name}",
                "run_name": name,
            }
            if axis:
                changes[axis] = v
            if axis == "batch_size":
                changes["k_M"] = base.measure.k_M_of_sweep()
            out.append((base.replace(**changes), {"axis": axis, "value": v} if axis else None))
    return out
