"""The run directory: the one place that names its files, the one atomic writer, and the read views
that resume, compare, report, benchmark and the other commands use.

    .hydra/config.yaml          the composed config (Hydra writes it; `nasrun-reproduce` replays it)
    nasrun.log                  the log
    trials.jsonl                one JSON line per finished trial (records.TrialLog)
    best_architecture.json      the best architecture and what rebuilds its network
    summary.json                the run's outcome
    pareto.json, pareto.png     the Pareto front of a multi-objective run
    alphas.jsonl                one line per epoch of a differentiable search
    warmup.json                 a zero-cost warm start's candidates and the architectures it kept
    plots/, tensorboard/        figures and TensorBoard scalars
    retrain.json                what `nasrun-train` measured
    checkpoints/best_model.pt   weights of the best network (retrained_model.pt: after retraining)
    checkpoints/runner.json     the runner's resume state (runner_journal.jsonl: the asks since it was
                                written; trial_times.jsonl: when each trial finished)
    checkpoints/search_state.pt a one-shot search's state; supernet.pt: a weight-sharing supernet
    checkpoints/fidelity/trial_N.pt   a multi-fidelity trial's training state, until a promotion continues it
                                      or the search ends (the best network's weights are in best_model.pt)

Every rewritten file goes through `atomic_write` (temp file in the same folder + rename: a crash never
leaves half a file); tensors are read back with `weights_only=True`, so a file can never run code.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from nasrun.errors import CheckpointError
from nasrun.records import Trial, TrialLog, to_jsonable


def atomic_write(path: str | Path, data: str | bytes, durable: bool = True) -> None:
    """Write `data` to `path` via a temp file and a rename: never half a file. `durable` also fsyncs
    (survives a power cut); without it a killed process still leaves the old or the new file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any, durable: bool = True, compact: bool = False) -> None:
    text = json.dumps(to_jsonable(obj), separators=(",", ":")) if compact else json.dumps(to_jsonable(obj), indent=2)
    atomic_write(path, text + "\n", durable)


def save_checkpoint(obj: Any, path: str | Path) -> None:
    """Tensors (and plain containers of them) to `path`, atomically."""
    import torch  # here: reading and writing the run's JSON files needs no torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getvalue())


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> Any:
    """What `save_checkpoint` wrote; a missing, truncated or unsafe file is a one-line CheckpointError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, garbage bytes, unsafe pickle
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:160]}); delete it to start that part afresh") from None


def read_json(path: str | Path, what: str = "file") -> Any:
    """A JSON file, or a one-line CheckpointError naming it when it is missing or corrupt."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{what} {path} is corrupt or truncated ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:120]})") from None


class _File:
    """A class attribute naming one file of the run directory; on an instance, its path."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, run_dir: "RunDir | None", owner=None):
        return self.name if run_dir is None else run_dir.path / self.name


class RunDir:
    """One run's directory. `RunDir(path).trials` is the path of its trial log, and so on."""

    config = _File(".hydra/config.yaml")
    log = _File("nasrun.log")
    trials = _File("trials.jsonl")
    best = _File("best_architecture.json")
    summary = _File("summary.json")
    pareto = _File("pareto.json")
    pareto_plot = _File("pareto.png")
    alphas = _File("alphas.jsonl")
    warmup = _File("warmup.json")
    plots = _File("plots")
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

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def training_state(self, trial: int) -> Path:
        """Where multi-fidelity trial `trial` leaves its training state for a promotion to continue."""
        return self.training_states / f"trial_{int(trial)}.pt"

    def attach_log(self, console_warnings: bool = True) -> None:
        """Log on into this run's nasrun.log (as `nasrun` does through Hydra), warnings to the console too."""
        root = logging.getLogger()
        self.path.mkdir(parents=True, exist_ok=True)
        if not any(getattr(h, "baseFilename", None) == str(self.log.resolve()) for h in root.handlers):
            handler = logging.FileHandler(self.log)
            handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
            root.addHandler(handler)
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
        return read_json(self.summary, "run summary")

    def read_best(self) -> dict:
        return read_json(self.best, "best architecture")

    def weights_for_best(self) -> Path | None:
        """The best network's weights: retrained ones when there are, else those found by the search."""
        return next((p for p in (self.retrained_weights, self.best_weights) if p.is_file()), None)

    def finished_at(self) -> dict[int, float]:
        """Seconds since the run started at which each trial finished (for wall-time plots); {} if unknown."""
        times = {}
        for line in self.trial_times.read_text().splitlines() if self.trial_times.exists() else []:
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
        jobs = sorted((p.parent.parent for p in self.path.glob("*/" + RunDir.config)),
                      key=lambda p: (len(p.name), p.name))
        return [RunDir(job) for job in jobs] or [self]
