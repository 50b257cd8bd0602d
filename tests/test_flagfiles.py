"""The experiment flagfiles resolve by name from any directory (`--config=NAME`, or a
`--flagfile=configs/NAME.flags` that does not exist where the command runs), are listed by
--list_configs, and --help shows the main flags; a bad line of a flagfile is named by its file
and line number."""

import shutil
import subprocess

import pytest

from tfbreak import flagfiles


def test_config_becomes_the_packaged_flagfile_and_later_flags_follow_it():
    path = flagfiles.config_dir() / "quickstart.flags"
    assert path.is_file()
    assert flagfiles.expand(["--config=quickstart", "--lr=0.1"]) == [
        f"--flagfile={path}",
        "--lr=0.1",
    ]
    assert flagfiles.expand(["--config", "quickstart"]) == [f"--flagfile={path}"]


def test_a_missing_flagfile_path_falls_back_to_the_packaged_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    path = flagfiles.config_dir() / "mlp_fashion_mnist.flags"
    assert flagfiles.expand(["--flagfile=configs/mlp_fashion_mnist.flags"]) == [
        f"--flagfile={path}"
    ]
    own = tmp_path / "mine.flags"
    own.write_text("--lr=0.1\n")
    assert flagfiles.expand([f"--flagfile={own}"]) == [f"--flagfile={own}"]
    assert flagfiles.expand(["--flagfile", str(own)]) == [f"--flagfile={own}"]
    with pytest.raises(ValueError, match=r"^--flagfile: nowhere.flags is not a file, nor the "):
        flagfiles.expand(["--flagfile=nowhere.flags"])


def test_arguments_name_the_flagfile_line_of_each_flag(tmp_path):
    inner = tmp_path / "inner.flags"
    inner.write_text("--k_L=4\n")
    outer = tmp_path / "outer.flags"
    outer.write_text(f"# comment\n// comment\n--lr=0.1\n\n  --seed=3  \n--flagfile={inner}\n")
    assert list(flagfiles.arguments(["--model=mlp", f"--flagfile={outer}", "--lr=1"])) == [
        ("--model=mlp", None),
        ("--lr=0.1", f"{outer} line 3"),
        ("--seed=3", f"{outer} line 5"),
        (f"--flagfile={inner}", f"{outer} line 6"),
        ("--k_L=4", f"{inner} line 1"),
        ("--lr=1", None),
    ]


def test_unknown_config_names_the_flag_and_the_choices():
    with pytest.raises(
        ValueError, match=r"--config: no experiment flagfile named 'nope'.*quickstart"
    ):
        flagfiles.expand(["--config=nope"])


def test_every_shipped_flagfile_is_listed_with_its_description():
    names = flagfiles.list_configs()
    assert {"quickstart", "bert_mnli", "simple_cnn_cifar10"} <= set(names)
    assert flagfiles.description("quickstart").startswith("Offline quickstart")
    assert all(0 < len(flagfiles.description(n)) <= 90 for n in names)


def test_cli_lists_configs_and_explains_a_bad_name(run_cli, tmp_path):
    listed = run_cli("--list_configs")
    assert listed.returncode == 0, listed.stderr
    assert "quickstart" in listed.stdout and "Offline quickstart" in listed.stdout
    bad = run_cli("--config=nope", f"--output_dir={tmp_path}")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        line
        for line in bad.stderr.strip().splitlines()
        if line.startswith("tfbreak: error: --config")
    ]
    assert not any(tmp_path.iterdir())


def test_help_shows_the_main_flags_and_exits_0(run_cli, cli):
    console_script = shutil.which("tfbreak")  # its main module is not tfbreak.main
    shown = [run_cli("--help"), run_cli("-h")]
    if console_script:
        shown.append(subprocess.run([console_script, "--help"], capture_output=True, text=True))
    for out in shown:
        assert out.returncode == 0, out.stderr
        for flag in ("--config", "--list_configs", "--lr", "--max_steps", "--hessian_target_error"):
            assert flag in out.stdout, flag
    assert cli("--helpfull").returncode == 0  # absl's, defined by app.run
