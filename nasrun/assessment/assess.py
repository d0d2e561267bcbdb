"""Per-trial cost metrics, fitness and feasibility, and the Pareto front of a multi-objective run.

The runner calls `assess(trial)` when a trial finishes (before it is recorded) and `finish(trials,
run_dir)` at the end: for runs with two or more objectives that writes `pareto.json` (the run report
draws `pareto.png` from it, `nasrun.reports.plots.write_run_report`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from omegaconf import DictConfig, OmegaConf

from nasrun.errors import ConfigError
from nasrun.assessment.metrics_config import COST_METRICS, MetricsConfig, measure_for
from nasrun.assessment.objectives import Objectives
from nasrun.records import Trial, best_trial
from nasrun.rundir import RunDir, atomic_write_json

if TYPE_CHECKING:
    from nasrun.assessment.metrics import ArchitectureMetrics

log = logging.getLogger("nasrun")


class Assessment:
    def __init__(self, objectives: Objectives, metrics: ArchitectureMetrics | None):
        self.objectives, self.metrics = objectives, metrics
        self.needed = {measure_for(m) for m in objectives.metrics()} - {None}

    def assess(self, trial: Trial) -> None:
        """Add the cost metrics of the trial's architecture, then its feasibility and fitness. A metric
        the objectives need and that cannot be measured fails the trial; any other one is a warning."""
        if not trial.ok:
            return
        if self.metrics is not None and self.metrics.measures:
            try:
                trial.metrics = {**self.metrics.measure(trial.arch), **trial.metrics}
            except Exception as err:  # noqa: BLE001 - one architecture's measurement must not end the search
                measures = sorted(self.metrics.measures)
                if self.needed:
                    trial.status = "failed"
                    trial.error = f"measuring {measures} (needed by the objectives) failed: {type(err).__name__}: {err}"
                    return
                log.warning("trial %d: could not measure %s: %s", trial.id, measures, err)
        self.objectives.assess(trial)
        if not trial.metrics.get("feasible", 1):
            log.info("trial %d violates the constraints (violation %.3f)", trial.id,
                     trial.metrics["constraint_violation"])

    def finish(self, trials: Sequence[Trial], run_dir: Path | None) -> dict:
        """Write the Pareto front of a multi-objective run (unless `run_dir` is None); return what the
        summary should add."""
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
        if run_dir is not None:
            atomic_write_json(RunDir(run_dir).pareto, record)
        summary["pareto_front"] = [entry["trial"] for entry in record["front"]]
        return summary  # pareto.png is drawn from pareto.json with the run's other plots (nasrun.reports.plots)


def assessment_settings(cfg: DictConfig, estimator, one_shot: bool) -> tuple[Objectives, MetricsConfig]:
    """The run's objectives and metrics settings, checked before anything is trained: types, ranges and
    that every metric an objective or constraint names is one this run records."""
    objectives = Objectives(plain(cfg.get("objectives")), plain(cfg.get("constraints")),
                            cfg.get("scalarization", "weighted_sum"), primary=estimator.score_metric)
    settings = plain(cfg.get("metrics"))
    settings = {} if settings is None else settings
    if not isinstance(settings, dict):
        raise ConfigError(f"metrics must be a mapping (enabled, latency, ...), got {settings!r}")
    unknown = set(settings) - set(MetricsConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"metrics: unknown keys {sorted(unknown)} (known: {sorted(MetricsConfig.__dataclass_fields__)})")
    config = MetricsConfig(**settings)
    measured = COST_METRICS if estimator.needs_data or one_shot else ()
    known = [*estimator.reports, *measured, *(["search_seconds"] if one_shot else [])]
    objectives.check_metrics(known, f"estimator {type(estimator).__name__}" + (" (no data loaded)" if not measured else ""))
    return objectives, config


def build_assessment(objectives: Objectives, config: MetricsConfig, space, data, hardware) -> Assessment:
    """The run's Assessment: cost metrics measured at the dataset's input size, fitness, Pareto front."""
    if data is None:
        return Assessment(objectives, None)
    measures = set(config.enabled) | ({measure_for(m) for m in objectives.metrics()} - {None})
    metrics = architecture_metrics(space, data.input_shape, data.num_classes, hardware.device, config, measures)
    return Assessment(objectives, metrics)


def architecture_metrics(space, input_shape, num_classes: int, device: str, config: MetricsConfig,
                         measures) -> ArchitectureMetrics:
    """ArchitectureMetrics, with latency predicted from a `nasrun-latency-table` JSON when the config says so."""
    from nasrun.assessment.latency_table import LatencyTable  # torch: only a run that measures loads them
    from nasrun.assessment.metrics import ArchitectureMetrics

    predictor = None
    if "latency" in set(measures) and config.latency == "table":
        predictor = LatencyTable.load(config.latency_table).predictor(space, tuple(input_shape))
    return ArchitectureMetrics(space, tuple(input_shape), num_classes, device, config, set(measures), predictor=predictor)


def plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
