"""A run directory is resumed only by the settings that made it; settings added to tfbreak
after a run was written count as their defaults."""

from __future__ import annotations

import json

import pytest

from tfbreak.config import ConfigError, ExperimentConfig
from tfbreak.runs.files import METADATA_FILE
from tfbreak.runs.rundir import inspect_run_dir, run_dir_of, stored_config

NEWER = ("hessian_target_error", "hessian_max_fraction")
"""Settings that runs written by tfbreak before the adaptive Hessian sample do not store."""


def _older_run(tmp_path, **settings) -> ExperimentConfig:
    config = ExperimentConfig.create(output_dir=str(tmp_path), run_name="old", **settings)
    stored = {k: v for k, v in stored_config(config).items() if k not in NEWER}
    run_dir = run_dir_of(config)
    run_dir.mkdir(parents=True)
    (run_dir / METADATA_FILE).write_text(json.dumps({"config": stored}))
    return config


def test_a_run_without_a_newer_setting_resumes_with_its_default(tmp_path):
    config = _older_run(tmp_path, k_L=7)
    assert inspect_run_dir(config, check_lock=False).started
    for changed in (dict(hessian_target_error=0.05), dict(k_L=8)):
        other = config.replace(**changed)
        with pytest.raises(ConfigError, match=f"other settings \\({next(iter(changed))}\\)"):
            inspect_run_dir(other, check_lock=False)
