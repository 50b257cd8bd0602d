"""Where a run lives and whether a run directory can be started or resumed for a config."""

from __future__ import annotations

import json
from pathlib import Path

from tfbreak.config import ConfigError, ExperimentConfig, identity
from tfbreak.runs.writer import METADATA_FILE


def run_dir_of(config: ExperimentConfig) -> Path:
    """OUTPUT_DIR/RUN_NAME."""
    return Path(config.output_dir) / config.run_name


def stored_config(config: ExperimentConfig) -> dict:
    """The config as metadata.json stores it (JSON types: tuples become lists)."""
    return json.loads(json.dumps(config.to_dict(), default=str))


def check_run_dir(config: ExperimentConfig) -> bool:
    """True to resume the run in `run_dir_of(config)`, False to start one there; raises
    ConfigError (naming --run_name) when the directory holds something else."""
    run_dir = run_dir_of(config)
    meta = run_dir / METADATA_FILE
    if not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir())):
        return False
    if not meta.is_file():
        raise ConfigError(
            f"--run_name: {run_dir} exists and is not a tfbreak run; choose another --run_name "
            "or --output_dir"
        )
    stored = identity(json.loads(meta.read_text()).get("config"))
    current = identity(stored_config(config))
    if stored != current:
        diff = sorted(k for k in current if stored.get(k) != current[k])
        raise ConfigError(
            f"--run_name: {run_dir} holds a run with other settings ({', '.join(diff)}); "
            "choose another --run_name or --output_dir"
        )
    return True
