"""scikit-learn's bundled `digits`: 1,797 real 8x8 grey images of 10 digits. Ships with the package,
so the default run needs no download."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nasrun.datasets.source import DatasetSource

if TYPE_CHECKING:
    from nasrun.datasets.base import DataBundle


class Digits(DatasetSource):
    def __init__(self, val_fraction: float = 0.2, test_fraction: float = 0.2, split_seed: int = 0,
                 train_subset: int | None = None, eval_subset: int | None = None):
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.train_subset, self.eval_subset = train_subset, eval_subset

    def load(self) -> DataBundle:
        import torch  # here, not at the top: a run that loads no data never imports torch

        from nasrun.datasets.base import DataBundle, InputTransform, TensorSplit, limit, split_indices, standardise

        pixels, targets = read_digits()
        images = torch.tensor(pixels, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
        labels = torch.tensor(targets, dtype=torch.long)
        val_idx, test_idx, train_idx = split_indices(len(labels), [self.val_fraction, self.test_fraction], self.split_seed)
        (train, val, test), mean, std = standardise(images[train_idx], images[val_idx], images[test_idx])
        return DataBundle(
            name="digits",
            train=limit(TensorSplit(train, labels[train_idx]), self.train_subset, self.split_seed),
            val=limit(TensorSplit(val, labels[val_idx]), self.eval_subset, self.split_seed),
            test=limit(TensorSplit(test, labels[test_idx]), self.eval_subset, self.split_seed),
            num_classes=10,
            input_shape=(1, 8, 8),
            transform=InputTransform(mean, std, pixel_max=16.0,
                                     preprocessing=("scikit-learn's 8x8 digit images, pixel values 0-16",)),
            classes=[str(digit) for digit in range(10)],
        )


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(pixels (1797, 64), labels) of scikit-learn's digits.

    Read from the CSV scikit-learn ships (`sklearn/datasets/data/digits.csv.gz`: 64 pixel columns, then
    the label), located without importing scikit-learn, whose import costs about 2 s of every run;
    `sklearn.datasets.load_digits` where that file is not where it has always been."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        raw = load_digits()
        return raw.data, raw.target
    with gzip.open(path, "rt") as text:
        table = np.loadtxt(text, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)
