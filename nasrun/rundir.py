"""The run directory: the one place that names its files, the one atomic writer, and the read views
that resume, compare, report, benchmark and the other commands use.

    .hydra/config.yaml          the composed config (`nasrun-reproduce` replays it); overrides.yaml: the
                                command line's overrides; hydra.yaml: Hydra's settings. nasrun writes them
                                once it holds the directory (Hydra's own writing is off: it would
                                overwrite another run's config before nasrun could refuse the directory)
    nasrun.log                  the log
    trials.jsonl                one JSON line per finished trial (records.TrialLog)
    best_architecture.json      the best architecture and what rebuilds its network
    summary.json                the run's outcome
    pareto.json, pareto.png     the Pareto front of a multi-objective run
    alphas.jsonl                one line per epoch of a differentiable search
    warmup.json                 a zero-cost warm start's candidates and the architectures it kept
    report.html, plots/         the run report (self-contained page) and its figures
    tensorboard/                TensorBoard scalars
    retrain.json                what `nasrun-train` measured
    checkpoints/best_model.pt   weights of the best network (retrained_model.pt: after retraining)
    checkpoints/runner.json     the runner's resume state (runner_journal.jsonl: the asks since it was
                                written; trial_times.jsonl: when each trial finished)
    checkpoints/search_state.pt a one-shot search's state; supernet.pt: a weight-sharing supernet
    checkpoints/fidelity/trial_N.pt   a multi-fidelity trial's training state, until a promotion continues it
                                      or the search ends (the best network's weights are in best_model.pt)
    .nasrun.lock                held by the command writing to the directory (nasrun.state.lock)

A run directory is data (nasrun/state/ says how it is read and written): `RunDir.writing()` holds its
lock and refuses a link leading out of it, `RunDir.check()` does the latter for readers; every file is
written whole through `atomic_write` (temp file + rename: a crash never leaves half a file, a link is
replaced, never followed) or appended whole (`JsonLines`); every read is bounded; tensors are read back
with `weights_only=True`, so a file can never run code.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

from nasrun.errors import NasrunError
from nasrun.records import Trial, TrialLog, to_jsonable
from nasrun.state import (HeldLogHandler, JsonLines, RunLock, RunLogHandler, atomic_write, check_links,
                          load_checkpoint, read_json, read_json_object, save_checkpoint)
from nasrun.state.files import write_error
from nasrun.state.links import within

__all__ = ["RunDir", "atomic_write", "atomic_write_json", "load_checkpoint", "read_json", "save_checkpoint"]


def atomic_write_json(path: str | Path, obj: Any, durable: bool = True, compact: bool = False) -> None:
    text = json.dumps(to_jsonable(obj), separators=(",", ":")) if compact else json.dumps(to_jsonable(obj), indent=2)
    atomic_write(path, text + "\n", durable)


class _File:
    """A class attribute naming one file of the run directory; on an instance, its path."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, run_dir: "RunDir | None", owner=None):
        return self.name if run_dir is None else run_dir.path / self.name


