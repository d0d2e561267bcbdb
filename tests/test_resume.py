"""Resume: a search killed anywhere continues in the same run dir and ends exactly as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from nasrun.rundir import RunDir, load_checkpoint
from nasrun.state import TrainingState
from nasrun.datasets.digits import Digits
from nasrun.errors import CheckpointError
from nasrun.estimators.full_training import FullTraining
from nasrun.executors.local import LocalExecutor
from nasrun.experiment import run_experiment
from nasrun.hardware import Hardware
from nasrun.records import TrialLog
from nasrun.commands.reproduce import TIMING_METRICS, comparable
from nasrun.commands.resume import resume_run
from nasrun.run.checkpoint import RunCheckpoint
from nasrun.run.runner import Budget, Experiment, Runner
from nasrun.spaces.macro import MacroSpace
from nasrun.strategies import OneShotStrategy
from nasrun.strategies.random_search import RandomSearch
from conftest import DIGITS_SUBSETS, SMALL_DIGITS, compose_config, run_cli, write_run_config

SEARCH = ["budget.trials=4", "estimator.epochs=1", "search_space.min_layers=2", "search_space.max_layers=3",
          "progress=false", "seed=3", *SMALL_DIGITS]


class Crash(BaseException):
    """Stands in for SIGKILL inside one process: nothing after the raise point runs."""


def crash_on_call(monkeypatch, owner, name: str, call: int) -> None:
    """Make `owner.name` raise Crash on its `call`-th call (1-based)."""
    original, calls = getattr(owner, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise Crash(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def start_run(cfg, run_dir: Path) -> None:
    write_run_config(run_dir, cfg)
    run_experiment(cfg, run_dir, show_progress=False)


def outcome(run_dir: Path) -> dict:
    """What must not depend on a crash: trial records (timings aside), the best architecture, its weights."""
    best = json.loads(RunDir(run_dir).best.read_text())
    best["metrics"] = {k: v for k, v in best["metrics"].items() if k not in TIMING_METRICS}
    weights = load_checkpoint(RunDir(run_dir).best_weights)
    summary = json.loads(RunDir(run_dir).summary.read_text())
    return {"trials": [comparable(t) for t in TrialLog(RunDir(run_dir).trials).read()],
            "best": best, "test": summary["test"], "best_trial": summary["best_trial"],
            "weights": {k: v.tolist() for k, v in weights.items()}}  # every value, exactly


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cfg = compose_config(SEARCH)
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    start_run(cfg, run_dir)
    return cfg, outcome(run_dir)


CRASH_POINTS = {
    "mid-trial": (FullTraining, "evaluate", 3),                # while trial 2 trains
    "recorded-not-told": (RandomSearch, "tell", 2),            # trial 1 logged, never told
    "told-not-checkpointed": (RunCheckpoint, "save", 3),      # trial 1 told, trial 2 asked, no checkpoint
    "before-final-checkpoint": (RunCheckpoint, "save", 5),    # all 4 trials done, last one unconfirmed
    "best-json-written-weights-not": ("nasrun.run.observers.save_checkpoint", None, 2),
    "final-test": (FullTraining, "test", 1),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_crash_then_resume_equals_uninterrupted_run(point, reference, tmp_path, monkeypatch):
    cfg, expected = reference
    owner, name, call = CRASH_POINTS[point]
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        if name is None:
            module, name = owner.rsplit(".", 1)
            owner = sys.modules[module]
        crash_on_call(patch, owner, name, call)
        with pytest.raises(Crash):
            start_run(cfg, run_dir)
    assert not RunDir(run_dir).summary.exists()
    evaluated = []
    original = FullTraining.evaluate
    monkeypatch.setattr(FullTraining, "evaluate", lambda self, arch, seed, report=None: evaluated.append(seed)
                        or original(self, arch, seed, report))
    resume_run(run_dir, show_progress=False)
    assert outcome(run_dir) == expected
    done_before = len(TrialLog(RunDir(run_dir).trials).read()) - len(set(evaluated))
    assert done_before >= {"mid-trial": 2, "final-test": 4}.get(point, 1)   # finished trials are not re-run


def test_resume_of_finished_run_changes_nothing(reference, tmp_path):
    cfg, _ = reference
    run_dir = tmp_path / "run"
    start_run(cfg, run_dir)
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    assert resume_run(run_dir, show_progress=False) is None
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before
    result = run_cli([str(run_dir), "--no-progress"], tmp_path, command="nasrun-resume")
    assert result.returncode == 0 and "already finished" in result.stderr
    result = run_cli([f"resume={run_dir}", "progress=false"], tmp_path)
    assert result.returncode == 0 and "already finished" in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_truncated_runner_checkpoint_is_a_clear_error(reference, tmp_path, monkeypatch):
    cfg, _ = reference
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        crash_on_call(patch, FullTraining, "evaluate", 3)
        with pytest.raises(Crash):
            start_run(cfg, run_dir)
    path = RunDir(run_dir).runner_state
    path.write_text(path.read_text()[:200])
    with pytest.raises(CheckpointError, match="runner.json"):
        resume_run(run_dir, show_progress=False)
    result = run_cli([str(run_dir)], tmp_path, command="nasrun-resume")
    assert result.returncode == 2 and "runner.json" in result.stderr and "Traceback" not in result.stderr
    assert not RunDir(run_dir).summary.exists()


def test_truncated_best_weights_are_a_clear_error(reference, tmp_path, monkeypatch):
    cfg, _ = reference
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        crash_on_call(patch, FullTraining, "test", 1)
        with pytest.raises(Crash):
            start_run(cfg, run_dir)
    weights = RunDir(run_dir).best_weights
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="best_model.pt"):
        resume_run(run_dir, show_progress=False)


def test_torn_last_line_is_cut_and_trial_rerun(reference, tmp_path, monkeypatch):
    cfg, expected = reference
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        crash_on_call(patch, FullTraining, "evaluate", 3)
        with pytest.raises(Crash):
            start_run(cfg, run_dir)
    with open(RunDir(run_dir).trials, "a") as log:   # trial 2 half-written when the process died
        log.write('{"id": 2, "arch": {"stem": 16, "lay')
    resume_run(run_dir, show_progress=False)
    assert outcome(run_dir) == expected


# --- the ask journal: runner.json rewritten at most every FULL_SAVE_SECONDS ---------------------------------
TABULAR = ["search_space=nb201", "estimator=nb201", "budget.trials=40", "progress=false", "report=false", "seed=4"]


def tabular_trials(run_dir: Path) -> list[dict]:
    return [comparable(t) for t in TrialLog(RunDir(run_dir).trials).read()]


@pytest.mark.parametrize("strategy", ["random", "regularized_evolution", "local_search", "tpe"])
def test_a_run_killed_between_rewrites_of_its_checkpoint_replays_the_journal(strategy, compose_cfg, tmp_path,
                                                                              monkeypatch):
    """With runner.json written only at the first ask, every later ask is a journal line; a crash after 25
    trials resumes by replaying them, and the search ends as the uninterrupted one did."""
    from nasrun.estimators.nb201 import NB201Tabular
    from nasrun.run import checkpoint

    cfg = compose_cfg([f"strategy={strategy}", *TABULAR])
    start_run(cfg, tmp_path / "reference")
    monkeypatch.setattr(checkpoint, "FULL_SAVE_SECONDS", 1e9)
    with monkeypatch.context() as patch:
        crash_on_call(patch, NB201Tabular, "evaluate", 26)
        with pytest.raises(Crash):
            start_run(cfg, tmp_path / "run")
    journal = RunDir(tmp_path / "run").runner_journal
    assert len(journal.read_text().splitlines()) == 25  # asks 2..26: the state of ask 1 is in runner.json
    resume_run(tmp_path / "run", show_progress=False)
    assert tabular_trials(tmp_path / "run") == tabular_trials(tmp_path / "reference")
    assert not journal.exists()  # the finished run's runner.json holds every ask
    assert json.loads(RunDir(tmp_path / "run").runner_state.read_text())["asks"] == 40


def test_a_journal_the_strategy_does_not_replay_is_a_clear_error(compose_cfg, tmp_path, monkeypatch):
    from nasrun.estimators.nb201 import NB201Tabular
    from nasrun.run import checkpoint

    monkeypatch.setattr(checkpoint, "FULL_SAVE_SECONDS", 1e9)
    with monkeypatch.context() as patch:
        crash_on_call(patch, NB201Tabular, "evaluate", 10)
        with pytest.raises(Crash):
            start_run(compose_cfg(["strategy=random", *TABULAR]), tmp_path / "run")
    journal = RunDir(tmp_path / "run").runner_journal
    lines = journal.read_text().splitlines()
    event = json.loads(lines[3])
    event["jobs"][0]["arch"] = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    journal.write_text("\n".join([*lines[:3], json.dumps(event), *lines[4:]]) + "\n")
    with pytest.raises(CheckpointError, match="runner_journal.jsonl.*other architectures than at ask 5"):
        resume_run(tmp_path / "run", show_progress=False)
    assert not RunDir(tmp_path / "run").summary.exists()


# --- SIGKILL in a real process -------------------------------------------------------------------------
KILL_SEARCH = ["budget.trials=3", "estimator.epochs=3", "search_space.min_layers=2", "search_space.max_layers=3",
               "progress=false", "report=false", "seed=5", "hardware=cpu", "hardware.threads=1"]


def trial_lines(run_dir: Path) -> int:
    path = RunDir(run_dir).trials
    return path.read_text().count("\n") if path.exists() else 0


def kill_when(run_dir: Path, lines: int, delay: float, cwd: Path) -> None:
    """Start a search and SIGKILL it `delay` seconds after trials.jsonl reaches `lines` lines."""
    executable = str(Path(sys.executable).with_name("nasrun"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([executable, *KILL_SEARCH, f"hydra.run.dir={run_dir}"], cwd=cwd, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while trial_lines(run_dir) < lines and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.slow  # a fresh run per kill point: `make test-slow`
@pytest.mark.slow
def test_sigkill_at_several_points_then_resume(tmp_path):
    reference = tmp_path / "reference"
    assert run_cli([*KILL_SEARCH, f"hydra.run.dir={reference}"], tmp_path).returncode == 0
    resumed = 0
    for name, lines, delay in (("between-trials", 1, 0.0), ("during-a-trial", 2, 0.1)):
        run_dir = tmp_path / name
        kill_when(run_dir, lines, delay, tmp_path)
        if RunDir(run_dir).summary.exists():
            continue  # finished before the kill landed: nothing to resume
        resumed += 1
        if name == "between-trials":
            result = run_cli([str(run_dir), "--no-progress"], tmp_path, command="nasrun-resume")
        else:
            result = run_cli([f"resume={run_dir}", "progress=false"], tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert outcome(run_dir) == outcome(reference), name
    assert resumed, "no kill landed before the search finished"


# --- one-shot searches ---------------------------------------------------------------------------------
class ToyOneShot(OneShotStrategy):
    """Trains a linear 'supernet' and a vector of α for `epochs`, saving its state after every epoch."""

    def __init__(self, epochs: int = 4, crash_after: int | None = None, pause: float = 0.0):
        self.epochs, self.crash_after, self.pause = epochs, crash_after, pause
        self.epochs_trained = 0

    def search(self, context):
        decisions = self.space.decisions()
        width = max(len(d.choices) for d in decisions)
        torch.manual_seed(context.seed)
        model = nn.Linear(64, 10)
        alphas = torch.zeros(len(decisions), width, requires_grad=True)
        optimizer = torch.optim.SGD([*model.parameters(), alphas], lr=0.1, momentum=0.9)
        noise = torch.Generator().manual_seed(context.seed)
        start = 1
        state = context.load_state()
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            with torch.no_grad():
                alphas.copy_(state["alphas"])
            noise.set_state(state["noise"])
            start = state["epoch"] + 1
        for epoch in range(start, self.epochs + 1):
            for x, y in context.data.loader("train", 256, shuffle=True, seed=epoch):
                mix = (alphas * torch.randn(alphas.shape, generator=noise)).sum()
                loss = nn.functional.cross_entropy(model(x.flatten(1)), y) + 0.01 * mix ** 2
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            self.epochs_trained += 1
            context.save_state({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "alphas": alphas.detach().clone(), "noise": noise.get_state()})
            if epoch == self.crash_after:
                raise Crash("supernet")
            time.sleep(self.pause)  # room for a SIGKILL between epochs
        choice = alphas.detach().argmax(1).tolist()
        return self.space.decode([min(c, len(d.choices) - 1) for c, d in zip(choice, decisions)]), 0.5 * self.epochs


def one_shot_runner(run_dir: Path, strategy, resume: bool = False) -> Runner:
    space = MacroSpace(min_layers=2, max_layers=3)
    experiment = Experiment(space, strategy, FullTraining(epochs=1), LocalExecutor(), Hardware("cpu"), Budget(1),
                            data=Digits(**DIGITS_SUBSETS).load(), seed=7)
    return Runner(experiment, run_dir, show_progress=False, resume=resume)


def test_one_shot_search_resumes_from_its_saved_state(tmp_path):
    one_shot_runner(tmp_path / "reference", ToyOneShot()).run()
    with pytest.raises(Crash):
        one_shot_runner(tmp_path / "run", ToyOneShot(crash_after=2)).run()
    saved = load_checkpoint(RunDir(tmp_path / "run").search_state)
    assert saved["epoch"] == 2
    one_shot_runner(tmp_path / "run", ToyOneShot(), resume=True).run()
    assert outcome(tmp_path / "run") == outcome(tmp_path / "reference")


def test_one_shot_proposal_is_scored_once_without_searching_again_after_a_crash(tmp_path, monkeypatch):
    """The one-shot strategy's one proposal goes through the trial loop like any other: journaled when asked,
    so a crash while it is scored resumes with the scoring, not a second search."""
    reference = ToyOneShot()
    summary = one_shot_runner(tmp_path / "reference", reference).run()
    assert reference.epochs_trained == 4 and summary["trials"] == 1 and "stop_reason" not in summary
    crash_on_call(monkeypatch, FullTraining, "evaluate", 1)
    with pytest.raises(Crash):
        one_shot_runner(tmp_path / "run", ToyOneShot()).run()
    monkeypatch.undo()
    assert json.loads(RunDir(tmp_path / "run").runner_state.read_text())["pending"]  # asked, not yet scored
    resumed = ToyOneShot()
    one_shot_runner(tmp_path / "run", resumed, resume=True).run()
    assert resumed.epochs_trained == 0
    assert outcome(tmp_path / "run") == outcome(tmp_path / "reference")
    best = json.loads(RunDir(tmp_path / "run").best.read_text())
    assert best["metrics"]["search_seconds"] == 2.0  # the search's own seconds, kept over the resume


def test_sweep_dir_resumes_every_job(tmp_path):
    from nasrun.rundir import RunDir

    for job in ("0", "1", "10", "2"):
        write_run_config(tmp_path / job, "seed: 0\n")
    assert [job.path.name for job in RunDir(tmp_path).sweep_jobs()] == ["0", "1", "2", "10"]
    assert [job.path for job in RunDir(tmp_path / "1").sweep_jobs()] == [tmp_path / "1"]


@pytest.mark.slow
def test_one_shot_search_killed_between_epochs_resumes(tmp_path):
    one_shot_runner(tmp_path / "reference", ToyOneShot()).run()
    run_dir = tmp_path / "run"
    script = ("import torch; torch.set_num_threads(1)\n"
              "from test_resume import ToyOneShot, one_shot_runner\n"
              f"one_shot_runner({str(run_dir)!r}, ToyOneShot(pause=5.0)).run()\n")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parent,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE)
    state = RunDir(run_dir).search_state
    deadline = time.time() + 120
    while not state.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert state.exists(), stderr.decode()[-2000:]
    assert load_checkpoint(state)["epoch"] == 1 and not RunDir(run_dir).trials.exists()
    one_shot_runner(run_dir, ToyOneShot(), resume=True).run()
    assert outcome(run_dir) == outcome(tmp_path / "reference")


def test_a_training_state_continues_model_optimiser_scheduler_and_rng_exactly(tmp_path):
    """nasrun.state.TrainingState, which the one-shot searches, the supernet and multi-fidelity trials save
    with: fresh objects given a saved state take the same next steps as the ones that saved it."""
    def parts(seed):
        torch.manual_seed(seed)
        model = nn.Linear(4, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    def step(model, optimizer, scheduler) -> float:
        loss = model(torch.randn(8, 4)).pow(2).mean()   # draws from the torch RNG
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        return loss.item()

    first = parts(0)
    for _ in range(2):
        step(*first)
    names = dict(zip(("model", "optimizer", "scheduler"), first))
    TrainingState(**names).save(tmp_path / "state.pt", epoch=2)
    straight = [step(*first) for _ in range(3)]
    second = parts(1)
    state = TrainingState(**dict(zip(("model", "optimizer", "scheduler"), second))).restore(
        load_checkpoint(tmp_path / "state.pt"))
    assert state["epoch"] == 2
    assert [step(*second) for _ in range(3)] == straight
