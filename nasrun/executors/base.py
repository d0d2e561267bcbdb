"""The executor interface and `run_trial`, the one function every executor calls to score an architecture."""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from typing import Any

from nasrun.errors import RunDirError
from nasrun.estimators.base import Estimator, Evaluation, Fidelity, Report
from nasrun.records import Trial


@dataclass
class TrialJob:
    id: int
    arch: Any
    seed: int
    fidelity: int | None = None    # epochs to train to (multi-fidelity strategies); None: the estimator's own
    continues: int | None = None   # the earlier trial whose training state this evaluation continues


def run_trial(estimator: Estimator, job: TrialJob, report: Report = None, worker: str = "local") -> tuple[Trial, Evaluation | None]:
    """Evaluate one architecture. Any exception, or a non-finite score, makes a failed trial (with the
    error text) instead of stopping the search."""
    start = time.perf_counter()
    try:
        if job.fidelity is None:
            evaluation = estimator.evaluate(job.arch, job.seed, report)
        else:
            evaluation = estimator.evaluate(job.arch, job.seed, report,
                                            fidelity=Fidelity(int(job.fidelity), job.id, job.continues))
        metric = estimator.score_metric
        score = evaluation.metrics.get(metric)
        if score is None or not math.isfinite(float(score)):
            raise ValueError(f"estimator returned a non-finite {metric} ({score})")
        status, error = "ok", None
    except RunDirError:  # the run directory cannot be written (disk full, ...): not the architecture's fault
        raise
    except Exception as err:  # noqa: BLE001 - a failing architecture must not end the search
        evaluation, status = None, "failed"
        error = f"{type(err).__name__}: {err}"
        last = traceback.extract_tb(err.__traceback__)[-1:]
        if last:
            error += f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})"
    trial = Trial(id=job.id, arch=job.arch, metrics=dict(evaluation.metrics) if evaluation else {},
                  status=status, seconds=round(time.perf_counter() - start, 4), error=error,
                  seed=job.seed, worker=worker, fidelity=job.fidelity, continues=job.continues)
    return trial, evaluation


class Executor:
    """Runs TrialJobs. `workers` is how many can run at once; `thread_choice` the CPU threads of each
    worker process (nasrun.machine.ThreadChoice), None where trials run in this process."""

    workers = 1
    thread_choice = None

    def start(self, estimator: Estimator) -> None:
        self.estimator = estimator

    def submit(self, job: TrialJob, report: Report = None) -> None:
        raise NotImplementedError

    def wait(self) -> list[tuple[Trial, Evaluation | None]]:
        """Block until at least one submitted job is done; return every finished one."""
        raise NotImplementedError

    def shutdown(self) -> None:
        pass
