"""End-to-end: the installed `nasrun` and `nasrun-reproduce` commands, run as a user runs them."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO, TINY, read_jsonl, run_cli, run_dirs
from nasrun.rundir import RunDir
from nasrun.build import GROUPS


@pytest.mark.slow  # the whole default job (`make run`), ~30 s: `make test-slow`
def test_default_run_finds_an_accurate_architecture(tmp_path):
    result = run_cli([], cwd=tmp_path, fresh=True)  # a process of its own, as a user starts it: import warnings show
    assert result.returncode == 0, result.stderr
    (run,) = run_dirs(tmp_path)
    summary = json.loads(RunDir(run).summary.read_text())
    assert summary["trials"] == 8 and summary["failed_trials"] == 0
    assert summary["test"]["test_accuracy"] >= 0.97
    assert "best architecture, final test" in result.stderr
    scores = [t["metrics"]["val_accuracy"] for t in read_jsonl(RunDir(run).trials)]
    assert len(set(scores)) >= 6, f"the demo should show a search, not ties: {scores}"
    assert "warning" not in result.stderr.lower()
    plots = {p.name for p in RunDir(run).plots.iterdir()}
    assert {"best_so_far_trials.png", "best_so_far_time.png", "best_architecture.png"} <= plots


def test_run_directory_holds_everything_to_rebuild_the_winner(tmp_path):
    result = run_cli(TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run,) = run_dirs(tmp_path)
    assert {"config.yaml", "overrides.yaml", "hydra.yaml"} <= {p.name for p in (run / ".hydra").iterdir()}
    assert "trial 1" in RunDir(run).log.read_text()
    trials = read_jsonl(RunDir(run).trials)
    assert [t["id"] for t in trials] == [0, 1]
    assert {"id", "arch", "metrics", "status", "seconds", "error", "seed"} <= set(trials[0])
    summary = json.loads(RunDir(run).summary.read_text())
    for key in ("strategy", "search_space", "budget", "best_val_accuracy", "test", "wall_seconds", "versions", "seed"):
        assert key in summary
    assert summary["versions"]["torch"] == torch.__version__

    from nasrun.datasets.digits import Digits
    from nasrun.nets import load_network

    best = json.loads(RunDir(run).best.read_text())
    net = load_network(RunDir(run).best)
    net.load_state_dict(torch.load(RunDir(run).best_weights, weights_only=True))
    net.eval()
    test = Digits(eval_subset=OmegaConf.load(RunDir(run).config).dataset.eval_subset).load().test  # the run's
    accuracy = (net(test.images).argmax(1) == test.labels).float().mean().item()
    assert accuracy == pytest.approx(best["metrics"]["test_accuracy"], abs=1e-6)


@pytest.mark.parametrize("flag, expected", [("--help", "search_space"), ("--cfg job", "budget:"),
                                            ("--info searchpath", "pkg://nasrun.conf")])
def test_standard_hydra_flags(tmp_path, flag, expected):
    result = run_cli(flag.split(), cwd=tmp_path)
    assert result.returncode == 0 and expected in result.stdout
    assert not (tmp_path / "outputs").exists() or not run_dirs(tmp_path)


def test_help_says_what_each_group_is_for_and_lists_the_commands(tmp_path):
    import tomllib

    result = run_cli(["--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for group in (*GROUPS, "scale", "experiment"):
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{group} "))
        assert len(lines[start].split()) >= 4  # the group's name, then what it is for
        block = [lines[start], *itertools.takewhile(lambda line: line.startswith(" "), lines[start + 1:])]
        words = " ".join(block).replace(",", " ").split()
        for option in sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml")):
            assert option in words, (group, option)
    assert "scale/" not in result.stdout and "tiny_" not in result.stdout  # the internal scale/<group>/ configs
    for command in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]:
        if command != "nasrun":
            assert any(line.startswith(f"{command} ") for line in lines), command


# Runs `nasrun ARGS` in a fresh interpreter and says afterwards whether anything imported torch.
TORCH_PROBE = ("import sys\nfrom nasrun.commands.search import main\nsys.argv = ['nasrun', *sys.argv[1:]]\n"
               "try:\n    main()\nfinally:\n    print('torch imported:', 'torch' in sys.modules)")


@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"], ["strategy=darts", "--help"],
                                  ["search_space=nb201", "estimator=nb201", "strategy=random", "budget.trials=20"]])
def test_help_config_and_table_lookups_never_import_torch(tmp_path, args):
    """torch takes seconds to import: the commands that only show the config, and a search whose
    estimator is a table lookup, never load it."""
    search = not any(arg.startswith("--") for arg in args)
    extra = ["progress=false", f"hydra.run.dir={tmp_path}/run"] if search else []
    result = subprocess.run([sys.executable, "-c", TORCH_PROBE, *args, *extra], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout
    if search:
        summary = json.loads(RunDir(tmp_path / "run").summary.read_text())
        assert summary["trials"] == 20 and summary["device"] is None and summary["cpu_threads"] is None
        assert (RunDir(tmp_path / "run").plots / "best_architecture.png").is_file()


def test_sweep_runs_each_job_in_its_own_directory(tmp_path):
    result = run_cli(["-m", "seed=0,1", *TINY], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = run_dirs(tmp_path)
    assert len(runs) == 2 and runs[0].parent == runs[1].parent
    seeds = sorted(json.loads(RunDir(r).summary.read_text())["seed"] for r in runs)
    assert seeds == [0, 1]
    assert read_jsonl(RunDir(runs[0]).trials)[0]["arch"] != read_jsonl(RunDir(runs[1]).trials)[0]["arch"]


def test_hydra_mode_multirun_on_the_command_line_sweeps_without_dash_m(tmp_path):
    result = run_cli(["hydra.mode=MULTIRUN", "seed=0,1", "search_space=nb201", "estimator=nb201", "budget.trials=2",
                      "progress=false", "report=false", "tracker=none"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(RunDir(r).summary.read_text())["seed"] for r in run_dirs(tmp_path)) == [0, 1]


def test_reproduce_from_the_run_directory_alone_gives_identical_trials(tmp_path):
    assert run_cli([*TINY, "seed=5"], cwd=tmp_path).returncode == 0
    (run,) = run_dirs(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli([str(run), "--check", "--no-progress"], cwd=elsewhere, command="nasrun-reproduce")
    assert result.returncode == 0, result.stderr
    assert "identical trials" in result.stdout + result.stderr
    (again,) = run_dirs(elsewhere)
    assert read_jsonl(RunDir(again).trials)[0]["metrics"] == read_jsonl(RunDir(run).trials)[0]["metrics"]


def test_reproduce_refuses_a_config_that_names_code_outside_the_package(tmp_path):
    assert run_cli(TINY, cwd=tmp_path).returncode == 0
    (run,) = run_dirs(tmp_path)
    config = RunDir(run).config
    config.write_text(config.read_text().replace("nasrun.strategies.random_search.RandomSearch", "os.system"))
    before = sorted(p.name for p in run.iterdir())
    result = run_cli([str(run)], cwd=tmp_path, command="nasrun-reproduce")
    assert result.returncode == 2 and "outside the nasrun package" in result.stderr
    assert "Traceback" not in result.stderr and sorted(p.name for p in run.iterdir()) == before


BAD_INPUTS = [
    (["strategy=nope"], "unknown strategy 'nope'"),
    (["budget.trials=abc"], "budget.trials must be a positive integer"),
    (["budget.trials=-3"], "budget.trials must be a positive integer"),
    (["budget.trials=0"], "budget.trials must be a positive integer"),
    (["seed=-1"], "seed must be a non-negative integer"),
    (["estimator.epochs=0"], "must be positive"),
    (["search_space.widths=5"], "widths must be a list"),
    (["dataset=cifar10"], "cifar-10-batches-py"),
    (["dataset=imagefolder"], "train"),
    (["hardware.device=tpu"], "hardware.device must be"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_clear_line_and_a_non_zero_exit(tmp_path, args, message):
    result = run_cli([*args, "progress=false"], cwd=tmp_path, env={"NASRUN_DATA_DIR": str(tmp_path / "none")})
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1, result.stderr
    assert not list((tmp_path / "outputs").rglob("summary.json"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    result = run_cli(["hardware=cuda", "progress=false"], cwd=tmp_path)
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr and "Traceback" not in result.stderr


def test_debug_flag_shows_the_full_traceback(tmp_path):
    result = run_cli(["budget.trials=0", "debug=true"], cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.slow  # builds and installs the package (pip): `make test-slow`
def test_non_editable_install_finds_its_configs_from_any_directory(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                            "--target", str(target), str(REPO)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    assert (target / "nasrun" / "conf" / "strategy" / "random.yaml").is_file()
    assert (target / "nasrun" / "conf" / "experiment" / "darts_cifar10.yaml").is_file()  # the recipes too
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-m", "nasrun", "--cfg", "job"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "nasrun.spaces.macro.MacroSpace" in result.stdout
    tiny = subprocess.run([sys.executable, "-m", "nasrun", "scale=tiny", "strategy=darts", "--cfg", "job"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)  # conf/scale/<group>/ is installed too
    assert tiny.returncode == 0, tiny.stderr
    assert "trials: 2" in tiny.stdout and "steps_per_epoch: 2" in tiny.stdout
    help_text = subprocess.run([sys.executable, "-m", "nasrun", "--help"], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=120)  # the help template is installed too
    assert help_text.returncode == 0 and "nasrun-export RUN_DIR" in help_text.stdout, help_text.stderr
    probe = subprocess.run([sys.executable, "-c", "import nasrun.conf; print(nasrun.conf.__path__[0])"], cwd=tmp_path,
                           env=env, capture_output=True, text=True)
    assert Path(probe.stdout.strip()).is_relative_to(target)


def test_the_result_table_shows_fidelity_and_objectives_whole_at_80_columns(tmp_path):
    objectives = "objectives=[{metric:val_accuracy},{metric:latency_ms,direction:min,weight:0.5}]"
    result = run_cli([*TINY, "strategy=hyperband", "budget.trials=4", objectives], tmp_path, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    lines = result.stderr.splitlines()
    header = next(line for line in lines if "rank" in line)
    for column in ("trial", "epochs", "fitness", "val_accuracy", "latency_ms", "params", "seconds"):
        assert f" {column} " in header
    assert "fitness = val_accuracy - 0.5·latency_ms/10" in result.stderr
    assert "…" not in result.stderr
    for trial in read_jsonl(RunDir(run).trials):  # 4 trials: every one is in the top-5 table
        row = next(line for line in lines if line.startswith("│") and line.split("│")[2].strip() == str(trial["id"]))
        cells = [cell.strip() for cell in row.split("│")[1:-1]]
        metrics = trial["metrics"]
        assert cells[2:7] == [str(trial["fidelity"]), f"{metrics['fitness']:.4f}", f"{metrics['val_accuracy']:.4f}",
                              f"{metrics['latency_ms']:.4f}", f"{metrics['params']:,}"]
