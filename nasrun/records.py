"""Trial records and the append-only trial log (atomic writes of other files: nasrun.rundir)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nasrun.errors import CheckpointError


def to_jsonable(obj: Any) -> Any:
    """Plain JSON data: tuples become lists, non-finite floats become None, numpy/torch scalars numbers."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalar
        return to_jsonable(obj.item())
    return obj


@dataclass
class Trial:
    """One evaluated architecture. `status` is "ok" or "failed"; failed trials carry `error`."""

    id: int
    arch: Any
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    seconds: float = 0.0
    error: str | None = None
    seed: int | None = None
    worker: str | None = None
    fidelity: int | None = None    # epochs trained to, in a multi-fidelity search
    continues: int | None = None   # the trial whose training this one continued

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def score(self, metric: str | None = None) -> float:
        """The selection score (higher is better): `fitness` when the run sets one (a scalarised,
        constraint-aware objective), else `val_accuracy`. Failed trials and missing values rank last.
        Strategies rank trials through this method only."""
        if metric is None:
            metric = "fitness" if "fitness" in self.metrics else "val_accuracy"
        value = self.metrics.get(metric) if self.ok else None
        return float(value) if value is not None and math.isfinite(value) else -math.inf

    def to_dict(self) -> dict:
        return to_jsonable({name: getattr(self, name) for name in self.__dataclass_fields__})  # new containers

    @classmethod
    def from_dict(cls, obj: dict) -> "Trial":
        return cls(**{k: obj.get(k) for k in cls.__dataclass_fields__ if k in obj})


class TrialLog:
    """`trials.jsonl`: one JSON line per finished trial, appended as each trial ends; fsynced too when
    `durable` (a line then survives a power cut; tabular runs turn it off for speed)."""

    def __init__(self, path: str | Path, durable: bool = True):
        self.path, self.durable = Path(path), durable

    def append(self, trial: Trial) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(trial.to_dict()) + "\n")
            if self.durable:
                handle.flush()
                os.fsync(handle.fileno())

    def read(self) -> list[Trial]:
        """Every trial. Only a last line cut short by a crash (no newline after it) is ignored; any
        other unreadable line is a CheckpointError naming it, since dropping it would change what a
        resumed strategy is told."""
        if not self.path.exists():
            return []
        try:
            text = self.path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{self.path} cannot be read ({type(err).__name__}: {err})") from None
        lines = text.split("\n")
        torn = lines.pop()  # "" when the file ends with a newline, else the torn last line
        trials = []
        for number, line in enumerate(lines, start=1):
            if line.strip():
                trials.append(parse_trial_line(line, self.path, number))
        if torn.strip():
            try:
                trials.append(parse_trial_line(torn, self.path, len(lines) + 1))
            except CheckpointError:
                pass  # cut short by a crash mid-write
        return trials


def parse_trial_line(line: str, path: Path, number: int) -> Trial:
    try:
        record = json.loads(line)
        if not isinstance(record, dict) or not {"id", "arch", "status"} <= set(record):
            raise ValueError("not a trial record (needs id, arch, status)")
        return Trial.from_dict(record)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: line {number} is corrupt ({str(err).splitlines()[0][:120]}); "
                              "repair or remove that line") from None


def best_trial(trials: Iterable[Trial], metric: str | None = None) -> Trial | None:
    """The successful trial with the highest `metric` (earliest wins ties), or None. In a multi-fidelity
    search only the highest fidelity reached competes: a 1-epoch score never beats a fully trained one."""
    ok = [t for t in trials if t.score(metric) > -math.inf]
    return max(ok, key=lambda t: (t.fidelity or 0, t.score(metric), -t.id)) if ok else None
