"""Executors run trials: `local` one after another in this process; others (processes, Ray) in parallel.
The runner asks the strategy for as many architectures as there are free workers and takes results
back in completion order."""

from nasrun.executors.base import Executor, TrialJob, run_trial

__all__ = ["Executor", "TrialJob", "run_trial"]
