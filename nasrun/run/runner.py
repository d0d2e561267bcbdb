"""The search loop: ask the strategy, evaluate with the estimator, tell the results.

The loop reports every event to its observers (nasrun.run.observers): with a run directory they write the
trial log, best architecture (and its weights) and summary (RunDirRecorder), the resume state
(RunCheckpoint), TensorBoard scalars and the live trackers it is given (nasrun.run.trackers); `run_dir=None`
runs in memory, writing nothing.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nasrun.assessment.assess import Assessment
from nasrun.assessment.objectives import Objectives
from nasrun.errors import NasrunError
from nasrun.estimators import Estimator, Evaluation
from nasrun.executors import Executor, TrialJob
from nasrun.hardware import Hardware
from nasrun.nets.size import NetworkLimits
from nasrun.run.progress import SearchProgress
from nasrun.records import Trial, best_trial
from nasrun.rundir import RunDir
from nasrun.state import release_held_logs
from nasrun.run.checkpoint import RunCheckpoint
from nasrun.run.cost import CostEstimate
from nasrun.run.observers import RunDirRecorder, RunObserver
from nasrun.spaces import SearchSpace
from nasrun.strategies import Proposal, SearchContext, Strategy
from nasrun.run.tensorboard import TensorBoardLog, tensorboard_available
from nasrun.run.proxy_scoring import attach_proxies, restrict_to_scored
from nasrun.run.warm_start import recorded_warm_start, warm_start

if TYPE_CHECKING:
    from nasrun.datasets import DataBundle

log = logging.getLogger("nasrun")


@dataclass
class Budget:
    trials: int
    seconds: float | None = None


def trial_seed(run_seed: int, trial_id: int) -> int:
    """Each trial's seed follows from the run seed and the trial id alone (order-independent)."""
    return (int(run_seed) * 1_000_003 + int(trial_id) * 7_919 + 17) % (2**31 - 1)


@dataclass(frozen=True)
class Experiment:
    """What one search runs, built and checked once (nasrun.experiment.plan; a test or script may build one
    itself): the components, the data they score on, seed and budget, how trials are judged and recorded.
    Where it runs and what watches it (run directory, resume, progress bars, trackers) is the Runner's."""

    space: SearchSpace
    strategy: Strategy
    estimator: Estimator
    executor: Executor
    hardware: Hardware
    budget: Budget
    data: DataBundle | None = None
    seed: int = 0
    assessment: Assessment | None = None   # None: only the estimator's score_metric, no cost metrics
    limits: NetworkLimits | None = None    # the size limits of the networks the search builds (None: defaults)
    final_test: bool = True                # score the best architecture on the test split at the end
    durable_log: bool = True               # fsync each trials.jsonl line
    run_info: dict = field(default_factory=dict)  # what summary.json says about the run (components, versions)
    cost: CostEstimate | None = None       # times the first steps or trial, prints the expected cost


