"""Datasets: one file per source. Each config in conf/dataset/ builds a loader object whose
`load()` returns a DataBundle with explicit, seeded train / validation / test splits."""

from nasrun.datasets.source import DatasetSource

DATA_CODE = ("DataBundle", "TensorSplit", "batches")  # from nasrun.datasets.base (torch), on first use


def __getattr__(name: str):
    if name in DATA_CODE:
        from nasrun.datasets import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DataBundle", "DatasetSource", "TensorSplit", "batches"]
