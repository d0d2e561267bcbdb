"""Per-trial cost metrics, fitness and feasibility, and the Pareto front of a multi-objective run.

The runner calls `assess(trial)` when a trial finishes (before it is recorded) and `finish(trials,
run_dir)` at the end: for runs with two or more objectives that writes `pareto.json` and `pareto.png`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from nasrun.errors import ConfigError
from nasrun.metrics import ArchitectureMetrics, MetricsConfig, measure_for
from nasrun.objectives import Objectives
from nasrun.records import Trial, atomic_write_json, best_trial

log = logging.getLogger("nasrun")


class Assessment:
    def __init__(self, objectives: Objectives, metrics: ArchitectureMetrics | None):
        self.objectives, self.metrics = objectives, metrics

    def assess(self, trial: Trial) -> None:
        """Add the cost metrics of the trial's architecture, then its feasibility and fitness."""
        if not trial.ok:
            return
        if self.metrics is not None and self.metrics.measures:
            try:
                trial.metrics = {**self.metrics.measure(trial.arch), **trial.metrics}
            except Exception as err:  # a metric that cannot be measured must not end the search
                log.warning("trial %d: could not measure %s: %s", trial.id, sorted(self.metrics.measures), err)
        self.objectives.assess(trial)
        if not trial.metrics.get("feasible", 1):
            log.info("trial %d violates the constraints (violation %.3f)", trial.id,
                     trial.metrics["constraint_violation"])

    def finish(self, trials: Sequence[Trial], run_dir: Path) -> dict:
        """Write the Pareto front of a multi-objective run; return what the summary should add."""
        summary: dict[str, Any] = {"objectives": self.objectives.names()}
        best = best_trial(trials)
        if best is not None and "fitness" in best.metrics:
            summary["best_fitness"] = best.metrics["fitness"]
        if self.objectives.constraints:
            summary["feasible_trials"] = sum(t.ok and t.metrics.get("feasible", 0) == 1 for t in trials)
            if not summary["feasible_trials"]:
                log.warning("no architecture satisfies the constraints %s: no best architecture is reported",
                            {c.metric: {"min": c.min, "max": c.max} for c in self.objectives.constraints})
        if not self.objectives.multi:
            return summary
        record = self.objectives.pareto_record(trials)
        atomic_write_json(Path(run_dir) / "pareto.json", record)
        summary["pareto_front"] = [entry["trial"] for entry in record["front"]]
        try:
            from nasrun.plots import plot_pareto

            plot_pareto(trials, self.objectives, Path(run_dir) / "pareto.png")
        except ImportError as err:
            log.warning("pareto.png not drawn (%s); pip install nasrun[plots]", err)
        return summary


def build_assessment(cfg: DictConfig, space, data, hardware) -> Assessment:
    """The run's Assessment from the `metrics`, `objectives`, `constraints` and `scalarization` config."""
    objectives = Objectives(plain(cfg.get("objectives")), plain(cfg.get("constraints")),
                            cfg.get("scalarization", "weighted_sum"))
    settings = plain(cfg.get("metrics")) or {}
    unknown = set(settings) - set(MetricsConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"metrics: unknown keys {sorted(unknown)} (known: {sorted(MetricsConfig.__dataclass_fields__)})")
    config = MetricsConfig(**settings)
    needed = {measure_for(m) for m in objectives.metrics()} - {None}
    measures = set(config.enabled) | needed
    if data is None:
        if needed:
            log.warning("no dataset is loaded (tabular estimator): %s must come from the estimator", sorted(needed))
        return Assessment(objectives, None)
    metrics = ArchitectureMetrics(space, tuple(data.input_shape), data.num_classes, hardware.device, config, measures)
    return Assessment(objectives, metrics)


def plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