class Runner:
    """Runs an Experiment in `run_dir` (None: in memory, writing nothing); `resume` continues the run there."""

    def __init__(self, experiment: Experiment, run_dir: str | Path | None, *, resume: bool = False,
                 show_progress: bool = True, trackers: list | None = None, tensorboard: bool = True):
        self.experiment = experiment
        self.space, self.strategy, self.estimator = experiment.space, experiment.strategy, experiment.estimator
        self.executor, self.data, self.hardware = experiment.executor, experiment.data, experiment.hardware
        self.seed, self.budget, self.limits = int(experiment.seed), experiment.budget, experiment.limits
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.show_progress, self.final_test, self.resume = show_progress, experiment.final_test, resume
        self.run_info = dict(experiment.run_info)  # the summary's; the run adds to it
        self.assessment = experiment.assessment or Assessment(Objectives(primary=self.estimator.score_metric), None)
        self.trials: list[Trial] = []
        self.best_evaluation: Evaluation | None = None
        self.stop_reason: str | None = None  # why the search ended before its trial budget, if it did
        self.observers: list[RunObserver] = []
        self.recorder = self.checkpoint = None
        if self.run_dir is not None:
            described = self.data.describe_input() if self.data is not None else {}
            self.recorder = RunDirRecorder(self.run_dir, self.space, self.network_shape(), experiment.durable_log,
                                           described)
            self.checkpoint = RunCheckpoint(self.run_dir, self.space)
            self.observers = [self.recorder, self.checkpoint]
            if tensorboard and tensorboard_available():
                self.observers.append(TensorBoardLog(self.run_dir))
            self.observers += trackers or []
        elif resume:
            raise NasrunError("resume needs the run directory to continue")
        self.cost = experiment.cost
        if self.cost is not None:
            self.observers.append(self.cost)

    def network_shape(self) -> dict:
        """Input shape and classes of the networks this run scores (for best_architecture.json)."""
        if self.data is not None:
            return {"input_shape": list(self.data.input_shape), "num_classes": self.data.num_classes}
        return self.estimator.network_spec() or {"input_shape": None, "num_classes": None}

    def check_network_sizes(self) -> None:
        """Refuse a space whose networks are over the limits before any network is built (the one-shot
        strategies and the weight-sharing estimator check their supernets when they build them). A table
        lookup builds no network: nothing to check."""
        shape = self.network_shape()
        if shape["input_shape"] is not None and self.estimator.needs_data:
            self.space.check_network_sizes(shape["input_shape"], shape["num_classes"], self.limits)

    def _tell(self, hook: str, *args) -> None:
        for observer in self.observers:
            getattr(observer, hook)(*args)

    # --- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        if self.recorder is not None:
            if not self.resume:
                RunDir(self.run_dir).refuse_another_run()
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.check_network_sizes()
        try:
            with SearchProgress(self.trial_limit, enabled=self.show_progress) as progress:
                self._prepare(progress)
                start = self.checkpoint.start_clock() if self.checkpoint else time.perf_counter()
                self._run_trials(progress, start)
        finally:
            self._tell("on_close")
        test_metrics = self._final_test()
        self.run_info.update(self.assessment.finish(self.trials, self.run_dir))
        summary = self._summary(test_metrics, time.perf_counter() - start)
        self._tell("on_finish", summary)
        return summary

    def _prepare(self, progress: SearchProgress) -> None:
        """Bind the estimator (a supernet trains here, step by step on the progress bar), warm-start and
        bind the strategy, and restore a resumed run's state."""
        supernet = {"steps": self._steps(progress, "supernet training")} if self.estimator.trains_supernet else {}
        partial = restrict_to_scored(self.space)
        if partial:
            self.run_info["partial_table"] = partial
        self.estimator.network_limits = self.limits
        self.estimator.bind(self.space, self.data, self.hardware, self.run_dir, self.seed, **supernet)
        warmup = recorded_warm_start(self.run_dir) if self.resume else \
            warm_start(self.strategy, self.space, self.data, self.hardware, self.seed, self.network_shape(), self.run_dir)
        if warmup:
            self.run_info["warmup"] = warmup
        attach_proxies(self.strategy, self.space, self.data, self.hardware, self.seed, self.network_shape())
        self.strategy.attach(SearchContext(self.space, self.data, self.hardware, self.run_dir, self.seed,
                                           progress.phase_epoch, self._steps(progress, "supernet search", lazy=True),
                                           self.limits))
        self.strategy.bind(self.space, self.seed, self.budget.trials)
        if self.resume:
            self.restore()
        self.best = best_trial(self.trials)

    def restore(self) -> None:
        """Bring this runner (space, strategy, estimator bound) to where its run stopped: the strategy's
        saved state and journaled asks, the trials recorded, the best one's weights (nasrun/run/checkpoint.py).
        Everything saved is read and checked before the first write (a torn line cut, a record logged)."""
        trials = self.recorder.log.read()
        self.checkpoint.restore_strategy(self.strategy, trials)
        unconfirmed = self.checkpoint.reconcile(trials)
        self.trials = trials
        if unconfirmed:
            log.info("resume: telling %d trial(s) recorded just before the crash", len(unconfirmed))
            self.strategy.tell(unconfirmed)
        best = best_trial(trials)
        if best is not None:
            self.best_evaluation = self.checkpoint.best_evaluation(self.estimator, best,
                                                                  best.id in {t.id for t in unconfirmed})
            self.recorder.write_best(best, {})
        release_held_logs()
        self.checkpoint.repair_logs()
        self.recorder.log.repair()
        log.info("resumed %s: %d trials done, %d to run again", self.run_dir, len(trials), len(self.checkpoint.pending))

    @property
    def trial_limit(self) -> int:
        """The trials this run asks for: the budget's, or 1 for a one-shot strategy."""
        return self.strategy.trial_limit(self.budget.trials)

    def _steps(self, progress: SearchProgress, phase: str, lazy: bool = False):
        """The step report (done, steps per epoch, epochs) of a supernet training: the progress bar counts
        steps, so its ETA is real, and the cost estimate times the first ones. `lazy`: the phase starts at
        the first step reported (a strategy given the report may train nothing)."""
        if lazy:
            reports = []

            def first_step_starts(done: int, per_epoch: int, epochs: int) -> None:
                if not reports:
                    reports.append(self._steps(progress, phase))
                reports[0](done, per_epoch, epochs)

            return first_step_starts
        progress.phase(phase)
        estimate = self.cost.steps(phase) if self.cost is not None else None

        def report(done: int, per_epoch: int, epochs: int) -> None:
            progress.step(done, per_epoch, epochs)
            if estimate is not None:
                estimate(done, per_epoch, epochs)

        return report

    def _run_trials(self, progress: SearchProgress, start: float) -> None:
        self.executor.start(self.estimator)
        progress.progress.update(progress.trials, completed=len(self.trials))
        pending, next_id = 0, self.checkpoint.next_id if self.checkpoint else 0
        for job in self.checkpoint.take_pending() if self.checkpoint else []:
            self._submit(job, progress)
            pending += 1
        try:
            while True:
                room = min(self.executor.workers - pending, self.trial_limit - next_id)
                if room > 0 and self._out_of_time(start):
                    self._stopped_early(f"the wall-clock budget of {self.budget.seconds} s ran out", next_id)
                    room = 0
                if room > 0:
                    proposals = self.strategy.ask(room)
                    for proposal in proposals:
                        self._submit(self._job(next_id, proposal), progress)
                        next_id, pending = next_id + 1, pending + 1
                    self._tell("on_ask", self.strategy, len(self.trials), room)
                    if not proposals and pending == 0:
                        self._stopped_early("the strategy proposed no new architecture (every architecture it "
                                            "can reach has been tried)", next_id)
                if pending == 0:
                    break
                finished = self.executor.wait()
                pending -= len(finished)
                for trial, evaluation in finished:
                    self._record(trial, evaluation, progress)
                self.strategy.tell([trial for trial, _ in finished])
            self._tell("on_ask", self.strategy, len(self.trials))
        finally:
            self.executor.shutdown()

    def _job(self, trial_id: int, proposal) -> TrialJob:
        """The job of one proposal: an architecture, or a Proposal with a fidelity. A continued training
        keeps the seed of the trial it continues, so its batches are those of an uninterrupted run."""
        if not isinstance(proposal, Proposal):
            return TrialJob(trial_id, proposal, trial_seed(self.seed, trial_id))
        seed = trial_seed(self.seed, trial_id)
        if proposal.continues is not None:
            seed = next(t.seed for t in self.trials if t.id == proposal.continues)
        return TrialJob(trial_id, proposal.arch, seed, proposal.fidelity, proposal.continues)

    def _submit(self, job: TrialJob, progress: SearchProgress) -> None:
        progress.trial_started(job.id, self.space.describe(job.arch))
        self._tell("on_submit", job)
        report = progress.epoch if self.executor.workers == 1 else None
        for observer in self.observers:  # e.g. TensorBoard logs the trial's epochs too
            report = observer.epoch_report(job.id, report)
        self.executor.submit(job, report)

    def _stopped_early(self, reason: str, trials: int) -> None:
        if self.stop_reason is None:
            self.stop_reason = f"stopped after {trials} of {self.trial_limit} trials: {reason}"
            log.warning("search %s", self.stop_reason)

    def _out_of_time(self, start: float) -> bool:
        return self.budget.seconds is not None and time.perf_counter() - start >= self.budget.seconds

    # --- records ----------------------------------------------------------------------------------
    def _record(self, trial: Trial, evaluation: Evaluation | None, progress: SearchProgress) -> None:
        trial.metrics.update(self.strategy.trial_notes(trial.arch))
        self.assessment.assess(trial)
        trial.arch = self.space.to_json(trial.arch)
        self.trials.append(trial)
        if trial.ok:
            metric = self.estimator.score_metric
            log.info("trial %d: %s=%.4f (%.1fs) %s", trial.id, metric, trial.metrics.get(metric, math.nan),
                     trial.seconds, self.space.describe(trial.arch))
        else:
            log.warning("trial %d failed: %s", trial.id, trial.error)
        best = self.best = best_trial([t for t in (self.best, trial) if t is not None])  # O(1) per trial
        if best is trial:
            self.best_evaluation = evaluation
        self._tell("on_record", trial, evaluation, best, best is trial)
        progress.trial_finished(trial, best)

    def _final_test(self) -> dict:
        """Score the best architecture once on the test split (never used for selection)."""
        best = best_trial(self.trials)
        if best is None or not self.final_test:
            return {}
        evaluation = self.best_evaluation or Evaluation(metrics=dict(best.metrics))
        arch = self.space.from_json(best.arch)
        tested = self.estimator.test(arch, evaluation, trial_seed(self.seed, best.id))
        tested = tested if isinstance(tested, Evaluation) else Evaluation(dict(tested))
        log.info("final test of trial %d: %s", best.id, tested.metrics)
        self._tell("on_test", best, tested.metrics, tested.weights)
        return tested.metrics

    def no_result(self) -> str | None:
        """Why the run has no best architecture (every trial failed, none feasible), or None."""
        if best_trial(self.trials) is not None:
            return None
        where = RunDir(self.run_dir).trials if self.run_dir else "the trials"
        failed = [t for t in self.trials if not t.ok]
        if not self.trials:
            return f"no trial ran ({self.stop_reason or 'the strategy proposed nothing'})"
        if len(failed) == len(self.trials):
            return (f"no trial succeeded: all {len(failed)} failed (trial {failed[0].id}: "
                    f"{(failed[0].error or 'no error recorded').splitlines()[0][:200]}); see {where}")
        if any(not t.metrics.get("feasible", 1) for t in self.trials):
            return (f"no feasible architecture: every successful trial violates the constraints; see "
                    f"constraint_violation in {where}")
        return f"no trial has a finite score ({self.estimator.score_metric} / fitness); see {where}"

    def _summary(self, test_metrics: dict, seconds: float) -> dict:
        best = best_trial(self.trials)
        cost = self.cost.record() if self.cost is not None else None
        summary = {
            **self.run_info,
            "seed": self.seed,
            "budget": {"trials": self.budget.trials, "seconds": self.budget.seconds},
            "trials": len(self.trials),
            "failed_trials": sum(not t.ok for t in self.trials),
            "best_trial": best.id if best else None,
            "best_val_accuracy": best.metrics.get("val_accuracy") if best else None,
            "score_metric": "fitness" if best and "fitness" in best.metrics else self.estimator.score_metric,
            "best_score": best.score() if best else None,
            "test": test_metrics,
            "best_arch": best.arch if best else None,
            "wall_seconds": round(seconds, 3),
            **({"cost": cost} if cost else {}),
            **self.strategy.report(),
            **({"worker_cpu_threads": self.executor.thread_choice.record()} if self.executor.thread_choice else {}),
            **({"stop_reason": self.stop_reason} if self.stop_reason else {}),
        }
        return summary
