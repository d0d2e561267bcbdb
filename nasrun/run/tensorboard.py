"""TensorBoard event files in `<run dir>/tensorboard/` when the `tensorboard` package is installed.

Scalars per trial (step = trial id): every numeric metric under `trial/`, and `search/best_score`.
Scalars per epoch, where the executor reports epochs: `epoch/<metric>` with one run per trial
(`tensorboard/trial_<id>/`). Without tensorboard installed, every method does nothing.
View with `tensorboard --logdir <run dir>/tensorboard`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from nasrun.records import Trial
from nasrun.run.observers import RunObserver
from nasrun.rundir import RunDir

log = logging.getLogger("nasrun")


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLog(RunObserver):
    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.root = RunDir(run_dir).tensorboard
        self.enabled = enabled and tensorboard_available()
        self._search = None
        self._epoch_writers: dict = {}

    def _writer(self, name: str):
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.root / name))

    def on_record(self, trial, evaluation, best, new_best) -> None:
        self.trial(trial, best)

    def on_close(self) -> None:
        self.close()

    def trial(self, trial: Trial, best: Trial | None) -> None:
        if not self.enabled:
            return
        if trial.id in self._epoch_writers:
            self._epoch_writers.pop(trial.id).close()
        if self._search is None:
            self._search = self._writer("search")
        for key, value in trial.metrics.items():
            if isinstance(value, (int, float)):
                self._search.add_scalar(f"trial/{key}", value, trial.id)
        self._search.add_scalar("trial/ok", float(trial.ok), trial.id)
        if best is not None:
            self._search.add_scalar("search/best_score", best.score(), trial.id)
        self._search.flush()

    def epoch_report(self, trial_id: int, report: Callable | None) -> Callable | None:
        """Wrap an epoch `report(epoch, total, metrics)` callback so that it also logs the epoch's scalars."""
        if not self.enabled or report is None:
            return report

        def report_and_log(epoch: int, total: int, metrics: dict) -> None:
            report(epoch, total, metrics)
            writer = self._epoch_writers.get(trial_id)  # opened at the first epoch: a table lookup has none
            if writer is None:
                writer = self._epoch_writers[trial_id] = self._writer(f"trial_{trial_id}")
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    writer.add_scalar(f"epoch/{key}", value, epoch)
            writer.flush()

        return report_and_log

    def close(self) -> None:
        for writer in self._epoch_writers.values():
            writer.close()
        self._epoch_writers.clear()
        if self._search is not None:
            self._search.close()
            self._search = None
