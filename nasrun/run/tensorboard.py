"""TensorBoard event files in `<run dir>/tensorboard/` when the `tensorboard` package is installed and the
run's `tensorboard` setting is on (the default).

Scalars per trial (step = trial id): every numeric metric under `trial/`, and `search/best_score`.
Scalars per epoch, where the executor reports epochs: `epoch/<metric>` with one run per trial
(`tensorboard/trial_<id>/`). Without tensorboard installed, or with `tensorboard=false`, the runner has
no TensorBoard observer at all. The events go through tensorboard's own event-file writer (what
torch.utils.tensorboard wraps), so a table-lookup run never loads torch for them; they are handed to it
at most every FLUSH_SECONDS (at once when the previous hand-over is older) and when the search ends, so a
run of instant trials does not wake its writer thread once per trial.
View with `tensorboard --logdir <run dir>/tensorboard`.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Callable

from nasrun.records import Trial
from nasrun.run.observers import RunObserver
from nasrun.rundir import RunDir

log = logging.getLogger("nasrun")

FLUSH_SECONDS = 5


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class ScalarEvents:
    """One TensorBoard run folder of scalar events."""

    def __init__(self, folder: Path):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.events = EventFileWriter(str(folder), max_queue_size=1024, flush_secs=FLUSH_SECONDS)
        self.pending: list[tuple[float, int, dict]] = []
        self.handed_at = -math.inf

    def add(self, values: dict[str, float], step: int) -> None:
        """The numbers of `values` as scalars of one step (other values are left out)."""
        self.pending.append((time.time(), int(step), values))
        if time.monotonic() - self.handed_at >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Hand the pending steps to the writer and wait until they are written."""
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        for wall_time, step, values in self.pending:
            scalars = [Summary.Value(tag=tag, simple_value=float(value)) for tag, value in values.items()
                       if isinstance(value, (int, float))]
            self.events.add_event(Event(wall_time=wall_time, step=step, summary=Summary(value=scalars)))
        self.pending.clear()
        self.events.flush()
        self.handed_at = time.monotonic()

    def close(self) -> None:
        self.flush()
        self.events.close()


class TensorBoardLog(RunObserver):
    def __init__(self, run_dir: str | Path):
        self.root = RunDir(run_dir).tensorboard
        self._search: ScalarEvents | None = None
        self._epoch_writers: dict[int, ScalarEvents] = {}

    def on_record(self, trial, evaluation, best, new_best) -> None:
        self.trial(trial, best)

    def on_close(self) -> None:
        self.close()

    def trial(self, trial: Trial, best: Trial | None) -> None:
        if trial.id in self._epoch_writers:
            self._epoch_writers.pop(trial.id).close()
        if self._search is None:
            self._search = ScalarEvents(self.root / "search")
        values = {f"trial/{key}": value for key, value in trial.metrics.items()}
        values["trial/ok"] = float(trial.ok)
        if best is not None:
            values["search/best_score"] = best.score()
        self._search.add(values, trial.id)

    def epoch_report(self, trial_id: int, report: Callable | None) -> Callable | None:
        """Wrap an epoch `report(epoch, total, metrics)` callback so that it also logs the epoch's scalars."""
        if report is None:
            return report

        def report_and_log(epoch: int, total: int, metrics: dict) -> None:
            report(epoch, total, metrics)
            writer = self._epoch_writers.get(trial_id)  # opened at the first epoch: a table lookup has none
            if writer is None:
                writer = self._epoch_writers[trial_id] = ScalarEvents(self.root / f"trial_{trial_id}")
            writer.add({f"epoch/{key}": value for key, value in metrics.items()}, epoch)

        return report_and_log

    def close(self) -> None:
        for writer in self._epoch_writers.values():
            writer.close()
        self._epoch_writers.clear()
        if self._search is not None:
            self._search.close()
            self._search = None
