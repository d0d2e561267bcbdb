"""Trials one after another in this process (the default)."""

from __future__ import annotations

from collections import deque

from nasrun.executors.base import Executor, TrialJob, run_trial


class LocalExecutor(Executor):
    workers = 1

    def start(self, estimator) -> None:
        super().start(estimator)
        self.queue: deque = deque()

    def submit(self, job: TrialJob, report=None) -> None:
        self.queue.append((job, report))

    def wait(self):
        job, report = self.queue.popleft()
        return [run_trial(self.estimator, job, report)]
