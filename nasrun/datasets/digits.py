"""scikit-learn's bundled `digits`: 1,797 real 8x8 grey images of 10 digits. Ships with the package,
so the default run needs no download."""

from __future__ import annotations

import torch

from nasrun.datasets.base import DataBundle, DatasetSource, TensorSplit, split_indices, standardise


class Digits(DatasetSource):
    def __init__(self, val_fraction: float = 0.2, test_fraction: float = 0.2, split_seed: int = 0):
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed

    def load(self) -> DataBundle:
        from sklearn.datasets import load_digits

        raw = load_digits()
        images = torch.tensor(raw.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.tensor(raw.target, dtype=torch.long)
        val_idx, test_idx, train_idx = split_indices(len(labels), [self.val_fraction, self.test_fraction], self.split_seed)
        train, val, test = standardise(images[train_idx], images[val_idx], images[test_idx])
        return DataBundle(
            name="digits",
            train=TensorSplit(train, labels[train_idx]),
            val=TensorSplit(val, labels[val_idx]),
            test=TensorSplit(test, labels[test_idx]),
            num_classes=10,
            input_shape=(1, 8, 8),
        )
