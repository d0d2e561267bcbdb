"""CIFAR-10/100, MNIST and Fashion-MNIST through torchvision, read from an absolute data directory in
the files' own on-disk format, held in memory as tensors. Nothing is downloaded unless `download=true`.
CIFAR files are checked against the official checksums first (`verify: true`, torchvision's own test);
with `verify: false` they are read with an unpickler that accepts arrays and strings only."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tv

from nasrun.datasets.source import DatasetSource
from nasrun.datasets.base import (Augment, DataBundle, InputTransform, TensorSplit, limit, resolve_root,
                                  split_indices, standardise)
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


class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR's batches (dicts of numpy arrays, lists and strings) and nothing else: a file
    that asks for any other global (code) is refused instead of run."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks to load {module}.{name}, which a CIFAR batch never holds")
        return super().find_class(module, name)


def _unpickle_arrays(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            entry = _ArraysOnly(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError) as err:
        raise DatasetMissing(f"{path} is corrupt or not a CIFAR batch ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:160]})") from None
    if not isinstance(entry, dict):
        raise DatasetMissing(f"{path} is not a CIFAR batch (it holds no dict)")
    return entry


def _unverified(cls):
    """The torchvision class for files the user vouches for (`verify: false`, e.g. made by hand or by
    tests): torchvision's file lists, a presence test instead of its checksums (those of the official
    release), and a restricted unpickler, so an unverified file can hold data but never code."""
    if not hasattr(cls, "_check_integrity"):  # MNIST-like sets: raw idx files, no pickle, no checksum
        return cls

    class Unverified(cls):
        def __init__(self, root: str, train: bool = True, download: bool = False):
            tv.VisionDataset.__init__(self, root)
            self.train = train
            folder = Path(self.root) / self.base_folder
            arrays, self.targets = [], []
            for name, _ in self.train_list if train else self.test_list:
                entry = _unpickle_arrays(folder / name)
                arrays.append(entry["data"])
                self.targets.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
            self.data = np.vstack(arrays).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
            self.classes = _unpickle_arrays(folder / self.meta["filename"])[self.meta["key"]]
            self.class_to_idx = {label: index for index, label in enumerate(self.classes)}

    Unverified.__name__ = cls.__name__
    return Unverified


class VisionDataset(DatasetSource):
    """One of the torchvision sets above. The validation split is a seeded `val_fraction` of the
    official training set; the official test set is the test split."""

    def __init__(self, name: str, root: str, download: bool = False, val_fraction: float = 0.1,
                 split_seed: int = 0, train_subset: int | None = None, eval_subset: int | None = None,
                 augment: bool | None = None, cutout: int = 0, verify: bool = True):
        if name not in _SPECS:
            raise ConfigError(f"unknown torchvision dataset '{name}' (known: {sorted(_SPECS)})")
        self.name, self.root, self.download = name, resolve_root(root), bool(download)
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.train_subset, self.eval_subset = train_subset, eval_subset
        self.augment, self.cutout, self.verify = augment, int(cutout), bool(verify)

    def load(self) -> DataBundle:
        cls, required, what, num_classes, augment_default = _SPECS[self.name]
        missing = [f for f in required if not (self.root / f).is_file()]
        if missing and not self.download:
            raise DatasetMissing(
                f"dataset {self.name}: {self.root / missing[0]} not found; put {what} under {self.root} "
                f"(set dataset.root=/abs/path or NASRUN_DATA_DIR), or pass dataset.download=true where there is internet")
        train_set, test_set = (self._read(cls, what, train) for train in (True, False))
        train_x, train_y = _tensors(train_set)
        test_x, test_y = _tensors(test_set)
        val_idx, train_idx = split_indices(len(train_y), [self.val_fraction], self.split_seed)
        (train, val, test), mean, std = standardise(train_x[train_idx], train_x[val_idx], test_x)
        augment = augment_default if self.augment is None else self.augment
        return DataBundle(
            name=self.name,
            train=limit(TensorSplit(train, train_y[train_idx]), self.train_subset, self.split_seed),
            val=limit(TensorSplit(val, train_y[val_idx]), self.eval_subset, self.split_seed),
            test=limit(TensorSplit(test, test_y), self.eval_subset, self.split_seed),
            num_classes=num_classes,
            input_shape=tuple(train.shape[1:]),
            augment=Augment(crop_padding=4 if augment else 0, flip=bool(augment), cutout=self.cutout),
            transform=InputTransform(mean, std, preprocessing=(f"{self.name} images as uint8 pixels",)),
            classes=list(train_set.classes),
        )

    def _read(self, cls, what: str, train: bool):
        """One official split through torchvision; any file it cannot read is a one-line error."""
        reader = cls if self.verify or self.download else _unverified(cls)
        try:
            return reader(str(self.root), train=train, download=self.download)
        except RuntimeError as err:
            if "corrupted" not in str(err):
                raise DatasetMissing(f"dataset {self.name}: cannot read {self.root}: {str(err).splitlines()[0]}") from None
            raise DatasetMissing(
                f"dataset {self.name}: the files under {self.root} fail torchvision's checksum test (corrupt, "
                f"partial or not the official release); put {what} there again, or set dataset.verify=false "
                "for files you made yourself") from None
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, OSError) as err:
            raise DatasetMissing(f"dataset {self.name}: a file under {self.root} is corrupt or not in the "
                                 f"dataset's format ({type(err).__name__}: {str(err).splitlines()[0][:160]})") from None


def _tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float (N, C, H, W) in [0, 1] and labels, from torchvision's in-memory arrays."""
    data = dataset.data
    images = torch.as_tensor(np.asarray(data), dtype=torch.float32) / 255.0
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    return images, torch.as_tensor(np.asarray(dataset.targets), dtype=torch.long)
