"""The run report, written at the end of every run (`report: true`) and by `nasrun-report RUN_DIR`:

  report.html                 one self-contained page (nasrun/reports/html.py): sortable trials, every plot
                              below inlined, the best architecture, the config; opens offline
  plots/best_so_far_trials.png  each trial's score and the best so far, by trial id
  plots/best_so_far_time.png    the same against wall-clock time since the run started (not for a table
                                lookup, whose wall-clock time is that of the lookups: the packaged NB201 table
                                holds no training times, so such a run is plotted against queries only)
  pareto.png                  the Pareto front of a multi-objective run, its constraints drawn
  plots/alphas_<cell>.png     α per edge (named node ← input) and op across epochs, when alphas.jsonl exists
  plots/best_architecture.png the best architecture as its space draws it (nasrun/reports/drawing.py)
A plot that cannot be drawn is a warning, never an error.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nasrun.assessment.objectives import Objectives
from nasrun.errors import CheckpointError, RunDirError
from nasrun.records import Trial
from nasrun.reports.alphas import plot_alphas, read_alphas
from nasrun.reports.drawing import draw_architecture
from nasrun.reports.plots import plot_best_so_far, plot_pareto
from nasrun.rundir import RunDir
from nasrun.state import read_json_object, read_yaml

log = logging.getLogger("nasrun")

TABULAR_NOTE = "plotted against queries: a table lookup has no training time"


def run_facts(run: RunDir) -> dict:
    """Strategy, space, estimator, dataset and seed of a run, from summary.json, else its saved config.
    A tabular estimator's own dataset (estimator.dataset) is the one that counts."""
    summary = read_json_object(run.summary, "run summary") if run.summary.is_file() else {}
    config = read_yaml(run.config, "saved config") if run.config.is_file() else None
    if not isinstance(config, DictConfig):
        config = OmegaConf.create({})

    def pick(key: str):
        return summary.get(key) or OmegaConf.select(config, f"{key}.name", default=None)

    seed = summary.get("seed", OmegaConf.select(config, "seed", default=None))
    return {"strategy": pick("strategy"), "search_space": pick("search_space"), "estimator": pick("estimator"),
            "dataset": OmegaConf.select(config, "estimator.dataset", default=None) or pick("dataset"),
            "seed": seed, "tabular": bool(summary.get("tabular", False))}


def context_line(facts: dict) -> str:
    """`random · nb201 · nb201 · cifar10 · seed 0`: what tells one run's plots from another's."""
    parts = [facts.get(key) for key in ("strategy", "search_space", "estimator", "dataset")]
    seed = facts.get("seed")
    return " · ".join([str(p) for p in parts if p] + ([f"seed {seed}"] if seed is not None else []))


def wall_times(run_dir: Path, trials: list[Trial]) -> list[float]:
    """When each trial finished (from the runner checkpoint), else the running sum of trial durations."""
    finished = RunDir(run_dir).finished_at()
    if trials and all(t.id in finished for t in trials):
        return [finished[t.id] for t in trials]
    total, times = 0.0, []
    for trial in trials:
        total += trial.seconds or 0.0
        times.append(total)
    return times


def pareto_objectives(path: Path) -> Objectives:
    """The objectives pareto.json names; a record Objectives rejects is a one-line CheckpointError."""
    record = read_json_object(path, "Pareto front", ("objectives", "constraints"))
    try:
        return Objectives(record["objectives"], record["constraints"] or None)
    except Exception as err:  # noqa: BLE001 - whatever a hand-edited record makes Objectives reject
        raise CheckpointError(f"Pareto front {path} names unusable objectives ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:120] if str(err) else ''})") from None


def plot_jobs(run: RunDir, trials: list[Trial], facts: dict) -> list[tuple[str, object]]:
    """(what, function returning the PNGs written) for every plot the run's files allow."""
    out, context = run.plots, context_line(facts)
    jobs = []
    if trials:
        note = TABULAR_NOTE if facts["tabular"] else None
        jobs.append(("best so far by trial", lambda: [plot_best_so_far(trials, out / "best_so_far_trials.png",
                                                                       context=context, note=note)]))
        if not facts["tabular"]:
            jobs.append(("best so far by time", lambda: [plot_best_so_far(
                trials, out / "best_so_far_time.png", wall_times(run.path, trials), context=context)]))
    if trials and run.pareto.exists():
        objectives = pareto_objectives(run.pareto)
        jobs.append(("Pareto front", lambda: [plot_pareto(trials, objectives, run.pareto_plot, context=context)]))
    best = read_json_object(run.best, "best architecture", ("space", "arch")) if run.best.exists() else None
    if run.alphas.exists():
        space = (best or {}).get("space") or facts["search_space"]
        jobs.append(("α trajectories", lambda: plot_alphas(read_alphas(run.alphas), out, space, context)))
    if best is not None:
        jobs.append(("best architecture", lambda: [draw_architecture(best["space"], best["arch"],
                                                                     out / "best_architecture.png")]))
    return jobs


def write_run_report(run_dir: str | Path) -> list[Path]:
    """Draw every plot the run's files allow, then report.html. What fails to draw is a warning, never an
    error; an unreadable run file or a failed write (read-only directory, full disk) is a one-line error."""
    from nasrun.reports.html import write_run_page

    run = RunDir(run_dir)
    trials = run.read_trials()
    facts = run_facts(run)
    written = []
    for name, job in plot_jobs(run, trials, facts):
        try:
            written += [p for p in job() if p is not None]
        except RunDirError:  # a write that failed: the next one would too
            raise
        except Exception as err:  # noqa: BLE001 - a report must never fail the run it describes
            log.warning("report: could not draw %s: %s: %s", name, type(err).__name__, err)
    try:
        written.append(write_run_page(run, trials, facts, context_line(facts), written))
    except RunDirError:
        raise
    except Exception as err:  # noqa: BLE001
        log.warning("report: could not write %s: %s: %s", run.report, type(err).__name__, err)
    return written
