"""Self-contained HTML pages: `report.html` of a run and `comparison.html` of a sweep.

Rendered by Jinja2 (autoescaped) from nasrun/reports/templates/; every figure is an inline PNG (a
base64 data: URI) and the one script (table sorting) is inline, so a page opens offline, from a mail or a
copied folder: it names no external URL at all.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasrun.records import Trial
from nasrun.rundir import RunDir, atomic_write
from nasrun.state import read_json_object, read_text

FIGURES = {  # file-name prefix -> (heading, caption)
    "best_so_far_trials": ("Anytime curve", "Each trial's score and the best so far, by trial id."),
    "best_so_far_time": ("Best so far over time", "The same against wall-clock seconds since the run started."),
    "pareto": ("Pareto front", "The first two objectives; dashed lines: the constraints on them."),
    "alphas_": ("α over epochs", "Softmax weight of each op per edge (node ← input) at the end of each epoch."),
    "best_architecture": ("Best architecture", "The best trial's architecture as its space draws it."),
    "anytime": ("Anytime curves", "Best so far vs queries, mean ± std over each group's runs."),
}


@dataclass
class Cell:
    """A table cell: its text, and the value it sorts by (None: its text; "": missing, sorted last)."""

    text: str
    sort: Any = None


def environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader("nasrun.reports", "templates"), autoescape=select_autoescape(["j2"]))


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def figure_entries(images: list[Path]) -> list[dict]:
    """Heading, caption and inline source of each PNG, in the order of FIGURES."""
    entries = []
    for prefix, (heading, caption) in FIGURES.items():
        for path in (p for p in images if p.suffix == ".png" and p.stem.startswith(prefix)):
            cell = path.stem[len(prefix):] if prefix == "alphas_" else ""
            entries.append({"heading": f"{heading}: {cell} cell" if cell else heading, "caption": caption,
                            "src": data_uri(path)})
    return entries


def number_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return "nan" if math.isnan(value) else f"{value:.6g}"


def metric_cell(value: Any) -> Cell:
    sortable = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return Cell(number_text(value), value if sortable else "")


# --- the run page ----------------------------------------------------------------------------------------------
def metric_names(trials: list[Trial], first: list[str]) -> list[str]:
    """Every metric any trial has: the objectives first, then alphabetical."""
    names = {key for trial in trials for key in trial.metrics}
    return [m for m in dict.fromkeys(first) if m in names] + sorted(names - set(first))


def trial_table(trials: list[Trial], summary: dict) -> tuple[list[dict], list[dict]]:
    """Columns and rows of the trials table: id, status, fidelity, seconds, every metric, the whole arch."""
    metrics = metric_names(trials, ["fitness", *summary.get("objectives", []), "val_accuracy"])
    fidelity = any(t.fidelity is not None for t in trials)
    columns = [{"key": "id", "title": "trial", "kind": ""}, {"key": "status", "title": "status", "kind": "text"},
               *([{"key": "fidelity", "title": "fidelity (epochs)", "kind": ""}] if fidelity else []),
               {"key": "seconds", "title": "seconds", "kind": ""},
               *[{"key": m, "title": m, "kind": ""} for m in metrics],
               {"key": "arch", "title": "architecture", "kind": "text arch"},
               {"key": "error", "title": "error", "kind": "text"}]
    best, rows = summary.get("best_trial"), []
    for trial in sorted(trials, key=lambda t: t.id):
        status = trial.status if trial.ok and trial.metrics.get("feasible", 1) else \
            ("violates constraints" if trial.ok else trial.status)
        kind = "best" if trial.id == best else "failed" if not trial.ok else \
            "infeasible" if status != trial.status else ""
        cells = [Cell(str(trial.id), trial.id), Cell(status),
                 *([metric_cell(trial.fidelity)] if fidelity else []), metric_cell(trial.seconds),
                 *[metric_cell(trial.metrics.get(m)) for m in metrics],
                 Cell(trial.arch if isinstance(trial.arch, str) else json.dumps(trial.arch, separators=(", ", ": "))),
                 Cell(last_line(trial.error))]
        rows.append({"kind": kind, "cells": cells})
    return columns, rows


def last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1][:300] if lines else ""


def run_summary_facts(summary: dict, trials: list[Trial]) -> list[tuple[str, str]]:
    test = summary.get("test") or {}
    facts = [("trials", f"{len(trials)} ({sum(not t.ok for t in trials)} failed)"),
             ("best trial", number_text(summary.get("best_trial"))),
             (f"best {summary.get('score_metric', 'score')}", number_text(summary.get("best_score"))),
             *[(key, number_text(value)) for key, value in test.items()],
             ("objectives", ", ".join(summary.get("objectives", []))),
             ("wall-clock seconds", number_text(summary.get("wall_seconds"))),
             ("stopped early", summary.get("stop_reason", "")),
             ("device", summary.get("device_name") or summary.get("device") or ""),
             ("nasrun / torch", " / ".join(str(summary.get("versions", {}).get(k, "")) for k in ("nasrun", "torch")))]
    return [(key, value) for key, value in facts if value not in ("", None)]


def write_run_page(run: RunDir, trials: list[Trial], facts: dict, context: str, images: list[Path]) -> Path:
    """report.html of a run: its facts, sortable trials, every figure inlined, the best arch, the config."""
    summary = read_json_object(run.summary, "run summary") if run.summary.is_file() else {}
    columns, rows = trial_table(trials, summary)
    best = read_json_object(run.best, "best architecture") if run.best.is_file() else None
    overrides = run.overrides
    page = environment().get_template("run.html.j2").render(
        title=f"nasrun report: {run.path.name}", name=run.path.name, context=context,
        facts=run_summary_facts(summary, trials), dashboard=(summary.get("optuna") or {}).get("dashboard"),
        columns=columns, rows=rows, best_id=summary.get("best_trial"), figures=figure_entries(images),
        best_arch=json.dumps(best.get("arch"), indent=1) if best else None,
        overrides=read_text(overrides, "config", "saved overrides") if overrides.is_file() else None,
        config=read_text(run.config, "config", "saved config") if run.config.is_file() else None)
    atomic_write(run.report, page, durable=False)
    return run.report


# --- the sweep page --------------------------------------------------------------------------------------------
GROUP_COLUMNS = ("rank", "group", "runs", "mean", "std", "best", "worst", "median", "metric")


def write_comparison_page(sweep_dir: Path, comparison: dict, jobs: list, context: str,
                          images: list[Path]) -> Path:
    """comparison.html of a sweep: the ranked groups, every job (linked to its report.html), the anytime plot."""
    groups = [[Cell(str(row["rank"]), row["rank"]), Cell(row["group"]), Cell(f"{row['scored']}/{row['runs']}", row["runs"]),
               *[metric_cell(row.get(key)) for key in ("mean", "std", "best", "worst", "median")],
               Cell(", ".join(row["metric"]))] for row in comparison["groups"]]
    settings = sorted({key for job in jobs for key in job.settings})
    job_rows = []
    for job in jobs:
        relative = job.path.relative_to(sweep_dir)
        report = RunDir(job.path).report
        job_rows.append({"report": (relative / report.name).as_posix() if report.is_file() else None,
                         "cells": [Cell(relative.as_posix()), Cell(job.strategy), metric_cell(job.seed),
                                   metric_cell(job.value), Cell(job.metric),
                                   *[Cell(number_text(job.settings[key])) for key in settings]]})
    first_config = RunDir(jobs[0].path).config if jobs else None
    page = environment().get_template("comparison.html.j2").render(
        title=f"nasrun comparison: {sweep_dir.name}", name=sweep_dir.as_posix(), context=context,
        of="test accuracy of the best architecture where the run has one, else its best validation score",
        group_columns=GROUP_COLUMNS, groups=groups,
        job_columns=["job", "strategy", "seed", "final score", "of", *settings], jobs=job_rows,
        figures=figure_entries(images),
        config=read_text(first_config, "config", "saved config")
        if first_config is not None and first_config.is_file() else None)
    path = RunDir(sweep_dir).comparison_page
    atomic_write(path, page, durable=False)
    return path
