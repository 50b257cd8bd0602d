"""Checks before any work: settings that fit together, paths that can be written or read, the
network only with --download, flags a sweep would override. Each error names the flag the user
passed. TensorFlow-free (a subprocess checks that the checks never import it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from absl import flags

from tfbreak import catalog, hub
from tfbreak import flags as tfflags
from tfbreak.config import ConfigError, ExperimentConfig
from tfbreak.preflight import check_paths


def _config(tmp_path, **settings) -> ExperimentConfig:
    return ExperimentConfig.create(output_dir=str(tmp_path / "runs"), **settings)


def _saved_model(directory, vocab: bool = True) -> str:
    (directory / "assets").mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(b"\x08\x01")
    if vocab:
        (directory / "assets" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return str(directory)


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "x\0y", "é" * 128])
def test_run_name_must_be_a_plain_directory_name(name):
    with pytest.raises(ConfigError, match="^--run_name: expected a plain directory name"):
        ExperimentConfig.create(run_name=name).validate()


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1e-4])
def test_weight_decay_is_finite_and_non_negative(value):
    with pytest.raises(ConfigError, match="^--weight_decay: expected a finite number >= 0"):
        ExperimentConfig.create(weight_decay=value).validate()


def test_model_and_data_set_must_fit_and_the_error_names_the_flag_passed():
    bert = ExperimentConfig.create(model="bert")
    with pytest.raises(ConfigError, match=r"^--model: bert takes sentence pairs.*glue/mnli"):
        bert.validate(passed={"model"})
    with pytest.raises(ConfigError, match=r"--dataset=fashion_mnist \(the default\)"):
        bert.validate(passed={"model"})
    mnli = ExperimentConfig.create(dataset="glue/mnli")
    with pytest.raises(ConfigError, match=r"^--dataset: glue/mnli gives sentence pairs.*bert"):
        mnli.validate(passed={"dataset"})
    both = ExperimentConfig.create(model="lstm", dataset="cifar10")
    with pytest.raises(ConfigError, match=r"^--model: lstm .*--dataset=cifar10 does not give"):
        both.validate(passed={"model", "dataset"})
    with pytest.raises(ConfigError, match="^--model:"):  # a library user passes no flags
        both.validate()
    for model in catalog.MODEL_NAMES:
        for dataset in catalog.datasets_for(model) + ["mnli", "imagenet"]:
            if catalog.fits(model, dataset):
                ExperimentConfig.create(model=model, dataset=dataset).validate()
    with pytest.raises(ConfigError, match="^--model: expected one of"):
        ExperimentConfig.create(model="vgg").validate()


def test_sweep_and_seeds_overrides_are_errors_naming_both_flags(tmp_path):
    fl = flags.FLAGS
    cases = [
        (["--sweep=lr:0.1,0.01", "--lr=0.3"], r"^--lr: --sweep=lr:0.1,0.01 sets lr .*--lr=0.3"),
        (["--seeds=0,1", "--seed=4"], r"^--seed: --seeds=0,1 sets seed"),
        (["--sweep=batch_size:8,16", "--batch_size=32"], r"^--batch_size: --sweep="),
    ]
    try:
        for argv, message in cases:
            fl.unparse_flags()
            fl(["tfbreak", *argv])
            sweep, seeds = tfflags.parse_sweep(fl.sweep), tfflags.parse_seeds(fl.seeds)
            with pytest.raises(ConfigError, match=message):
                tfflags.check_sweep_overrides(sweep, seeds)
        fl.unparse_flags()
        fl(["tfbreak", "--sweep=lr:0.1,0.01", "--momentum=0.9", "--sweep="])
        assert tfflags.parse_sweep(fl.sweep) is None  # an empty --sweep= turns it off
        tfflags.check_sweep_overrides(tfflags.parse_sweep("lr:0.1,0.01"), [])
        assert {"sweep", "momentum"} <= tfflags.passed_flags()
        assert "lr" not in tfflags.passed_flags()
    finally:
        fl.unparse_flags()


# ----------------------------------------------------------------------------- paths


def test_output_dir_must_be_writable(tmp_path):
    check_paths(_config(tmp_path))  # missing below a writable directory: fine
    assert list(tmp_path.iterdir()) == []  # and the probe left nothing
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"^--output_dir: .* is not a directory"):
        check_paths(ExperimentConfig.create(output_dir=str(tmp_path / "file" / "runs")))
    with pytest.raises(ConfigError, match=r"^--output_dir: /proc/tfbreak_runs cannot be created"):
        check_paths(ExperimentConfig.create(output_dir="/proc/tfbreak_runs"))
    if os.geteuid() != 0:  # root writes anywhere permissions would forbid
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(ConfigError, match=r"^--output_dir: .*Permission denied"):
            check_paths(ExperimentConfig.create(output_dir=str(tmp_path / "ro" / "runs")))


def test_memory_limit_variable_must_be_a_size(tmp_path, monkeypatch):
    monkeypatch.setenv("TFBREAK_MEMORY_LIMIT", "16G")
    check_paths(_config(tmp_path))
    monkeypatch.setenv("TFBREAK_MEMORY_LIMIT", "a lot")
    with pytest.raises(ConfigError, match="^TFBREAK_MEMORY_LIMIT: expected a positive number"):
        check_paths(_config(tmp_path))


def test_data_dir_and_path_options_must_exist(tmp_path):
    with pytest.raises(ConfigError, match=r"^--data_dir: .*missing does not exist.*--download"):
        check_paths(_config(tmp_path, data_dir=str(tmp_path / "missing")))
    check_paths(_config(tmp_path, data_dir=str(tmp_path / "missing"), download=True))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"^--data_dir: .* is not a directory"):
        check_paths(_config(tmp_path, data_dir=str(tmp_path / "f")))
    options = {"fashion_mnist_dir": str(tmp_path / "f")}
    with pytest.raises(ConfigError, match=r"^--data_option: fashion_mnist_dir=.* is not a dir"):
        check_paths(_config(tmp_path, data_options=options))
    mnli = dict(
        model="bert", dataset="glue/mnli", model_options={"handle": _saved_model(tmp_path / "bert")}
    )
    with pytest.raises(ConfigError, match=r"^--data_option: vocab_path=.*nope does not exist"):
        check_paths(_config(tmp_path, **mnli, data_options={"vocab_path": str(tmp_path / "nope")}))
    check_paths(_config(tmp_path, **mnli))


def test_bert_handle_is_local_unless_download(tmp_path):
    def bert(handle, **settings):
        return _config(
            tmp_path,
            model="bert",
            dataset="glue/mnli",
            model_options={"handle": handle},
            **settings,
        )

    passed = {"bert_handle", "model", "dataset"}
    cases = [
        (hub.PAPER_HANDLE, "is a URL, and tfbreak uses the network only with --download"),
        (str(tmp_path / "missing"), "does not exist"),
        (str(tmp_path), "holds no SavedModel"),
        (_saved_model(tmp_path / "novocab", vocab=False), "has no assets/vocab.txt"),
    ]
    for handle, problem in cases:
        with pytest.raises(ConfigError, match=f"^--bert_handle: .*{problem}.*bert_mnli.md") as info:
            check_paths(bert(handle), passed)
        assert "\n" not in str(info.value)
    check_paths(bert(hub.PAPER_HANDLE, download=True), passed)  # fetched through TF-Hub
    check_paths(bert(_saved_model(tmp_path / "ok")), passed)
    with pytest.raises(ConfigError, match="^--model_option: "):  # the flag the user used
        check_paths(bert(str(tmp_path / "missing")), {"model_option", "model", "dataset"})
    with pytest.raises(ConfigError, match=r"^--model: bert needs --bert_handle=DIR"):
        check_paths(_config(tmp_path, model="bert", dataset="glue/mnli"), {"model"})
    with pytest.raises(ConfigError, match="^--bert_handle: only --model=bert uses"):
        check_paths(_config(tmp_path, model_options={"handle": "x"}), {"bert_handle"})


def test_checks_never_import_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from tfbreak.config import ExperimentConfig\n"
        "from tfbreak.preflight import check_paths\n"
        f"c = ExperimentConfig.create(output_dir={str(tmp_path)!r}).validate({{'model'}})\n"
        "check_paths(c)\n"
        "sys.exit(1 if 'tensorflow' in sys.modules else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
