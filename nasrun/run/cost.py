"""The expected cost of a run on this device, measured on the run's own first steps and printed once, early:
one line on the console and in the log, e.g.

    expected: ~3.1 days for the supernet search on this CPU (212 s/step x 1,250 steps/epoch x 50 epochs);
    to shrink: strategy.epochs (now 50), strategy.steps_per_epoch (now all), dataset.train_subset (now all), scale=tiny

What is timed is work the run does anyway (nothing extra runs, so the estimate changes no result):
- a supernet training (one-shot strategies, estimator=weight_sharing): its first steps, from the end of the
  first (which pays one-time set-up) until MEASURE_STEPS more are done or MEASURE_SECONDS have passed (a
  first step slower than SLOW_STEP, or the only one, is timed itself); s/step x steps per epoch x epochs;
- a multi-trial search: its first trial's first epoch, s/epoch x epochs per trial x trials ("at most" where
  trials may stop early or train fewer epochs: early stopping, multi-fidelity strategies). A first epoch
  shorter than WARM_EPOCH of a trial that trains more pays the process's one-time set-up (oneDNN builds
  its kernels, caches fill: 1.2 s of the default run's first epoch, against 0.1 s for the next ones), so
  the second epoch is timed and the difference is counted once as set-up. For estimators without epochs
  (tables, zero-cost proxies) and parallel workers, its first trial, s/trial x trials / workers.
summary.json keeps the estimate and the time the measured phase actually took, under `cost`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass

from omegaconf import DictConfig, OmegaConf

from nasrun.build import Components
from nasrun.console import console
from nasrun.run.observers import RunObserver

log = logging.getLogger("nasrun")

MEASURE_STEPS = 5        # steps timed after the first one (which pays the set-up) ...
MEASURE_SECONDS = 10.0   # ... or this long, whichever comes first
SLOW_STEP = 60.0         # a first step this slow is timed as it is (its set-up is small beside it)
WARM_EPOCH = 30.0        # a first trial's first epoch this slow is timed as it is (the same)
FACTOR_NAMES = {"steps_per_epoch": ("step/epoch", "steps/epoch"), "epochs": ("epoch", "epochs"),
                "trials": ("trial", "trials")}


@dataclass
class Estimate:
    phase: str                      # "supernet search" | "supernet training" | "N trials"
    unit: str                       # step | epoch | trial
    seconds_per_unit: float
    factors: dict[str, int]         # what multiplies it, e.g. {"steps_per_epoch": 1250, "epochs": 50}
    workers: int = 1                # ... and divides it
    upper_bound: bool = False       # trials may train fewer epochs than counted
    actual_seconds: float | None = None
    setup_seconds: float = 0.0      # paid once, before the units (a process's first epoch)

    @property
    def expected_seconds(self) -> float:
        return self.setup_seconds + self.seconds_per_unit * math.prod(self.factors.values()) / self.workers

    def basis(self) -> str:
        """E.g. "212 s/step x 1,250 steps/epoch x 50 epochs"."""
        terms = [f"{short_number(self.seconds_per_unit)} s/{self.unit}"]
        if self.setup_seconds:
            terms[0] = f"{short_number(self.setup_seconds)} s set-up + {terms[0]}"
        for name, count in self.factors.items():
            upto = "up to " if self.upper_bound and name == "epochs" else ""
            singular, plural = FACTOR_NAMES[name]
            terms.append(f"{upto}{count:,} {singular if count == 1 else plural}")
        return " x ".join(terms) + (f" / {self.workers} workers" if self.workers > 1 else "")

    def line(self, device: str, shrink: list[str]) -> str:
        bound = "at most " if self.upper_bound else ""
        hint = f"; to shrink: {', '.join(shrink)}" if shrink else ""
        return (f"expected: {bound}~{duration(self.expected_seconds)} for the {self.phase} on this {device} "
                f"({self.basis()}){hint}")

    def record(self) -> dict:
        return {**asdict(self), "expected_seconds": round(self.expected_seconds, 3), "basis": self.basis()}


class CostEstimate(RunObserver):
    """Times the first supernet steps (`steps(phase)`, called by the Runner) or the first trial (observer
    hooks), prints the expected cost once and keeps it for summary.json (`record`)."""

    def __init__(self, device: str, shrink: list[str], trials: int, workers: int = 1,
                 epochs_per_trial: int | None = None, upper_bound: bool = False, clock=time.perf_counter):
        self.device, self.shrink, self.trials, self.workers, self.clock = device, shrink, trials, workers, clock
        self.epochs_per_trial, self.upper_bound = epochs_per_trial, upper_bound
        self.estimate: Estimate | None = None
        self.started: dict[int, float] = {}   # trial id -> when it was submitted
        self.first_epoch_end: dict[int, float] = {}  # trial id -> when its first epoch ended (module doc)
        self.trials_start: float | None = None

    # --- supernet steps ---------------------------------------------------------------------------------
    def steps(self, phase: str):
        """The step report of a supernet training: (done, steps per epoch, epochs)."""
        start, first = self.clock(), None

        def report(done: int, per_epoch: int, epochs: int) -> None:
            nonlocal first
            now, last = self.clock(), done == per_epoch * epochs
            rate = None
            if first is None:
                first = (done, now)
                if now - start >= SLOW_STEP or last:  # its set-up is small beside it / there is no other
                    rate = now - start
            elif self.estimate is None:
                timed = done - first[0]
                if timed >= MEASURE_STEPS or now - first[1] >= MEASURE_SECONDS or last:
                    rate = (now - first[1]) / timed
            if rate is not None and self.estimate is None:
                self.publish(Estimate(phase, "step", rate, {"steps_per_epoch": per_epoch, "epochs": epochs}))
            if last and self.estimate is not None and self.estimate.phase == phase:
                self.estimate.actual_seconds = round(now - start, 3)

        return report

    # --- trials -----------------------------------------------------------------------------------------
    def on_submit(self, job) -> None:
        now = self.clock()
        self.started.setdefault(job.id, now)
        if self.trials_start is None:
            self.trials_start = now

    def epoch_report(self, trial_id: int, report):
        if report is None or self.epochs_per_trial is None:  # no epochs heard: timed per trial instead
            return report

        def timed(epoch: int, total: int, metrics: dict) -> None:
            if self.estimate is None and trial_id in self.started:
                self.time_epoch(trial_id, epoch, total)
            report(epoch, total, metrics)

        return timed

    def time_epoch(self, trial_id: int, epoch: int, total: int) -> None:
        """Publish s/epoch from the first epoch, or from the second one with the first's excess as set-up."""
        now, start = self.clock(), self.started[trial_id]
        if epoch == 1 and total > 1 and now - start < WARM_EPOCH:
            self.first_epoch_end[trial_id] = now  # wait for the second epoch (module doc)
            return
        setup, seconds = 0.0, (now - start) / max(epoch, 1)
        if epoch == 2 and trial_id in self.first_epoch_end:
            seconds = now - self.first_epoch_end[trial_id]
            setup = max(0.0, self.first_epoch_end[trial_id] - start - seconds)
        self.publish(Estimate(f"{self.trials} trials", "epoch", seconds,
                              {"epochs": self.epochs_per_trial, "trials": self.trials},
                              upper_bound=self.upper_bound, setup_seconds=round(setup, 3)))

    def on_record(self, trial, evaluation, best, new_best) -> None:
        if self.estimate is None and self.trials > 1:
            self.publish(Estimate(f"{self.trials} trials", "trial", trial.seconds, {"trials": self.trials},
                                  workers=self.workers))

    def on_close(self) -> None:
        if self.estimate is not None and self.estimate.unit != "step" and self.trials_start is not None:
            self.estimate.actual_seconds = round(self.clock() - self.trials_start, 3)

    # --- output -----------------------------------------------------------------------------------------
    def publish(self, estimate: Estimate) -> None:
        self.estimate = estimate
        line = estimate.line(self.device, self.shrink)
        log.info(line)
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    def record(self) -> dict | None:
        """What summary.json keeps under `cost` (None when nothing was measured)."""
        return self.estimate.record() if self.estimate is not None else None


