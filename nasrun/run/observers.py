"""What the Runner reports to: each observer keeps one concern (the run directory's files, the resume
checkpoint, TensorBoard) and hears every event through the same hooks. A Runner with no run directory
has none of them, so a script can run thousands of searches in memory (scripts/nb201_table.py)."""

from __future__ import annotations

from pathlib import Path

from nasrun.estimators import Evaluation
from nasrun.executors import TrialJob
from nasrun.records import Trial, TrialLog
from nasrun.rundir import RunDir, atomic_write_json, save_checkpoint


class RunObserver:
    """Every hook is a no-op; an observer overrides the ones it needs."""

    def on_submit(self, job: TrialJob) -> None:
        """A trial was handed to the executor."""

    def epoch_report(self, trial_id: int, report):
        """The trial's per-epoch callback `report(epoch, total, metrics)`, wrapped to hear epochs too."""
        return report

    def on_record(self, trial: Trial, evaluation: Evaluation | None, best: Trial | None, new_best: bool) -> None:
        """A trial finished (assessed, its arch in JSON form); `best` is the best so far."""

    def on_ask(self, strategy, told: int, asked: int | None = None) -> None:
        """The strategy was asked for `asked` architectures (the jobs of its proposals are submitted) after
        being told `told` trials: its state may be saved. `asked` None: no ask, the search has ended."""

    def on_test(self, best: Trial, test_metrics: dict, weights: dict | None = None) -> None:
        """The best trial was scored on the test split; `weights`: those of a network the estimator trained
        for it (weight sharing's retraining), else None."""

    def on_finish(self, summary: dict) -> None:
        """The run is over; `summary` is what it returns."""

    def on_close(self) -> None:
        """The search loop ended (also on errors): release what is open."""


class RunDirRecorder(RunObserver):
    """The run directory's record: trials.jsonl, best_architecture.json, the best weights (and those the
    final test retrained), summary.json.
    `data` (DataBundle.describe_input: dataset, input transform, class names) goes into best_architecture.json."""

    def __init__(self, run_dir: str | Path, space, network_shape: dict, durable_log: bool = True,
                 data: dict | None = None):
        self.files, self.space, self.network_shape, self.data = RunDir(run_dir), space, network_shape, data or {}
        self.log = TrialLog(self.files.trials, durable=durable_log)

    def on_record(self, trial, evaluation, best, new_best) -> None:
        self.log.append(trial)
        if new_best:
            self.write_best(trial, {})
            if evaluation is not None and evaluation.weights is not None:
                save_checkpoint(evaluation.weights, self.files.best_weights)

    def on_test(self, best, test_metrics, weights=None) -> None:
        if weights is not None:
            save_checkpoint(weights, self.files.retrained_weights)
        self.write_best(best, test_metrics)

    def on_finish(self, summary) -> None:
        atomic_write_json(self.files.summary, summary)

    def write_best(self, trial: Trial, test_metrics: dict) -> None:
        atomic_write_json(self.files.best, {
            "space": self.space.name,
            "arch": trial.arch,
            "trial": trial.id,
            "metrics": {**trial.metrics, **test_metrics},
            "network": {**self.network_shape, "options": self.space.network_options()},
            **self.data,
            "rebuild": f"from nasrun.nets import load_network; net = load_network('{RunDir.best}')",
        })
