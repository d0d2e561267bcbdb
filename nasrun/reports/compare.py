"""`nasrun-compare SWEEP_DIR`: compare the strategies of a multirun sweep.

Reads every job directory under SWEEP_DIR (those with a summary.json, e.g. from
`nasrun -m strategy=random,regularized_evolution seed=0,1,2 ...`), groups the jobs by strategy (and by
any other setting that varies across the sweep: space, estimator, dataset, budget), and reports per
group the mean, std, best, worst and median of the final reported accuracy (test accuracy when the run
has one, else the best validation score) with a ranking by mean. Writes `comparison.json` and
`anytime.png` (best-so-far validation score vs queries, mean ± std band per group) into SWEEP_DIR.
It takes no lock: it reads the complete lines of each job's trials.jsonl, so it works while jobs run.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nasrun.errors import CheckpointError, NasrunError
from nasrun.records import TrialLog
from nasrun.reports.plots import best_so_far as running_best
from nasrun.reports.plots import plot_anytime
from nasrun.rundir import RunDir, atomic_write_json
from nasrun.state import read_yaml

SETTINGS = ("search_space", "estimator", "estimator.dataset", "dataset", "budget.trials")


@dataclass
class Job:
    path: Path
    strategy: str
    settings: dict
    seed: int | None
    value: float | None
    metric: str
    curve: list[float] = field(default_factory=list)


def read_job(path: Path) -> Job:
    """One job directory: its strategy, settings, final accuracy and best-so-far validation curve."""
    run = RunDir(path)
    summary = run.read_summary()
    config = read_yaml(run.config, "saved config") if run.config.is_file() else OmegaConf.create({})
    if not isinstance(config, DictConfig):
        raise CheckpointError(f"saved config {run.config} is not a nasrun run config (a mapping of config groups)")
    settings = {key: _setting(config, summary, key) for key in SETTINGS}
    test = summary.get("test") or {}
    metric, value = ("test_accuracy", test["test_accuracy"]) if test.get("test_accuracy") is not None \
        else ("best_score", summary["best_score"]) if "best_score" in summary \
        else ("best_val_accuracy", summary.get("best_val_accuracy"))  # a summary written before best_score
    strategy = summary.get("strategy") or OmegaConf.select(config, "strategy.name", default="?")
    return Job(path, str(strategy), settings, summary.get("seed"), value, metric, best_so_far(run.trials))


def _setting(config, summary: dict, key: str):
    value = OmegaConf.select(config, f"{key}.name", default=None) if key in ("search_space", "estimator", "dataset") \
        else OmegaConf.select(config, key, default=None)
    return value if value is not None else summary.get(key)


def best_so_far(trials_path: Path) -> list[float]:
    """Best score (Trial.score) after each query, in trial-id order, from the first successful trial on."""
    scores = [t.score() for t in sorted(TrialLog(trials_path).read(), key=lambda t: t.id)]
    return [value for value in running_best(scores) if not math.isnan(value)]


def find_jobs(sweep_dir: Path) -> list[Job]:
    if not sweep_dir.is_dir():
        raise NasrunError(f"{sweep_dir} is not a directory: SWEEP_DIR must be a multirun sweep folder")
    RunDir(sweep_dir).check("sweep directory")
    jobs = [read_job(p.parent) for p in sorted(sweep_dir.rglob(RunDir.summary))]
    if not jobs:
        raise NasrunError(f"no job directories (with summary.json) under {sweep_dir}")
    return jobs


def group_jobs(jobs: list[Job]) -> dict[str, list[Job]]:
    """Jobs by strategy, plus every setting that differs between jobs of the sweep."""
    varying = [key for key in SETTINGS if len({str(job.settings[key]) for job in jobs}) > 1]
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        extra = ", ".join(f"{key}={job.settings[key]}" for key in varying)
        groups.setdefault(f"{job.strategy} [{extra}]" if extra else job.strategy, []).append(job)
    return groups


def group_stats(jobs: list[Job]) -> dict:
    values = [job.value for job in jobs if job.value is not None]
    stats = {"runs": len(jobs), "scored": len(values), "metric": sorted({job.metric for job in jobs})}
    if values:
        stats.update(mean=statistics.mean(values), std=statistics.stdev(values) if len(values) > 1 else 0.0,
                     best=max(values), worst=min(values), median=statistics.median(values))
    return stats


def compare(sweep_dir: Path, plot: bool = True) -> dict:
    """Aggregate the sweep; write comparison.json (and anytime.png); return the comparison."""
    groups = group_jobs(find_jobs(sweep_dir))
    rows = []
    for label, jobs in groups.items():
        runs = [{"dir": str(job.path.relative_to(sweep_dir)), "seed": job.seed, "value": job.value,
                 "metric": job.metric} for job in jobs]
        rows.append({"group": label, "strategy": jobs[0].strategy, **group_stats(jobs), "jobs": runs})
    rows.sort(key=lambda row: -row.get("mean", float("-inf")))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    comparison = {"sweep_dir": str(sweep_dir), "groups": rows}
    if plot:
        curves = {label: [job.curve for job in jobs] for label, jobs in groups.items()}
        comparison["plot"] = str(plot_anytime(curves, RunDir(sweep_dir).anytime_plot))
    atomic_write_json(RunDir(sweep_dir).comparison, comparison)
    return comparison


def comparison_table(comparison: dict):
    from rich.table import Table

    table = Table(title=f"nasrun-compare: {comparison['sweep_dir']}", title_justify="left",
                  caption="of: test = final test accuracy of the best architecture; val = best validation score")
    table.add_column("rank", justify="right")
    table.add_column("strategy", no_wrap=True)
    for column in ("runs", "mean", "std", "best", "worst", "median"):
        table.add_column(column, justify="right")
    table.add_column("of")
    for row in comparison["groups"]:
        numbers = [f"{row[k]:.4f}" if k in row else "-" for k in ("mean", "std", "best", "worst", "median")]
        metric = ",".join("test" if m == "test_accuracy" else "val" for m in row["metric"])
        table.add_row(str(row["rank"]), row["group"], f"{row['scored']}/{row['runs']}", *numbers, metric)
    return table
