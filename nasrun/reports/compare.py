"""`nasrun-compare SWEEP_DIR`: compare the strategies of a multirun sweep.

Reads every job directory under SWEEP_DIR (those with a summary.json, e.g. from
`nasrun -m strategy=random,regularized_evolution seed=0,1,2 ...`), groups the jobs by strategy (and by
any other setting that varies across the sweep: space, estimator, dataset, budget), and reports per
group the mean, its 95% t interval over seeds, std, best, worst and median of the final reported
accuracy (test accuracy when the run has one, else the best validation score) with a ranking by mean
(equal means share a rank). Each pair of strategies run with the same settings gets a two-sided
Mann-Whitney U test (Holm-adjusted over the pairs) and a verdict: "indistinguishable" unless p < 0.05
(nasrun/reports/significance.py). Writes into SWEEP_DIR `comparison.json`, `anytime.png` (best-so-far
validation score vs queries, mean ± std band per group) and `comparison.html` (a self-contained page:
sortable groups and jobs, each job linked to its report.html, the anytime plot).
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
from nasrun.reports.html import write_comparison_page
from nasrun.reports.plots import best_so_far as running_best
from nasrun.reports.plots import plot_anytime
from nasrun.reports.significance import ALPHA, CONFIDENCE, compare_pairs, pair_line, t_interval, tied_ranks
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


def varying_settings(jobs: list[Job]) -> list[str]:
    """The SETTINGS that differ between jobs of the sweep."""
    return [key for key in SETTINGS if len({str(job.settings[key]) for job in jobs}) > 1]


def group_jobs(jobs: list[Job]) -> dict[str, list[Job]]:
    """Jobs by strategy, plus every setting that differs between jobs of the sweep."""
    varying = varying_settings(jobs)
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(group_label(job.strategy, settings_label(job, varying)), []).append(job)
    return groups


def settings_label(job: Job, varying: list[str]) -> str:
    return ", ".join(f"{key}={job.settings[key]}" for key in varying)


def group_label(strategy: str, settings: str) -> str:
    return f"{strategy} [{settings}]" if settings else strategy


def group_stats(jobs: list[Job]) -> dict:
    values = [job.value for job in jobs if job.value is not None]
    stats = {"runs": len(jobs), "scored": len(values), "metric": sorted({job.metric for job in jobs}),
             "values": values}
    if values:
        interval = t_interval(values)
        stats.update(mean=statistics.mean(values), ci95=list(interval) if interval else None,
                     std=statistics.stdev(values) if len(values) > 1 else 0.0,
                     best=max(values), worst=min(values), median=statistics.median(values))
    return stats


def rank_rows(rows: list[dict]) -> None:
    """Sort by mean (best first) and rank, equal means sharing a rank; unscored groups come last, unranked."""
    rows.sort(key=lambda row: -row.get("mean", float("-inf")))
    scored = [row for row in rows if "mean" in row]
    for row, rank in zip(scored, tied_ranks([row["mean"] for row in scored])):
        row["rank"] = rank
    for row in rows[len(scored):]:
        row["rank"] = None


def strategy_pairs(rows: list[dict]) -> list[dict]:
    """The rank test of every pair of strategies run with the same settings."""
    by_settings: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        by_settings.setdefault(row["settings"], {})[row["group"]] = row["values"]
    return [pair for groups in by_settings.values() for pair in compare_pairs(groups)]


def shared_settings(jobs: list[Job]) -> str:
    """`search_space=nb201 · estimator=nb201 · budget.trials=5`: the settings every job of the sweep has."""
    shared = [f"{key}={jobs[0].settings[key]}" for key in SETTINGS
              if jobs[0].settings[key] is not None and len({str(job.settings[key]) for job in jobs}) == 1]
    return " · ".join(shared)


def compare(sweep_dir: Path, plot: bool = True) -> dict:
    """Aggregate the sweep; write comparison.json, comparison.html (and anytime.png); return the comparison."""
    every_job = find_jobs(sweep_dir)
    groups, varying = group_jobs(every_job), varying_settings(every_job)
    rows = []
    for label, members in groups.items():
        runs = [{"dir": str(job.path.relative_to(sweep_dir)), "seed": job.seed, "value": job.value,
                 "metric": job.metric} for job in members]
        rows.append({"group": label, "strategy": members[0].strategy, "settings": settings_label(members[0], varying),
                     **group_stats(members), "jobs": runs})
    rank_rows(rows)
    comparison = {"sweep_dir": str(sweep_dir), "groups": rows, "pairs": strategy_pairs(rows),
                  "test": {"name": "Mann-Whitney U, two-sided", "alpha": ALPHA, "adjustment": "holm",
                           "interval": f"t interval of the mean, {CONFIDENCE:.0%}"}}
    context = f"{sweep_dir.name} · {shared_settings(every_job)}"
    images = []
    if plot:
        curves = {label: [job.curve for job in jobs] for label, jobs in groups.items()}
        images.append(plot_anytime(curves, RunDir(sweep_dir).anytime_plot, context=context))
        comparison["plot"] = str(images[0])
    comparison["page"] = str(write_comparison_page(sweep_dir, comparison, every_job, context, images))
    atomic_write_json(RunDir(sweep_dir).comparison, comparison)
    return comparison


def comparison_table(comparison: dict):
    from rich.table import Table

    table = Table(title=f"nasrun-compare: {comparison['sweep_dir']}", title_justify="left",
                  caption="of: test = final test accuracy of the best architecture; val = best validation score. "
                          "Equal means share a rank; 95% CI: t interval of the mean over seeds")
    table.add_column("rank", justify="right")
    table.add_column("strategy", no_wrap=True)
    for column in ("runs", "mean", "95% CI", "std", "best", "worst", "median"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("of")
    for row in comparison["groups"]:
        numbers = [f"{row[k]:.4f}" if k in row else "-" for k in ("mean", "std", "best", "worst", "median")]
        interval = "{:.4f}-{:.4f}".format(*row["ci95"]) if row.get("ci95") else "-"
        metric = ",".join("test" if m == "test_accuracy" else "val" for m in row["metric"])
        table.add_row("-" if row["rank"] is None else str(row["rank"]), row["group"], f"{row['scored']}/{row['runs']}",
                      numbers[0], interval, *numbers[1:], metric)
    return table


def verdict_lines(comparison: dict) -> list[str]:
    """One line per pair of strategies: which is better, or that they are indistinguishable (and why)."""
    pairs = comparison["pairs"]
    return [pair_line(pair, several=len(pairs) > 1) for pair in pairs]
