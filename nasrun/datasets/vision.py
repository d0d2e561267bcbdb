"""CIFAR-10/100, MNIST and Fashion-MNIST through torchvision, read from an absolute data directory in
the files' own on-disk format, held in memory as tensors. Nothing is downloaded unless `download=true`."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tv

from nasrun.datasets.base import Augment, DataBundle, TensorSplit, limit, resolve_root, split_indices, standardise
from nasrun.errors import ConfigError, DatasetMissing

# name -> (torchvision class, files that must exist under root, what to put there, classes, augmentation)
_SPECS = {
    "cifar10": (tv.CIFAR10, ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"],
                "the folder cifar-10-batches-py/ extracted from cifar-10-python.tar.gz", 10, True),
    "cifar100": (tv.CIFAR100, ["cifar-100-python/train", "cifar-100-python/test"],
                 "the folder cifar-100-python/ extracted from cifar-100-python.tar.gz", 100, True),
    "mnist": (tv.MNIST, ["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-images-idx3-ubyte"],
              "MNIST/raw/ holding the four unzipped idx files (train-images-idx3-ubyte, ...)", 10, False),
    "fashion_mnist": (tv.FashionMNIST, ["FashionMNIST/raw/train-images-idx3-ubyte", "FashionMNIST/raw/t10k-images-idx3-ubyte"],
                      "FashionMNIST/raw/ holding the four unzipped idx files (train-images-idx3-ubyte, ...)", 10, False),
}


def _offline(cls):
    """The torchvision class with its checksum test replaced by a presence test: checksums are those of
    the full downloads, and a user's files (or a test's small ones) are trusted once they exist."""
    if not hasattr(cls, "_check_integrity"):
        return cls

    class Offline(cls):
        def _check_integrity(self) -> bool:
            folder = Path(self.root) / self.base_folder
            return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            path = Path(self.root) / self.base_folder / self.meta["filename"]
            if not path.is_file():
                raise DatasetMissing(f"{path} not found: the dataset folder is incomplete")
            with open(path, "rb") as handle:
                self.classes = pickle.load(handle, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {name: index for index, name in enumerate(self.classes)}

    Offline.__name__ = cls.__name__
    return Offline


class VisionDataset:
    """One of the torchvision sets above. The validation split is a seeded `val_fraction` of the
    official training set; the official test set is the test split."""

    def __init__(self, name: str, root: str, download: bool = False, val_fraction: float = 0.1,
                 split_seed: int = 0, train_subset: int | None = None, eval_subset: int | None = None,
                 augment: bool | None = None, cutout: int = 0):
        if name not in _SPECS:
            raise ConfigError(f"unknown torchvision dataset '{name}' (known: {sorted(_SPECS)})")
        self.name, self.root, self.download = name, resolve_root(root), bool(download)
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.train_subset, self.eval_subset = train_subset, eval_subset
        self.augment, self.cutout = augment, int(cutout)

    def load(self) -> DataBundle:
        cls, required, what, num_classes, augment_default = _SPECS[self.name]
        missing = [f for f in required if not (self.root / f).is_file()]
        if missing and not self.download:
            raise DatasetMissing(
                f"dataset {self.name}: {self.root / missing[0]} not found; put {what} under {self.root} "
                f"(set dataset.root=/abs/path or NASRUN_DATA_DIR), or pass dataset.download=true where there is internet")
        cls = cls if self.download else _offline(cls)
        train_set = cls(str(self.root), train=True, download=self.download)
        test_set = cls(str(self.root), train=False, download=self.download)
        train_x, train_y = _tensors(train_set)
        test_x, test_y = _tensors(test_set)
        val_idx, train_idx = split_indices(len(train_y), [self.val_fraction], self.split_seed)
        train, val, test = standardise(train_x[train_idx], train_x[val_idx], test_x)
        augment = augment_default if self.augment is None else self.augment
        return DataBundle(
            name=self.name,
            train=limit(TensorSplit(train, train_y[train_idx]), self.train_subset, self.split_seed),
            val=limit(TensorSplit(val, train_y[val_idx]), self.eval_subset, self.split_seed),
            test=limit(TensorSplit(test, test_y), self.eval_subset, self.split_seed),
            num_classes=num_classes,
            input_shape=tuple(train.shape[1:]),
            augment=Augment(crop_padding=4 if augment else 0, flip=bool(augment), cutout=self.cutout),
        )


def _tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float (N, C, H, W) in [0, 1] and labels, from torchvision's in-memory arrays."""
    data = dataset.data
    images = torch.as_tensor(np.asarray(data), dtype=torch.float32) / 255.0
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    return images, torch.as_tensor(np.asarray(dataset.targets), dtype=torch.long)
