"""Rich progress while a search runs (trials, epochs, best so far) and the summary table at the end."""

from __future__ import annotations

from typing import Any, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.markup import escape
from rich.table import Column, Table

from nasrun.console import add_row, console, new_table, number_column, text_column
from nasrun.records import Trial

INFO_WIDTH = 32   # characters of metrics beside a bar


class SearchProgress:
    """Bars for the trials of the search, the epochs of the trial being trained, and the steps of each
    supernet training (a phase: its bar and ETA move every step, not every epoch)."""

    def __init__(self, total_trials: int, enabled: bool = True):
        self.enabled = enabled
        self.best: float | None = None
        info = Column(max_width=INFO_WIDTH, no_wrap=True, overflow="ellipsis")  # never squeezes out the counts
        self.progress = Progress(
            TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", table_column=info), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=not enabled, transient=False,
        )
        self.trials = self.progress.add_task("trials", total=total_trials, info="")
        self.epochs = self.progress.add_task("epochs", total=1, info="", visible=False)
        self.phase_task = None

    def __enter__(self) -> "SearchProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def phase(self, description: str) -> None:
        """A bar of its own for a named phase (e.g. supernet training), counting its steps."""
        self.phase_task = self.progress.add_task(description, total=None, info="")

    def step(self, done: int, per_epoch: int, epochs: int) -> None:
        """Step `done` of the phase's per_epoch x epochs."""
        self.progress.update(self.phase_task, completed=done, total=per_epoch * epochs)

    def phase_epoch(self, epoch: int, total: int, metrics: dict) -> None:
        """The end of a phase's epoch: its number and metrics beside the step bar."""
        self.progress.update(self.phase_task, info=f"epoch {epoch}/{total}  {metric_info(metrics)}")

    def trial_started(self, trial_id: int, description: str) -> None:
        if not self.enabled:  # nothing to draw: skip rich's bookkeeping (a tabular trial takes microseconds)
            return
        self.progress.update(self.epochs, description=f"trial {trial_id}", completed=0, visible=True,
                             info=escape(description[:48]))

    def epoch(self, epoch: int, total: int, metrics: dict) -> None:
        if not self.enabled:
            return
        self.progress.update(self.epochs, completed=epoch, total=total, info=metric_info(metrics))

    def trial_finished(self, trial: Trial, best: Trial | None) -> None:
        self.best = best.score() if best else None
        if not self.enabled:
            return
        info = f"best {score_name([best])}={format_score(self.best)}" if self.best is not None else "no successful trial yet"
        self.progress.update(self.trials, advance=1, info=info)


def metric_info(metrics: dict) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))


def score_name(trials: Sequence[Trial]) -> str:
    """What `Trial.score()` ranks these trials by: fitness when they have one, else val_accuracy."""
    return "fitness" if any("fitness" in t.metrics for t in trials) else "val_accuracy"


def format_score(value: float) -> str:
    """Accuracies with 4 decimals; proxy scores of any magnitude (synflow reaches 1e30) with 4 digits."""
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def format_metric(value) -> str:
    """A metric for a table cell: integers with thousands separators, floats as format_score, '-' if absent."""
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else format_score(float(value))


def summary_table(trials: Sequence[Trial], describe, test_metrics: dict, run_dir: Any, objectives=None,
                  top: int = 5) -> Table:
    """The best trials by the run's score (the caption says what `fitness` is), the failures counted, and
    the final test score. A multi-fidelity run adds the epochs each trial trained to; a multi-objective run
    (`objectives`: the run's Objectives) each objective's value."""
    ranked = sorted((t for t in trials if t.ok and t.metrics.get("feasible", 1)), key=lambda t: -t.score())[:top]
    failed = sum(not t.ok for t in trials)
    violating = sum(t.ok and not t.metrics.get("feasible", 1) for t in trials)
    violations = f", {violating} violate the constraints" if violating else ""
    score = score_name(ranked)
    notes = [objectives.describe_fitness()] if score == "fitness" and objectives is not None else []
    if test_metrics:
        notes.append("best architecture, final test: " + "  ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in test_metrics.items()))
    table = new_table(f"nasrun: {len(trials)} trials ({failed} failed{violations})  ·  run dir: {run_dir}",
                      "\n".join(notes) or None)
    fidelity = ["epochs"] if any(t.fidelity is not None for t in trials) else []
    shown = objectives.names() if objectives is not None and objectives.multi else []
    metrics = [name for name in shown if name not in (score, "params")]
    for column in ("rank", "trial", *fidelity, score, *metrics, "params", "seconds"):
        number_column(table, column)
    text_column(table, "architecture")
    for rank, trial in enumerate(ranked, start=1):
        add_row(table, rank, trial.id, *([format_metric(trial.fidelity)] if fidelity else []),
                format_score(trial.score()), *(format_metric(trial.metrics.get(name)) for name in metrics),
                format_metric(trial.metrics.get("params")), f"{trial.seconds:.1f}", describe(trial.arch))
    return table
