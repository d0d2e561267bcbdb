"""Datasets: one file per source. Each config in conf/dataset/ builds a loader object whose
`load()` returns a DataBundle with explicit, seeded train / validation / test splits."""

from nasrun.datasets.base import DataBundle, DatasetSource, TensorSplit, batches

__all__ = ["DataBundle", "DatasetSource", "TensorSplit", "batches"]
