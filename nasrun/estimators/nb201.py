"""NAS-Bench-201 as a tabular estimator: an architecture's accuracy is looked up, not trained.

The table (15,625 rows, see `nasrun/data/NB201_PROVENANCE.md`) ships inside the package as
`nasrun/data/nb201_accuracy.csv.gz`, so it works offline right after an install. Protocol of the NB201
paper: the search sees only the 12-epoch validation accuracy of the chosen dataset; the final test reports
the 200-epoch test accuracy of the chosen architecture and its regret to the table's best.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from nasrun.errors import ConfigError, InvalidArchitecture
from nasrun.estimators.base import Estimator, Evaluation, Report
from nasrun.nets.nb201_arch import format_arch, parse_arch

TABLE_FILE = "nb201_accuracy.csv.gz"


@dataclass(frozen=True)
class NB201Dataset:
    """Which column the final test reads, and the network's input for that dataset."""

    test_column: str
    input_shape: tuple[int, int, int]
    num_classes: int


NB201_DATASETS = {
    "cifar10": NB201Dataset("cifar10_test_200ep", (3, 32, 32), 10),
    "cifar100": NB201Dataset("cifar100_test_200ep", (3, 32, 32), 100),
    "imagenet16": NB201Dataset("imagenet16_test_200ep", (3, 16, 16), 120),
}


@dataclass(frozen=True)
class NB201Table:
    """The whole table: `index[arch]` is the row number, `columns[name]` the column's values in %."""

    archs: tuple[str, ...]
    index: dict
    columns: dict

    def row(self, arch: str) -> int:
        """The row of `arch` (any spelling the parser accepts); malformed strings are clear errors."""
        row = self.index.get(arch)
        if row is None:
            row = self.index.get(format_arch(parse_arch(arch)))
        if row is None:
            raise InvalidArchitecture(f"nb201: '{arch}' is not in the NAS-Bench-201 table")
        return row

    def best(self, column: str) -> tuple[int, float]:
        """(row, value) of the column's maximum."""
        values = self.columns[column]
        row = max(range(len(values)), key=values.__getitem__)
        return row, values[row]


@lru_cache(maxsize=1)
def load_table() -> NB201Table:
    """Read the packaged table once per process (~0.1 s)."""
    with resources.files("nasrun").joinpath("data", TABLE_FILE).open("rb") as raw, \
            gzip.open(raw, "rt", newline="") as text:
        reader = csv.reader(text)
        header = next(reader)
        fields = dict(zip(header, zip(*reader)))
    if [int(i) for i in fields["index"]] != list(range(len(fields["index"]))):
        raise RuntimeError(f"{TABLE_FILE}: rows are not in benchmark-index order")
    archs = fields.pop("arch")
    fields.pop("index")
    columns = {name: tuple(map(float, values)) for name, values in fields.items()}
    return NB201Table(archs, {arch: i for i, arch in enumerate(archs)}, columns)


def percent(value: float) -> float:
    """A table value in % as a fraction (0..1), without float noise in the last digits."""
    return round(value / 100.0, 8)


SCORE_COLUMNS = ("valid_12ep", "test_12ep", "valid_200ep", "test_200ep")


class NB201Tabular(Estimator):
    """Answer from the NB201 table. `dataset`: cifar10 | cifar100 | imagenet16 (the run's `dataset`
    group is not used: no data is loaded). `score_column` is what a trial's val_accuracy reads:
    valid_12ep (the paper's protocol); another column (e.g. test_200ep) only for ranking studies such as
    `nasrun-correlate`, since a search on a test column selects on the test split."""

    reports = ("val_accuracy", "nb201_index")
    needs_data = False

    def __init__(self, dataset: str = "cifar10", score_column: str = "valid_12ep"):
        if dataset not in NB201_DATASETS:
            raise ConfigError(f"estimator.dataset: '{dataset}' is not one of {sorted(NB201_DATASETS)}")
        self.dataset = dataset
        self.spec = NB201_DATASETS[dataset]
        self.search_column = f"{dataset}_{score_column}"
        if score_column not in SCORE_COLUMNS or self.search_column not in load_table().columns:
            raise ConfigError(f"estimator.score_column: {score_column!r} is not a column the table holds for "
                              f"{dataset} (cifar10 has {list(SCORE_COLUMNS)}; the others valid_12ep, test_12ep, "
                              "test_200ep)")

    def bind(self, space, data, hardware, run_dir=None, seed: int = 0) -> None:
        if space.name != "nb201":
            raise ConfigError(f"estimator=nb201 answers only search_space=nb201, not '{space.name}'")
        super().bind(space, data, hardware, run_dir, seed)
        self.table = load_table()
        self.search_values = self.table.columns[self.search_column]
        self.test_values = self.table.columns[self.spec.test_column]
        self.optimum = max(self.test_values)

    def evaluate(self, arch: Any, seed: int, report: Report = None) -> Evaluation:
        row = self.table.row(arch)
        return Evaluation(metrics={"val_accuracy": percent(self.search_values[row]), "nb201_index": row})

    def test(self, arch: Any, evaluation: Evaluation, seed: int) -> dict[str, float]:
        accuracy = self.test_values[self.table.row(arch)]
        return {"test_accuracy": percent(accuracy), "optimum_test_accuracy": percent(self.optimum),
                "regret": percent(self.optimum - accuracy)}

    def network_spec(self) -> dict:
        return {"input_shape": list(self.spec.input_shape), "num_classes": self.spec.num_classes}
