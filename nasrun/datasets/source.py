"""The base of every `conf/dataset/` component, apart from the data code: a run that loads no data (a
tabular estimator) builds its dataset source without importing torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nasrun.datasets.base import DataBundle


class DatasetSource:
    """Base of every `conf/dataset/` component: `load()` returns the run's DataBundle."""

    def load(self) -> DataBundle:
        raise NotImplementedError