class RunDir:
    """One run's directory. `RunDir(path).trials` is the path of its trial log, and so on."""

    config = _File(".hydra/config.yaml")
    overrides = _File(".hydra/overrides.yaml")
    hydra_settings = _File(".hydra/hydra.yaml")
    log = _File("nasrun.log")
    trials = _File("trials.jsonl")
    best = _File("best_architecture.json")
    summary = _File("summary.json")
    pareto = _File("pareto.json")
    pareto_plot = _File("pareto.png")
    alphas = _File("alphas.jsonl")
    warmup = _File("warmup.json")
    plots = _File("plots")
    report = _File("report.html")
    tensorboard = _File("tensorboard")
    retrain = _File("retrain.json")
    benchmark = _File("benchmark.json")
    best_weights = _File("checkpoints/best_model.pt")
    retrained_weights = _File("checkpoints/retrained_model.pt")
    runner_state = _File("checkpoints/runner.json")
    runner_journal = _File("checkpoints/runner_journal.jsonl")
    trial_times = _File("checkpoints/trial_times.jsonl")
    search_state = _File("checkpoints/search_state.pt")
    supernet = _File("checkpoints/supernet.pt")
    training_states = _File("checkpoints/fidelity")
    comparison = _File("comparison.json")        # of a sweep directory (nasrun-compare)
    anytime_plot = _File("anytime.png")          # likewise
    comparison_page = _File("comparison.html")   # likewise

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- opening it -------------------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator["RunDir"]:
        """Hold the directory's lock (creating the directory) and refuse it when a link leads out of it:
        every command that writes to a run directory runs inside this."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(self.path, err) from None
        with RunLock(self.path):
            check_links(self.path)
            yield self

    def refuse_another_run(self) -> None:
        """Refuse a directory that already holds another run's trials (a new run must not write into it)."""
        if self.trials.is_file() and self.trials.stat().st_size:
            raise NasrunError(f"{self.path} already holds the trials of another run; continue it with "
                              f"`nasrun-resume {self.path}` or pick another hydra.run.dir")

    def save_config(self, config: str | None = None, overrides: str | None = None, hydra: str | None = None) -> None:
        """Write the run's saved config files (YAML texts) that are given, each whole."""
        for path, text in ((self.config, config), (self.overrides, overrides), (self.hydra_settings, hydra)):
            if text is not None:
                atomic_write(path, text)

    def check(self, what: str = "run directory") -> "RunDir":
        """Refuse the directory when a link leads out of it (for commands that only read it)."""
        if self.path.is_dir():
            check_links(self.path, what)
        return self

    def contains(self, path: str | Path) -> bool:
        """Whether `path` names something inside this directory (as written, links aside)."""
        return within(os.path.abspath(path), os.path.abspath(self.path))

    def training_state(self, trial: int) -> Path:
        """Where multi-fidelity trial `trial` leaves its training state for a promotion to continue."""
        return self.training_states / f"trial_{int(trial)}.pt"

    def attach_log(self, console_warnings: bool = True, hold: bool = False) -> None:
        """Log on into this run's nasrun.log (as `nasrun` does through Hydra), warnings to the console too.
        With `hold`, records wait in memory until `nasrun.state.release_held_logs()` (a resume, until its
        saved state is read back: a refused resume changes no file)."""
        root = logging.getLogger()
        log_file = os.path.abspath(self.log)
        if not any(getattr(getattr(h, "target", h), "baseFilename", None) == log_file for h in root.handlers):
            handler = RunLogHandler(log_file)
            handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
            root.addHandler(HeldLogHandler(handler) if hold else handler)
        if console_warnings and not any(type(h) is logging.StreamHandler for h in root.handlers):
            console_handler = logging.StreamHandler()
            console_handler.setLevel(logging.WARNING)
            root.addHandler(console_handler)
        root.setLevel(logging.INFO)

    # --- read views ------------------------------------------------------------------------------------
    def is_run(self) -> bool:
        return self.config.is_file()

    def finished(self) -> bool:
        return self.summary.exists()

    def read_trials(self) -> list[Trial]:
        return TrialLog(self.trials).read()

    def read_summary(self) -> dict:
        return read_json_object(self.summary, "run summary")

    def read_best(self) -> dict:
        return read_json_object(self.best, "best architecture")

    def weights_for_best(self) -> Path | None:
        """The best network's weights: retrained ones when there are, else those found by the search."""
        return next((p for p in (self.retrained_weights, self.best_weights) if p.is_file()), None)

    def finished_at(self) -> dict[int, float]:
        """Seconds since the run started at which each trial finished (for wall-time plots); {} if unknown."""
        times = {}
        for line in JsonLines(self.trial_times, what="trial times").lines():
            try:
                record = json.loads(line)
                times[int(record["id"])] = float(record["finished_at"])
            except (ValueError, KeyError, TypeError):
                continue
        return times

    def sweep_jobs(self) -> list["RunDir"]:
        """This run, or for a multirun sweep directory the job directories in it (in job order)."""
        if self.is_run() or not self.path.is_dir():
            return [self]
        check_links(self.path, "sweep directory")
        jobs = sorted((p.parent.parent for p in self.path.glob("*/" + RunDir.config)),
                      key=lambda p: (len(p.name), p.name))
        return [RunDir(job) for job in jobs] or [self]


def run_of(source: str | Path) -> RunDir | None:
    """The run directory that `source` is (a folder) or lies in (a file of a run), else None."""
    source = Path(source)
    if source.is_dir():
        return RunDir(source)
    parent = RunDir(source.parent)
    return parent if parent.is_run() else None


def guard_output(source: str | Path | None, out: str | Path, own_folder: bool = False) -> AbstractContextManager:
    """What a command that reads `source` (a run, or a file of one) and writes `out` holds while it runs:
    the run's lock when `out` lies inside the run, else the run checked for links out of it (and, with
    `own_folder`, `out`'s own lock: a folder such as nasrun-train's, which it fills like a run)."""
    run = run_of(source) if source is not None else None
    if run is not None and run.contains(out):
        return run.writing()
    if run is not None:
        run.check()
    return RunDir(out).writing() if own_folder else nullcontext()
