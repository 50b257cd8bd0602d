"""The flagfiles of configs/: one per (model, data set) pair runs end to end, shrunk (tfds mock
data, a few steps), and leaves a valid run directory (Fashion-MNIST configs use the real Debian
data, offline); every flagfile, as shipped, parses into valid configurations for each of its
sweep values."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow_datasets as tfds
from absl import flags
from tiny_hub import export_tiny_bert

from tfbreak import flags as tfflags
from tfbreak.runs import load_run, names
from tfbreak.training.trainer import Trainer
from tfbreak.validation import ConfigError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.flags"))
SHRINK = [
    "--max_steps=2",
    "--batch_size=8",
    "--measure_dense_every=1",
    "--hessian_sample_size=8",
    "--hessian_batch_size=8",
    "--k_L=3",
    "--k_M=2",
    "--eval_subset=8",
    "--top_k=2",
    "--lanczos_max_iter=4",
    "--progress=false",
]
SMALL_MODEL = {"resnet32": ["--model_option=blocks_per_stage=1"]}
"""ResNet-32's code path at ResNet-8 depth (the blocks are built by one loop)."""
SMALL_DATA = {
    "imagenet2012": ["--data_option=image_size=32", "--data_option=resize_size=36"],
    "imdb_reviews": [
        "--data_option=vocab_size=200",
        "--data_option=sequence_length=12",
        "--model_option=vocab_size=200",
    ],
}


END_TO_END = (
    "bert_mnli",
    "densenet121_imagenet",
    "lstm_imdb",
    "quickstart",
    "resnet32_cifar10",
    "simple_cnn_bn_cifar10",
    "simple_cnn_cifar10",
    "simple_cnn_fashion_mnist",
)
"""The flagfiles run end to end: one per (model, data set) pair of configs/."""


def test_there_is_a_config_per_paper_experiment():
    stems = {p.stem for p in CONFIGS}
    for needed in (
        "quickstart",
        "simple_cnn_cifar10",
        "simple_cnn_bn_cifar10",
        "resnet32_cifar10",
        "lstm_imdb",
        "bert_mnli",
        "densenet121_imagenet",
        "mlp_fashion_mnist",
        "simple_cnn_fashion_mnist",
        "simple_cnn_momentum",
        "simple_cnn_lr_decay",
    ):
        assert needed in stems


@pytest.fixture(scope="module")
def bert_handle(tmp_path_factory):
    return export_tiny_bert(tmp_path_factory.mktemp("hub"))


def parse(config: Path, extra: list[str]):
    """The configurations of `config` with `extra` flags after it."""
    fl = flags.FLAGS
    fl.unparse_flags()
    fl(["tfbreak", f"--flagfile={config}", *extra])
    base = tfflags.config_from_flags()
    runs = tfflags.sweep_configs(base, tfflags.parse_sweep(fl.sweep))
    fl.unparse_flags()
    return runs


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_as_shipped_is_valid(config, tmp_path):
    runs = parse(config, [f"--output_dir={tmp_path}"])
    assert runs
    for cfg, _ in runs:
        assert cfg.validate() is cfg


def test_the_end_to_end_configs_cover_every_model_and_data_set_pair(tmp_path):
    pairs = {}
    for config in CONFIGS:
        cfg, _ = parse(config, [f"--output_dir={tmp_path}"])[0]
        pairs.setdefault((cfg.model, cfg.dataset), []).append(config.stem)
    for pair, stems in pairs.items():
        assert set(stems) & set(END_TO_END), pair


@pytest.mark.slow
@pytest.mark.parametrize(
    "config", [c for c in CONFIGS if c.stem in END_TO_END], ids=lambda p: p.stem
)
def test_config_runs_shrunk(config, tmp_path, bert_handle, capsys, monkeypatch):
    extra = [f"--output_dir={tmp_path}"]
    text = config.read_text()
    if "--model=bert" in text:
        extra.append(f"--bert_handle={bert_handle}")
    for dataset, options in SMALL_DATA.items():
        if f"--dataset={dataset}" in text:
            extra += options
    for model, options in SMALL_MODEL.items():
        if f"--model={model}\n" in text:
            extra += options
    runs = parse(config, SHRINK + extra)
    cfg, sweep = runs[0]  # the first value of the sweep
    assert cfg.validate() is cfg
    if cfg.dataset == "fashion_mnist":
        result = Trainer(cfg, progress=False).run(sweep=sweep)
    else:
        with tfds.testing.mock_data(num_examples=64):
            result = Trainer(cfg, progress=False).run(sweep=sweep)
    assert result.status == "completed", result.reason
    # The start-up memory budget (docs/memory.md): printed and in the metadata.
    assert "tfbreak: memory: D = " in capsys.readouterr().err
    run = load_run(result.run_dir)
    assert run.status == "completed"
    assert run.metadata["memory_budget"]
    assert run.metadata["model"] == cfg.model
    kinds = [r["kind"] for r in run.rows]
    assert kinds.count("measurement") == 3  # steps 0, 1, 2
    if "K" in cfg.measure.measurements:
        steps, _, lam = run.series(names.K_LAMBDA_1)
        assert list(steps) == [0, 1, 2] and (lam > 0).all()
    if "hessian" in cfg.measure.measurements:
        assert len(run.series(names.HESSIAN_LAMBDA_1)[0]) == 3
    assert (result.run_dir / "checkpoints" / "checkpoint").is_file()
    assert run.array_steps() == [0, 1, 2]
    if cfg.model == "bert":  # a setting that cannot fit is refused in one line, nothing written
        monkeypatch.setenv("TFBREAK_MEMORY_LIMIT", "1M")
        small = parse(config, SHRINK + extra[1:] + [f"--output_dir={tmp_path / 'small'}"])[0][0]
        with (
            tfds.testing.mock_data(num_examples=64),
            pytest.raises(ConfigError, match="^--[a-z_]+: .* needs about ") as info,
        ):
            Trainer(small, progress=False).run()
        assert "\n" not in str(info.value) and not (tmp_path / "small").exists()