def short_number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def duration(seconds: float) -> str:
    for limit, size, unit in ((90, 1, "s"), (90 * 60, 60, "min"), (36 * 3600, 3600, "h")):
        if seconds < limit:
            return f"{seconds / size:.2g} {unit}" if seconds / size < 10 else f"{seconds / size:.0f} {unit}"
    return f"{seconds / 86400:.2g} days" if seconds < 10 * 86400 else f"{seconds / 86400:,.0f} days"


# --- a run's estimate ---------------------------------------------------------------------------------------
def cost_estimate(cfg: DictConfig, parts: Components, scale: str | None) -> CostEstimate | None:
    """The estimate of a run built from `cfg`: what it extrapolates to and the overrides that lower it (None
    with `estimate: false`, and for a multi-trial search of a table, which loads no data and costs nothing)."""
    strategy, estimator = parts.strategy, parts.estimator
    if not cfg.get("estimate", True) or not (estimator.needs_data or strategy.one_shot):
        return None
    from nasrun.estimators.early_stopping import EarlyStopping  # here: a table lookup never loads torch

    hints = shrink_hints(cfg, strategy.one_shot, estimator.trains_supernet, scale)
    stops_early = isinstance(estimator, EarlyStopping) or strategy.multi_fidelity  # epochs counted are a bound
    return CostEstimate("GPU" if parts.hardware.is_cuda else "CPU", hints,
                        trials=strategy.trial_limit(int(cfg.budget.trials)), workers=parts.executor.workers,
                        epochs_per_trial=estimator.max_fidelity, upper_bound=stops_early)


def shrink_hints(cfg: DictConfig, one_shot: bool, trains_supernet: bool, scale: str | None) -> list[str]:
    """The overrides (keys of this config, with their values now) that make this run cheaper."""
    if one_shot:
        keys = ["strategy.epochs", "strategy.steps_per_epoch"]
    elif trains_supernet:
        keys = ["estimator.epochs"]
    else:
        keys = ["budget.trials", "estimator.epochs", "estimator.max_epochs"]
    keys.append("dataset.train_subset")
    hints = [f"{key} (now {now(OmegaConf.select(cfg, key))})" for key in keys if has_key(cfg, key)]
    return hints + (["scale=tiny"] if scale != "tiny" else [])


def has_key(cfg: DictConfig, key: str) -> bool:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return isinstance(node, DictConfig) and leaf in node


def now(value) -> str:
    return "all" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
