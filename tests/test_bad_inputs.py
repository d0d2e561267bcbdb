"""Bad input to every command: a non-zero exit, one line naming the bad thing, no traceback, and every file
of the run directory it was pointed at byte-identical afterwards."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from fake_data import write_cifar10
from nasrun.rundir import RunDir

TABULAR = ["search_space=nb201", "estimator=nb201", "budget.trials=3", "progress=false"]
FOREIGN = ["os.system", "builtins.eval", "nasrun.rundir.os.makedirs", "nasrun.commands.search.os.getcwd",
           "nasrun.rundir.torch.load", "nasrun.run.runner.Path", "nasrun.rundir.RunDir"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One finished tabular run, copied per test."""
    root = tmp_path_factory.mktemp("bad_inputs")
    result = run_cli([*TABULAR, f"hydra.run.dir={root / 'run'}"], root)
    assert result.returncode == 0, result.stderr
    return root / "run"


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(result, *fragments: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def tamper(run: Path, change) -> None:
    config = RunDir(run).config
    config.write_text(change(config.read_text()))


def check_refused(run: Path, command: str, args: list[str], *fragments: str) -> None:
    """Run a command on `run`; its error names `fragments`, and nothing in `run` changed."""
    before = digests(run)
    result = run_cli([*args], run.parent, command=command)
    assert_one_line_error(result, *fragments)
    assert digests(run) == before


# --- nasrun: overrides ----------------------------------------------------------------------------------
@pytest.mark.parametrize("override, fragment", [
    ("strategy=nope", "unknown strategy 'nope'"),
    ("budget.trials=0", "budget.trials"),
    ("budget.trials=abc", "budget.trials"),
    ("seed=-1", "seed"),
    ("budget.seconds=-5", "budget.seconds"),
    ("objectives=[{metric:bogus,direction:max}]", "bogus"),
    ("objectives=[{metric:val_accuracy,direction:up}]", "direction"),
    ("objectives=5", "objectives"),
    ("constraints=[1]", "constraints"),
    ("constraints={params:{max:abc}}", "constraints.params.max"),
    ("metrics.enabled=energy", "metrics.enabled"),
    ("metrics.enabled=[energy]", "energy"),
    ("hardware.threads=0", "hardware.threads"),
    ("estimator.dataset=mnist", "mnist"),
    ("report=maybe", "report must be true or false"),
    ("final_test=1", "final_test must be true or false"),
])
def test_nasrun_refuses_bad_values_in_one_line(tmp_path, override, fragment):
    result = run_cli([*TABULAR, override], tmp_path)
    assert_one_line_error(result, fragment)
    assert not list(tmp_path.rglob("trials.jsonl"))


@pytest.mark.parametrize("target", FOREIGN)
def test_nasrun_refuses_foreign_targets_from_the_command_line(tmp_path, target):
    result = run_cli([*TABULAR, f"estimator._target_={target}"], tmp_path)
    assert_one_line_error(result, "estimator._target_", target)


def test_nasrun_refuses_a_target_interpolated_into_a_group(tmp_path):
    result = run_cli([*TABULAR, "+evil={_target_:os.getcwd}", "+estimator.helper=${evil}"], tmp_path)
    assert_one_line_error(result, "os.getcwd")


def test_a_sweep_with_a_foreign_target_stops_in_one_line(tmp_path):
    result = run_cli(["-m", *TABULAR, "seed=0,1", "estimator._target_=builtins.eval"], tmp_path)
    assert_one_line_error(result, "builtins.eval")


def test_missing_dataset_names_the_file_and_where_to_put_it(tmp_path):
    result = run_cli(["dataset=cifar10", f"dataset.root={tmp_path / 'none'}", "budget.trials=1", "progress=false"],
                     tmp_path)
    assert_one_line_error(result, "cifar-10-batches-py", "dataset.root")


def test_corrupt_dataset_file_is_one_line(tmp_path):
    write_cifar10(tmp_path / "data")
    (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    result = run_cli(["dataset=cifar10", f"dataset.root={tmp_path / 'data'}", "dataset.verify=false",
                      "budget.trials=1", "progress=false"], tmp_path)
    assert_one_line_error(result, "data_batch_3")


# --- commands on a shared run directory ----------------------------------------------------------------------
@pytest.mark.parametrize("command", ["nasrun-reproduce", "nasrun-resume", "nasrun-benchmark"])
@pytest.mark.parametrize("target", ["os.system", "nasrun.rundir.os.makedirs", "nasrun.commands.search.os.getcwd"])
def test_a_shared_config_naming_foreign_code_is_refused_by_every_command(run, command, target):
    tamper(run, lambda text: text.replace("nasrun.estimators.nb201.NB201Tabular", target))
    check_refused(run, command, [str(run)], target)


@pytest.mark.parametrize("command", ["nasrun-reproduce", "nasrun-benchmark"])
@pytest.mark.parametrize("snippet, fragment", [
    ("evil:\n  _target_: os.getcwd\n", "evil._target_"),                      # unused, still refused
    ("objectives:\n- metric: val_accuracy\n  _target_: builtins.eval\n", "objectives[0]._target_"),  # in a list
])
def test_foreign_targets_in_other_keys_interpolations_and_lists_are_refused(run, command, snippet, fragment):
    tamper(run, lambda text: text.split("\nobjectives:")[0] + "\n" + snippet if "objectives" in snippet
           else text + snippet)
    check_refused(run, command, [str(run)], fragment)


@pytest.mark.parametrize("command", ["nasrun-reproduce", "nasrun-resume", "nasrun-benchmark"])
def test_a_target_interpolated_from_another_key_is_refused(run, command):
    tamper(run, lambda text: text.replace("nasrun.estimators.nb201.NB201Tabular", "${evil.code}") +
           "evil:\n  code: os.getcwd\n")
    check_refused(run, command, [str(run)], "estimator._target_", "os.getcwd")


def test_nested_foreign_target_inside_a_group_is_refused(run):
    tamper(run, lambda text: text.replace("  name: nb201\n", "  name: nb201\n  helper:\n    _target_: os.getcwd\n", 1))
    check_refused(run, "nasrun-reproduce", [str(run)], "os.getcwd")


@pytest.mark.parametrize("command", ["nasrun-reproduce", "nasrun-resume", "nasrun-benchmark"])
def test_a_corrupt_saved_config_is_one_line(run, command):
    RunDir(run).config.write_text("seed: [unclosed\n")
    check_refused(run, command, [str(run)], "config.yaml")


@pytest.mark.parametrize("command", ["nasrun-reproduce", "nasrun-resume", "nasrun-benchmark", "nasrun-export"])
def test_a_folder_that_is_no_run_is_one_line(tmp_path, command):
    (tmp_path / "empty").mkdir()
    result = run_cli([str(tmp_path / "empty")], tmp_path, command=command)
    assert_one_line_error(result, "empty")


def test_resume_with_a_corrupt_middle_trial_line_names_the_line(run):
    RunDir(run).summary.unlink()
    lines = RunDir(run).trials.read_text().splitlines()
    lines[1] = lines[1][:15]
    RunDir(run).trials.write_text("\n".join(lines) + "\n")
    check_refused(run, "nasrun-resume", [str(run)], "line 2")


def test_resume_with_a_corrupt_runner_checkpoint_names_it(run):
    RunDir(run).summary.unlink()
    RunDir(run).runner_state.write_text('{"version": 1, "strat')
    check_refused(run, "nasrun-resume", [str(run)], "runner.json")


def test_resume_takes_no_other_overrides(run):
    check_refused(run, "nasrun", [f"resume={run}", "seed=3"], "resume=RUN_DIR")


def test_benchmark_of_a_run_without_a_front_says_so(run):
    check_refused(run, "nasrun-benchmark", [str(run), "--pareto"], "pareto.json")


def test_benchmark_rejects_a_bad_number_list(run):
    before = digests(run)
    result = run_cli([str(run), "--sigmas", "a,b"], run.parent, command="nasrun-benchmark")
    assert result.returncode == 2 and "comma-separated numbers" in result.stderr and "Traceback" not in result.stderr
    assert digests(run) == before


def test_export_with_a_corrupt_checkpoint_names_it(run):
    best = json.loads(RunDir(run).best.read_text())
    weights = run / "weights.pt"
    weights.write_bytes(b"\x00garbage")
    check_refused(run, "nasrun-export", [str(RunDir(run).best), "--weights", str(weights),
                                         "--out", str(run.parent / "export")], "weights.pt")
    assert best["space"] == "nb201"


@pytest.mark.parametrize("content, fragment", [("{not json", "architecture JSON"), ('{"arch": 1}', "lacks")])
def test_train_and_export_refuse_a_corrupt_architecture_json(tmp_path, content, fragment):
    spec = tmp_path / "arch.json"
    spec.write_text(content)
    for command in ("nasrun-train", "nasrun-export"):
        result = run_cli([str(spec), *(["--weights", str(spec)] if command == "nasrun-export" else [])], tmp_path,
                         command=command)
        assert_one_line_error(result, fragment)


def test_train_refuses_an_unknown_recipe_key(run):
    check_refused(run, "nasrun-train", [str(run), "bogus_key=1"], "bogus_key")


def test_compare_of_a_folder_without_runs_is_one_line(tmp_path):
    result = run_cli([str(tmp_path)], tmp_path, command="nasrun-compare")
    assert_one_line_error(result, str(tmp_path))


def test_compare_with_a_corrupt_summary_names_it(run):
    RunDir(run).summary.write_text("{cut")
    check_refused(run, "nasrun-compare", [str(run.parent)], "summary.json")


def test_report_of_a_folder_without_trials_is_one_line(tmp_path):
    result = run_cli([str(tmp_path)], tmp_path, command="nasrun-report")
    assert_one_line_error(result, "trials.jsonl")


@pytest.mark.parametrize("args, fragment", [(["search_space=nope"], "nope"), (["--min-seconds", "x"], "min-seconds")])
def test_latency_table_refuses_bad_arguments(tmp_path, args, fragment):
    result = run_cli(args, tmp_path, command="nasrun-latency-table")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and fragment in output and "Traceback" not in output
    assert not (tmp_path / "latency_table.json").exists()


def test_an_install_hint_keeps_its_brackets(tmp_path):
    """rich reads `[tpe]` as markup unless messages are printed as is."""
    result = run_cli([*TABULAR, "strategy=tpe", "tracker=none", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path,
                     missing=("optuna",))  # without optuna the default tracker=optuna is refused first
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "nasrun: error: strategy=tpe needs optuna: pip install 'nasrun[tpe]'"
