"""The NAS-Bench-201 zero-cost table: nasrun's own proxies of every NB201 architecture, looked up instead
of computed.

`nasrun/data/nb201_zc.csv.gz` (see `NB201_ZC_PROVENANCE.md` beside it, written by
`scripts/nb201_zc_table.py`) holds, per benchmark index, what `estimator=zero_cost` computes for the
NB201 network at C=16, N=5 (32x32 inputs, 10 classes, init seed 0) with one batch of 64 CIFAR-10 sample
images; an empty cell is a proxy undefined for that architecture (NaN here). CIFAR-100 and ImageNet16-120
lookups use these CIFAR-10 scores: `SOURCE` says so in every trial that used one.

While the table is incomplete (the script runs for hours, resumably: synflow for every row first, then
the data proxies), a lookup of a score not computed yet is a one-line error naming the script that
completes it; `search_space.partial_table=true` (development only) restricts the NB201 space to the rows
every proxy has scored so far (or a list: the rows those proxies have scored).
"""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

import numpy as np

from nasrun.errors import ConfigError
from nasrun.estimators.nb201 import load_table

ZC_TABLE_FILE = "nb201_zc.csv.gz"
TABLE_NETWORK = {"C": 16, "N": 5}       # the NB201 network the table scored
TABLE_BATCH = {"batch_size": 64, "batches": 1}
SOURCE = "table (CIFAR-10 images)"      # a trial's zc_source when its scores were looked up
COMPUTED = "computed"                   # ... and when they were computed by this run
COMPLETE_IT = "python scripts/nb201_zc_table.py"


@dataclass(frozen=True)
class ZeroCostTable:
    """`rows[benchmark index]` = the proxies' values in `proxies` order: a number, NaN (undefined for that
    architecture) or None (not computed yet: the script scores synflow for every row first, then the
    data proxies, each in a fixed shuffled order, so the rows done so far are a uniform sample)."""

    proxies: tuple[str, ...]
    rows: dict
    _done: dict = field(default_factory=dict, compare=False, repr=False)

    def done(self, names: Sequence[str] | None = None) -> frozenset:
        """The indices whose `names` (default: every proxy) are all computed."""
        key = tuple(self.proxies if names is None else names)
        if key not in self._done:
            columns = [self.proxies.index(name) for name in key]
            self._done[key] = frozenset(i for i, row in self.rows.items() if all(row[c] is not None for c in columns))
        return self._done[key]

    def complete(self, names: Sequence[str] | None = None) -> bool:
        return len(self.done(names)) == len(load_table().archs)

    def describe(self, names: Sequence[str] | None = None) -> str:
        what = "every proxy" if names is None or set(names) == set(self.proxies) else ", ".join(names)
        partial = "" if self.complete(names) else " (partial table)"
        return f"{len(self.done(names)):,} of {len(load_table().archs):,} NB201 architectures scored by {what}{partial}"

    def missing(self, what: str, names: Sequence[str] | None = None) -> ConfigError:
        """The one-line error for a lookup the table cannot answer yet."""
        return ConfigError(f"the NB201 zero-cost table ({ZC_TABLE_FILE}) holds {self.describe(names)}, not {what}; "
                           f"`{COMPLETE_IT}` completes it (search_space.partial_table=true searches only the "
                           "scored ones, for development)")

    def has(self, arch: Any, names: Sequence[str] | None = None) -> bool:
        return load_table().row(arch) in self.done(names)

    def scores(self, arch: Any, names: Sequence[str] | None = None) -> dict[str, float]:
        """The looked-up scores of `arch` (all proxies, or `names`); one not computed yet is a ConfigError."""
        names = self.proxies if names is None else names
        if not self.has(arch, names):
            raise self.missing(f"'{arch}'", names)
        values = dict(zip(self.proxies, self.rows[load_table().row(arch)]))
        return {name: values[name] for name in names}

    def matrix(self, names: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """(the architectures scored by `names`, their scores: one row each, one column per name)."""
        key = ("matrix", *names)
        if key not in self._done:
            rows = sorted(self.done(names))
            columns = [self.proxies.index(name) for name in names]
            values = np.array([[self.rows[i][c] for c in columns] for i in rows], dtype=float).reshape(len(rows), -1)
            self._done[key] = ([load_table().archs[i] for i in rows], values)
        archs, values = self._done[key]
        return list(archs), values.copy()

    def archs(self, names: Sequence[str] | None = None) -> list[str]:
        """The architectures scored by `names` (default: every proxy), in benchmark-index order."""
        every = load_table().archs
        return [every[index] for index in sorted(self.done(names))]


def _value(text: str) -> float | None:
    return float(text) if text.strip() else None   # "nan" parses to NaN: undefined


@lru_cache(maxsize=1)
def load_zc_table() -> ZeroCostTable:
    """Read the packaged table once per process; no file yet is an empty table."""
    path = resources.files("nasrun").joinpath("data", ZC_TABLE_FILE)
    if not path.is_file():
        return ZeroCostTable((), {})
    with path.open("rb") as raw, gzip.open(raw, "rt", newline="") as text:
        reader = csv.reader(text)
        header = next(reader)
        if header[0] != "index":
            raise RuntimeError(f"{ZC_TABLE_FILE}: the first column is {header[0]!r}, not 'index'")
        rows = {int(line[0]): tuple(_value(cell) for cell in line[1:]) for line in reader}
    return ZeroCostTable(tuple(header[1:]), rows)


def table_fits(space, proxies: Sequence[str], batch_size: int = 64, batches: int = 1) -> bool:
    """Whether the table holds what these settings score: the NB201 space at C=16, N=5, every proxy in
    the table, one batch of 64 for the data proxies."""
    if getattr(space, "name", None) != "nb201" or space.network_options() != TABLE_NETWORK:
        return False
    return set(proxies) <= set(load_zc_table().proxies) and {"batch_size": batch_size, "batches": batches} == TABLE_BATCH


def covers(table: ZeroCostTable, space, names: Sequence[str]) -> bool:
    """Whether the table answers `names` for every architecture `space` can propose: those columns are
    complete, or the space is restricted to scored rows (`search_space.partial_table=true`)."""
    allowed = getattr(space, "allowed", None)
    return table.complete(names) or (allowed is not None and all(table.has(arch, names) for arch in allowed))


def agrees(looked_up: dict[str, float], computed: dict[str, float], rel: float = 2e-3) -> bool:
    """Looked-up and freshly computed scores are the same, up to `rel`: the same setting on another CPU or
    thread count differed by at most 4e-4 (snip), while another data batch or init seed moved at least one
    proxy of each architecture by 4e-3 or more (synflow, with a different init) and mostly by 1e-2 or more."""
    return all((math.isnan(looked_up[k]) and math.isnan(v)) or math.isclose(looked_up[k], v, rel_tol=rel, abs_tol=1e-12)
               for k, v in computed.items())
