"""`tracker=mlflow`: each run as an MLflow run in a local store, <outputs>/mlflow.db (artefacts in
<outputs>/mlartifacts), experiment `nasrun`; see it with `mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db`.

The run (named after the run dir) holds the flattened config as params and, per trial (step = trial id),
`trial_<metric>` and `best_score`; each trial is a nested run with its decisions as params, its metrics,
`epoch_<metric>` per epoch (step = epoch) and its arch as a tag; at the end the run's files are its
artefacts (summary.json as run_summary.json).
A resumed run continues its MLflow run and skips the trials it already holds. Needs `pip install mlflow`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from nasrun.run.background import BackgroundWriter
from nasrun.run.observers import RunObserver
from nasrun.run.optuna_study import decision_values
from nasrun.rundir import RunDir

DATABASE = "mlflow.db"
EXPERIMENT = "nasrun"
# The run's files, flat; summary.json as run_summary.json, so that no folder under outputs/ but a run dir
# holds a summary.json (nasrun-compare takes each folder with one for a run).
ARTEFACTS = {RunDir.config: "config.yaml", RunDir.trials: "trials.jsonl", RunDir.best: "best_architecture.json",
             RunDir.summary: "run_summary.json", RunDir.pareto: "pareto.json", RunDir.best_weights: "best_model.pt"}


def ui_command(root: Path) -> str:
    path = (Path(root) / DATABASE).resolve()
    try:
        path = path.relative_to(Path.cwd())
    except ValueError:
        pass
    return f"mlflow ui --backend-store-uri sqlite:///{path.as_posix()}"


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{"a.b": "value"} for every leaf of a nested config."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)[:500]
    return flat


class MlflowLog(RunObserver):
    def __init__(self, root: Path, run_name: str, cfg, space, run_dir: Path, resume: bool = False):
        self.root, self.run_name, self.run_dir, self.resume = Path(root), run_name, Path(run_dir), resume
        self.space = space
        self.config = flatten(OmegaConf.to_container(cfg, resolve=True))
        self.epochs: dict[int, list] = {}
        self.client = self.run_id = None
        self.logged: set[int] = set()
        self.writer = BackgroundWriter("mlflow", self._open)

    # --- main thread --------------------------------------------------------------------------------------
    def on_record(self, trial, evaluation, best, new_best) -> None:
        copy = dataclasses.replace(trial, metrics=dict(trial.metrics))
        self.writer.submit(f"trial {trial.id}", self._trial, copy, best.score() if best else None,
                           self.epochs.pop(trial.id, []))

    def epoch_report(self, trial_id: int, report):
        if report is None:
            return None

        def report_and_keep(epoch: int, total: int, metrics: dict) -> None:
            report(epoch, total, metrics)
            self.epochs.setdefault(trial_id, []).append((int(epoch), dict(metrics)))

        return report_and_keep

    def on_close(self) -> None:
        self.writer.drain()

    def on_finish(self, summary) -> None:
        self.writer.submit("the run's artefacts", self._finish)
        self.writer.close()

    # --- writer thread --------------------------------------------------------------------------------------
    def _open(self) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=f"sqlite:///{(self.root / DATABASE).resolve()}")
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
            EXPERIMENT, artifact_location=(self.root / "mlartifacts").resolve().as_uri())
        tag = f"tags.nasrun_run_dir = '{self.run_dir.resolve()}'"
        previous = self.client.search_runs([experiment_id], tag, max_results=1) if self.resume else []
        if previous:
            self.run_id = previous[0].info.run_id
            children = self.client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{self.run_id}'",
                                               max_results=50000)
            self.logged = {int(run.data.tags["nasrun_trial_id"]) for run in children}
        else:
            run = self.client.create_run(experiment_id, run_name=self.run_name,
                                         tags={"nasrun_run_dir": str(self.run_dir.resolve())})
            self.run_id = run.info.run_id
            params = [Param(k, v) for k, v in self.config.items()]
            for start in range(0, len(params), 100):
                self.client.log_batch(self.run_id, params=params[start:start + 100])
        self.experiment_id = experiment_id
        if self.resume:
            for trial in RunDir(self.run_dir).read_trials():
                self._trial(trial, None, [])

    def _trial(self, trial, best_score, epochs: list) -> None:
        from mlflow.entities import Metric, Param

        if trial.id in self.logged:
            return
        now = int(time.time() * 1000)
        numbers = {k: float(v) for k, v in trial.metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        parent = [Metric(f"trial_{k}", v, now, trial.id) for k, v in numbers.items()]
        if best_score is not None and math.isfinite(best_score):
            parent.append(Metric("best_score", best_score, now, trial.id))
        self.client.log_batch(self.run_id, metrics=parent)
        child = self.client.create_run(self.experiment_id, run_name=f"trial {trial.id}", tags={
            "mlflow.parentRunId": self.run_id, "nasrun_trial_id": str(trial.id), "status": trial.status,
            "arch": json.dumps(trial.arch, separators=(",", ":"))[:5000], **({"error": trial.error[:5000]} if trial.error else {})})
        per_epoch = [Metric(f"epoch_{k}", float(v), now, epoch) for epoch, metrics in epochs for k, v in metrics.items()
                     if isinstance(v, (int, float)) and math.isfinite(v)]
        params = {**decision_values(self.space, trial.arch), "seed": trial.seed,
                  **({"fidelity": trial.fidelity} if trial.fidelity is not None else {})}
        self.client.log_batch(child.info.run_id, metrics=[Metric(k, v, now, 0) for k, v in numbers.items()] + per_epoch,
                              params=[Param(k, str(v)) for k, v in params.items()])
        self.client.set_terminated(child.info.run_id, "FINISHED" if trial.ok else "FAILED")
        self.logged.add(trial.id)

    def _finish(self) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            for name, stored_as in ARTEFACTS.items():
                if (self.run_dir / name).is_file():
                    os.link(self.run_dir / name, Path(folder) / stored_as)
            self.client.log_artifacts(self.run_id, folder)
        self.client.set_terminated(self.run_id, "FINISHED")
