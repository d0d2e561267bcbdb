"""Parallel executors: the same trials as a serial run, worker death handled, Ray optional."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY, write_run_config
from toys import ToySpace

from nasrun.rundir import RunDir
from nasrun.errors import ConfigError, NasrunError
from nasrun.estimators import Estimator, Evaluation
from nasrun.executors.local import LocalExecutor
from nasrun.executors import processes
from nasrun.executors.processes import ProcessesExecutor, worker_devices
from nasrun.experiment import run_experiment
from nasrun.hardware import Hardware
from nasrun.run.runner import Budget, Experiment, Runner, trial_seed
from nasrun.strategies.random_search import RandomSearch

TESTS = str(Path(__file__).parent)



class KillingEstimator(Estimator):
    """Scores sum(arch)/9. The worker running trial `kill_always` kills itself (SIGKILL) on every
    attempt; the one running `kill_once` only on the first (it leaves `marker` behind)."""

    needs_data = False

    def __init__(self, kill_always=None, kill_once=None, marker=None):
        self.always = trial_seed(0, kill_always) if kill_always is not None else None
        self.once = trial_seed(0, kill_once) if kill_once is not None else None
        self.marker = marker

    def evaluate(self, arch, seed, report=None):
        if seed == self.always:
            os.kill(os.getpid(), signal.SIGKILL)
        if seed == self.once and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return Evaluation({"val_accuracy": sum(arch) / 9})

    def test(self, arch, evaluation, seed):
        return {"test_accuracy": evaluation.metrics["val_accuracy"]}


def toy_search(tmp_path, executor, estimator=None, trials=8):
    experiment = Experiment(ToySpace(width=3), RandomSearch(), estimator or KillingEstimator(), executor,
                            Hardware("cpu"), Budget(trials), seed=0)
    runner = Runner(experiment, tmp_path, show_progress=False)
    runner.run()
    return {t.id: t for t in runner.trials}


def same_trials(serial, parallel):
    assert sorted(serial) == sorted(parallel)
    for tid, trial in serial.items():
        assert parallel[tid].arch == trial.arch and parallel[tid].status == trial.status
        assert parallel[tid].metrics == trial.metrics


def tiny_training(executor_overrides):
    return ["hardware=cpu", "hardware.threads=1", "budget.trials=4", "final_test=false", *TINY,
            *executor_overrides]


# --- processes ------------------------------------------------------------------------------------
@pytest.mark.slow  # two spawned workers, each importing torch afresh (12 s): `make test-slow`
def test_processes_run_the_same_trained_trials_as_local(compose_cfg, tmp_path):
    serial = run_experiment(compose_cfg(tiny_training([])), tmp_path / "local", show_progress=False)
    parallel = run_experiment(compose_cfg(tiny_training(["executor=processes"])), tmp_path / "proc",
                              show_progress=False)
    from nasrun.records import TrialLog

    local = {t.id: t for t in TrialLog(RunDir(tmp_path / "local").trials).read()}
    procs = {t.id: t for t in TrialLog(RunDir(tmp_path / "proc").trials).read()}
    same_trials(local, procs)
    assert {t.worker for t in procs.values()} == {"proc0:cpu", "proc1:cpu"}
    assert all(t.seconds > 0 for t in procs.values())
    assert serial["best_arch"] == parallel["best_arch"]


@pytest.mark.slow  # spawned workers killed and restarted: `make test-slow`
def test_killed_workers_fail_or_retry_their_trial_and_the_search_goes_on(tmp_path):
    marker = tmp_path / "killed-once"
    estimator = KillingEstimator(kill_always=3, kill_once=5, marker=str(marker))
    trials = toy_search(tmp_path / "run", ProcessesExecutor(workers=2, retries=1), estimator)
    assert len(trials) == 8 and marker.exists()
    assert trials[3].status == "failed" and "WorkerDied" in trials[3].error and "2 attempt(s)" in trials[3].error
    assert trials[3].worker.startswith("proc")
    serial = toy_search(tmp_path / "serial", LocalExecutor())
    del serial[3], trials[3]
    same_trials(serial, trials)  # the retried trial 5 and all the others are as in a serial run


class Crash(BaseException):
    """Stands in for the driver being killed: nothing after the raise runs."""


@pytest.mark.slow  # spawned workers, run twice: `make test-slow`
def test_an_interrupted_processes_run_resumes_to_the_serial_result(compose_cfg, tmp_path, monkeypatch):

    from nasrun.records import TrialLog
    from nasrun.commands.resume import resume_run
    from nasrun.run.checkpoint import RunCheckpoint

    run_experiment(compose_cfg(tiny_training([])), tmp_path / "local", show_progress=False)
    cfg = compose_cfg(tiny_training(["executor=processes"]))
    run_dir = tmp_path / "proc"
    write_run_config(run_dir, cfg)
    save = RunCheckpoint.save

    def crash_once_a_trial_is_recorded(self, *args):
        """The first save after a trial is recorded: the ask that refills a worker's slot, so 1 or 2 of
        the 4 trials are done (a fixed save count crashed after all 4 when the workers were quick)."""
        if RunDir(run_dir).trials.exists() and TrialLog(RunDir(run_dir).trials).read():
            raise Crash()
        return save(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(RunCheckpoint, "save", crash_once_a_trial_is_recorded)
        with pytest.raises(Crash):
            run_experiment(cfg, run_dir, show_progress=False)
    assert not RunDir(run_dir).summary.exists() and 0 < len(TrialLog(RunDir(run_dir).trials).read()) < 4
    resume_run(run_dir, show_progress=False)
    same_trials({t.id: t for t in TrialLog(RunDir(tmp_path / "local").trials).read()},
                {t.id: t for t in TrialLog(RunDir(run_dir).trials).read()})


def test_processes_config_errors_and_devices():
    with pytest.raises(ConfigError, match="workers"):
        ProcessesExecutor(workers=0)
    with pytest.raises(ConfigError, match="retries"):
        ProcessesExecutor(retries=-1)
    assert worker_devices("cpu", 3) == ["cpu"] * 3
    assert worker_devices("cuda", 3, ["cuda:0", "cuda:1"]) == ["cuda:0", "cuda:1", "cuda:0"]


def test_unpicklable_estimator_is_a_clear_error(tmp_path):
    estimator = KillingEstimator()
    estimator.hook = lambda: None
    with pytest.raises(NasrunError, match="picklable estimator"):
        toy_search(tmp_path, ProcessesExecutor(workers=2), estimator)


class HangsWhenUnpickled(KillingEstimator):
    """An estimator whose unpickling in a worker never ends (stands in for a worker stuck starting)."""

    def __setstate__(self, state):
        if multiprocessing.parent_process() is not None:   # in a worker, not in the test's own pickle check
            time.sleep(3600)
        self.__dict__.update(state)


def test_a_worker_that_never_gets_ready_is_an_error_not_a_hang(monkeypatch):
    monkeypatch.setattr(processes, "START_TIMEOUT_S", 3.0)
    before = set(multiprocessing.active_children())
    estimator = HangsWhenUnpickled()
    estimator.hardware = Hardware("cpu")
    with pytest.raises(NasrunError, match="not ready within 3 s"):
        ProcessesExecutor(workers=2).start(estimator)
    assert set(multiprocessing.active_children()) <= before   # the hung workers were terminated, not waited for


# --- ray ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for this module; workers can import this test file."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'nasrun[ray]'")
    path = os.pathsep.join([TESTS, *[p for p in sys.path if p]])
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


@pytest.mark.slow  # starts Ray: `make test-slow`
def test_ray_runs_the_same_trained_trials_as_local(ray_session, compose_cfg, tmp_path):
    from nasrun.records import TrialLog

    run_experiment(compose_cfg(tiny_training([])), tmp_path / "local", show_progress=False)
    run_experiment(compose_cfg(tiny_training(["executor=ray"])), tmp_path / "ray", show_progress=False)
    local = {t.id: t for t in TrialLog(RunDir(tmp_path / "local").trials).read()}
    remote = {t.id: t for t in TrialLog(RunDir(tmp_path / "ray").trials).read()}
    same_trials(local, remote)
    assert all(t.worker.startswith("ray:") for t in remote.values())
    assert ray_session.is_initialized()  # a session the executor did not start is left running


@pytest.mark.slow  # starts Ray: `make test-slow`
def test_ray_worker_death_fails_its_trial_and_the_search_goes_on(ray_session, tmp_path):
    from nasrun.executors.ray import RayExecutor

    trials = toy_search(tmp_path, RayExecutor(retries=0), KillingEstimator(kill_always=2), trials=6)
    assert len(trials) == 6 and trials[2].status == "failed" and "WorkerDied" in trials[2].error
    assert all(t.ok for tid, t in trials.items() if tid != 2)


def test_missing_ray_is_a_one_line_error(monkeypatch):
    from nasrun.executors import ray as ray_executor

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(NasrunError, match=r"pip install 'nasrun\[ray\]'"):
        ray_executor.import_ray()
