"""Every run as an Optuna study, written as each trial ends, so that `optuna-dashboard outputs/optuna.journal`
shows the search while it runs: history, parameter importance (which edge or layer choice matters), the
Pareto front of a multi-objective run.

One study per run, named after the run dir (nasrun/run/trackers.py), in one file that all runs share: an
Optuna journal (`JournalStorage`: an append-only log, file-locked, so sibling jobs of a parallel sweep
write to it at once). A trial costs a small fraction there of what it costs in Optuna's SQLite storage (its
ORM), which on a tabular benchmark dwarfed the search itself: scripts/bench_runner_overhead.py measures both.
  params            one categorical parameter per decision of the space's encoding (`SearchSpace.decisions()`)
  values            the run's objectives with their directions (default: the estimator's score, maximised);
                    two or more objectives make a multi-objective study
  constraints       per constraint its relative violation (0: satisfied), which marks infeasible points
  user attributes   trial_id (nasrun's id), every metric, fidelity, seconds, seed, arch (JSON)
  intermediate      val_accuracy per epoch, where the executor reports epochs (single-objective studies)
  study attributes  run_dir, strategy, search_space, estimator, dataset, seed; at the end best_trial, test
A failed trial is a FAIL trial with its error. A resumed run adds only the trials its study lacks.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import warnings
from pathlib import Path

from nasrun.records import Trial
from nasrun.run.background import BackgroundWriter
from nasrun.run.observers import RunObserver
from nasrun.rundir import RunDir

log = logging.getLogger("nasrun")

DATABASE = "optuna.journal"


def dashboard_command(path: Path) -> str:
    """`optuna-dashboard <journal>` for the journal at `path`, relative to here when it is below."""
    path = Path(path).resolve()
    try:
        shown = path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        shown = path.as_posix()
    return f"optuna-dashboard {shown}"


def open_storage(path: Path):
    """The Optuna journal storage in the file at `path` (created on first use)."""
    import optuna
    from optuna.storages import JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return JournalStorage(unsynced_journal_file(str(path)))


def optuna_journal_file():
    """Optuna's own journal file backend class and its default lock class (optuna < 4.0 names the backend
    JournalFileStorage)."""
    try:
        from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
    except ImportError:
        from optuna.storages import JournalFileStorage as JournalFileBackend, JournalFileSymlinkLock
    return JournalFileBackend, JournalFileSymlinkLock


def unsynced_journal_file(path: str):
    """Optuna's journal file backend, less its fsync per entry: the same JSON lines under the same lock (so
    Optuna, optuna-dashboard and sibling sweep jobs read and write the file as before). A trial's fsync cost
    as much as the rest of its entry (scripts/bench_runner_overhead.py), and the study is a mirror, not the
    record: trials.jsonl is, and a resumed run re-adds the trials its study lacks."""
    JournalFileBackend, JournalFileSymlinkLock = optuna_journal_file()

    class UnsyncedJournalFile(JournalFileBackend):
        def __init__(self, file_path: str):
            self.path, self.lock = file_path, JournalFileSymlinkLock(file_path)
            super().__init__(file_path, self.lock)

        def append_logs(self, logs: list[dict]) -> None:
            text = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in logs)
            self.lock.acquire()
            try:
                with open(self.path, "ab") as file:
                    file.write(text.encode("utf-8"))
            finally:
                self.lock.release()

    return UnsyncedJournalFile(path)


class OptunaStudyLog(RunObserver):
    """Adds each finished trial to the run's study, on a writer thread (nasrun/run/background.py)."""

    def __init__(self, database: Path, study_name: str, space, objectives, run_dir: Path, attrs: dict,
                 resume: bool = False):
        self.path, self.study_name, self.space, self.objectives = Path(database).resolve(), study_name, space, objectives
        self.run_dir, self.attrs, self.resume = Path(run_dir), attrs, resume
        self.decisions = space.decisions()
        self.epochs: dict[int, dict[int, float]] = {}
        self.study = None
        self.written: set[int] = set()
        self.writer = BackgroundWriter("optuna", self._open)

    # --- what the runner reports (main thread: only hands work to the writer) -------------------------
    def on_record(self, trial, evaluation, best, new_best) -> None:
        copy = dataclasses.replace(trial, metrics=dict(trial.metrics))
        self.writer.submit(f"trial {trial.id}", self._add, copy, self.epochs.pop(trial.id, {}))

    def epoch_report(self, trial_id: int, report):
        if report is None:
            return None

        def report_and_keep(epoch: int, total: int, metrics: dict) -> None:
            report(epoch, total, metrics)
            value = metrics.get("val_accuracy")
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.epochs.setdefault(trial_id, {})[int(epoch)] = float(value)

        return report_and_keep

    def on_close(self) -> None:
        self.writer.drain()

    def on_test(self, best, test_metrics, weights=None) -> None:
        self.writer.submit("the test result", self._set_attrs, {"best_trial": best.id, "test": test_metrics})

    def on_finish(self, summary) -> None:
        self.writer.close()

    # --- the writer thread ----------------------------------------------------------------------------
    def _open(self) -> None:
        import optuna

        storage = open_storage(self.path)
        exists = self.study_name in optuna.get_all_study_names(storage)
        if exists and not self.resume:  # a study left by an earlier run in a run dir of the same name
            optuna.delete_study(study_name=self.study_name, storage=storage)
            exists = False
        directions = ["maximize" if o.direction == "max" else "minimize" for o in self.objectives.objectives]
        self.study = optuna.create_study(storage=storage, study_name=self.study_name, directions=directions,
                                         load_if_exists=True)
        if not exists:
            self._set_attrs(self.attrs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # set_metric_names is marked experimental
                self.study.set_metric_names([o.metric for o in self.objectives.objectives])
        log.info("trials go to the Optuna study %r in %s; watch it live: %s", self.study_name, self.path,
                 dashboard_command(self.path))
        self.written = {t.user_attrs.get("trial_id") for t in self.study.get_trials(deepcopy=False)}
        if self.resume:  # trials recorded before the crash that the study never got
            for trial in RunDir(self.run_dir).read_trials():
                self._add(trial, {})

    def _set_attrs(self, attrs: dict) -> None:
        for key, value in attrs.items():
            self.study.set_user_attr(key, value)

    def _add(self, trial: Trial, epochs: dict) -> None:
        if trial.id in self.written:
            return
        self.study.add_trial(self.frozen_trial(trial, epochs))
        self.written.add(trial.id)

    def frozen_trial(self, trial: Trial, epochs: dict):
        import optuna
        from optuna.distributions import CategoricalDistribution
        from optuna.trial import TrialState

        attrs = trial_attrs(trial)
        params = decision_values(self.space, trial.arch)
        values = [trial.metrics.get(o.metric) for o in self.objectives.objectives]
        complete = trial.ok and all(finite(v) for v in values)
        if trial.ok and not complete:
            attrs["error"] = f"objective {[o.metric for o in self.objectives.objectives]} missing or not finite"
        system_attrs = {}
        if complete and self.objectives.constraints:
            system_attrs["constraints"] = [c.violation(trial.metrics.get(c.metric)) for c in self.objectives.constraints]
        frozen = optuna.trial.create_trial(
            state=TrialState.COMPLETE if complete else TrialState.FAIL,
            values=[float(v) for v in values] if complete else None,
            params=params,
            distributions={d.name: CategoricalDistribution(list(d.choices)) for d in self.decisions if d.name in params},
            user_attrs=attrs, system_attrs=system_attrs,
            intermediate_values=epochs if len(values) == 1 else None)
        frozen.datetime_complete = datetime.datetime.now()
        frozen.datetime_start = frozen.datetime_complete - datetime.timedelta(seconds=trial.seconds or 0.0)
        return frozen



def decision_values(space, arch) -> dict:
    """The space's {decision: option} of `arch`; {} for one it cannot encode (a failed trial's may be invalid)."""
    try:
        return space.decision_values(arch)
    except Exception:  # noqa: BLE001
        return {}


def trial_attrs(trial: Trial) -> dict:
    attrs = {"trial_id": trial.id, "seconds": trial.seconds, "seed": trial.seed,
             "arch": trial.arch if isinstance(trial.arch, str) else json.dumps(trial.arch, separators=(",", ":"))}
    for key in ("fidelity", "continues"):
        if getattr(trial, key) is not None:
            attrs[key] = getattr(trial, key)
    attrs.update({key: value for key, value in trial.metrics.items() if finite(value)})
    if not trial.ok:
        attrs["error"] = (trial.error or "failed")[:2000]
    return attrs


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
