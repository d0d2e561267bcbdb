"""Live trackers: every run also writes its trials, as each one ends, where a maintained dashboard shows them.

    tracker: optuna            (default) one Optuna study per run in <outputs>/optuna.journal: watch it with
                               `optuna-dashboard outputs/optuna.journal`   (nasrun/run/optuna_study.py)
    tracker: mlflow            one MLflow run per nasrun run in <outputs>/mlflow.db: `mlflow ui
                               --backend-store-uri sqlite:///outputs/mlflow.db`  (nasrun/run/mlflow_log.py)
    tracker: [optuna, mlflow]  both; `tracker: none` (or null, []) turns tracking off
    tracker_dir: null          the folder of those files; null: the `outputs` folder above the run dir
                               (else the run dir's parent), so every run and sweep job shares one database

A tracker writes on a thread of its own (`BackgroundWriter`): the search never waits for the database (an
MLflow SQLite write costs tens of milliseconds, a lock held by a sibling job of a parallel sweep longer),
and a write that fails is a warning, never a failed search.

A resumed run directory is data (it may come from a colleague): its saved `tracker_dir` is not followed. A
resume writes to the tracker database of the `outputs` folder the run dir sits in, and tracks nothing
when it sits in none (so `nasrun-resume` writes nothing outside a run dir copied elsewhere).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from nasrun.errors import ConfigError

log = logging.getLogger("nasrun")

TRACKERS = ("optuna", "mlflow")
OFF = ("none", "off", "false")


def tracker_names(cfg: DictConfig) -> list[str]:
    """The trackers the config asks for (checked: known names, the package of each installed)."""
    value = cfg.get("tracker", "optuna")
    if value is None or value is False:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, ListConfig)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"tracker must be one of {list(TRACKERS)}, a list of them, or none; got {value!r}")
    names = [name for name in dict.fromkeys(value) if name.lower() not in OFF]
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise ConfigError(f"tracker: unknown {unknown} (known: {list(TRACKERS)}, or none to turn tracking off)")
    for name in names:
        require_package(name)
    return names


def require_package(name: str) -> None:
    import importlib.util

    if importlib.util.find_spec(name) is None:
        hint = "pip install optuna" if name == "optuna" else "pip install mlflow"
        raise ConfigError(f"tracker={name} needs the {name} package ({hint}), or set tracker=none")


def tracker_dir(run_dir: str | Path, configured: str | None = None) -> Path:
    """Where the trackers' databases go: `tracker_dir`, else the nearest folder called `outputs` above the
    run dir (Hydra's run and sweep dirs are both under it), else the run dir's parent."""
    if configured:
        return Path(configured).expanduser().resolve()
    run_dir = Path(run_dir).resolve()
    return next((parent for parent in run_dir.parents if parent.name == "outputs"), run_dir.parent)


def resume_tracker_dir(run_dir: str | Path) -> Path | None:
    """Where a resumed run tracks: the `outputs` folder above it, never a folder its saved config names."""
    run_dir = Path(run_dir).resolve()
    return next((parent for parent in run_dir.parents if parent.name == "outputs"), None)


def run_name(run_dir: str | Path, root: Path) -> str:
    """The run dir relative to the trackers' folder (`2026-12-06/10-00-00`, `multirun/.../3`): one study
    (or MLflow run) per run dir, named so that a person finds the folder."""
    run_dir = Path(run_dir).resolve()
    try:
        return run_dir.relative_to(root).as_posix()
    except ValueError:
        return run_dir.as_posix()


def build_trackers(cfg: DictConfig, run_dir: str | Path, space, objectives, attrs: dict,
                   resume: bool = False) -> tuple[list, dict]:
    """The run's tracker observers, and what the summary says about them (where to watch the run)."""
    names = tracker_names(cfg)
    if not names:
        return [], {}
    root = resume_tracker_dir(run_dir) if resume else tracker_dir(run_dir, cfg.get("tracker_dir"))
    if root is None:
        log.info("tracker off for this resume: %s is in no `outputs` folder, and a resume writes nothing "
                 "outside the run directory but there", run_dir)
        return [], {}
    name = run_name(run_dir, root)
    attrs = {"run_dir": str(Path(run_dir).resolve()), **attrs}
    observers, info = [], {}
    if "optuna" in names:
        from nasrun.run.optuna_study import DATABASE, OptunaStudyLog, dashboard_command

        observers.append(OptunaStudyLog(root / DATABASE, name, space, objectives, Path(run_dir), attrs, resume))
        info["optuna"] = {"storage": str((root / DATABASE).resolve()), "study": name,
                          "dashboard": dashboard_command(root / DATABASE)}
    if "mlflow" in names:
        from nasrun.run.mlflow_log import DATABASE as MLFLOW_DATABASE, MlflowLog, ui_command

        observers.append(MlflowLog(root, name, cfg, space, Path(run_dir), resume))
        info["mlflow"] = {"tracking_uri": f"sqlite:///{(root / MLFLOW_DATABASE).resolve()}", "run_name": name,
                          "ui": ui_command(root)}
    return observers, info
