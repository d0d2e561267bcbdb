"""Trial records and the trial log (an append-only JSON-lines log: nasrun.state.jsonlines)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nasrun.errors import CheckpointError
from nasrun.state import JsonLines


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


class TrialLog(JsonLines):
    """`trials.jsonl`: one JSON line per finished trial, appended as each trial ends; fsynced too when
    `durable` (a line then survives a power cut; tabular runs turn it off for speed)."""

    def __init__(self, path: str | Path, durable: bool = True):
        super().__init__(path, durable, what="trial log")

    def append(self, trial: Trial) -> None:
        super().append(trial.to_dict())

    def read(self) -> list[Trial]:
        """Every trial of a complete line (a last line without its newline is being written, or was cut
        short by a crash). Any unreadable complete line is a CheckpointError naming it, since dropping it
        would change what a resumed strategy is told."""
        return [parse_trial_line(line, self.path, number)
                for number, line in enumerate(self.lines(), start=1) if line.strip()]


def parse_trial_line(line: str, path: Path, number: int) -> Trial:
    try:
        record = json.loads(line)
        if not isinstance(record, dict) or not {"id", "arch", "status"} <= set(record):
            raise ValueError("not a trial record (needs id, arch, status)")
        check_trial_fields(record)
        return Trial.from_dict(record)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: line {number} is corrupt ({str(err).splitlines()[0][:120]}); "
                              "repair or remove that line") from None


def check_trial_fields(record: dict) -> None:
    """ValueError naming the first field of a trial record of the wrong type (ids are whole numbers)."""
    for key in ("id", "seed", "fidelity", "continues"):
        value = record.get(key)
        if (value is not None or key == "id") and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"'{key}' must be a whole number >= 0, got {value!r}")
    if record["status"] not in ("ok", "failed"):
        raise ValueError(f"'status' must be 'ok' or 'failed', got {record['status']!r}")
    if not isinstance(record.get("metrics", {}), dict):
        raise ValueError(f"'metrics' must be a mapping, got {record['metrics']!r}")


def best_trial(trials: Iterable[Trial], metric: str | None = None) -> Trial | None:
    """The successful trial with the highest `metric` (earliest wins ties), or None. In a multi-fidelity
    search only the highest fidelity reached competes: a 1-epoch score never beats a fully trained one."""
    ok = [t for t in trials if t.score(metric) > -math.inf]
    return max(ok, key=lambda t: (t.fidelity or 0, t.score(metric), -t.id)) if ok else None
