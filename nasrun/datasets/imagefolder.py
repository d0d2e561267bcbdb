"""A user's own images: `root/train/<class>/*.png`, `root/val/<class>/...` and optionally `root/test/...`.
Without a test folder, a seeded `test_fraction` of the training images becomes the test split."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Subset
from torchvision import datasets as tv
from torchvision import transforms as T

from nasrun.datasets.base import Augment, DataBundle, DatasetSource, resolve_root, split_indices
from nasrun.errors import ConfigError, DatasetMissing


class ImageFolderDataset(DatasetSource):
    def __init__(self, root: str, image_size: int = 32, channels: int = 3, test_fraction: float = 0.1,
                 split_seed: int = 0, augment: bool = True, cutout: int = 0,
                 mean: float = 0.5, std: float = 0.25):
        if channels not in (1, 3):
            raise ConfigError(f"imagefolder: channels must be 1 or 3, got {channels}")
        self.root, self.image_size, self.channels = resolve_root(root), int(image_size), int(channels)
        self.test_fraction, self.split_seed = test_fraction, split_seed
        self.augment, self.cutout, self.mean, self.std = augment, int(cutout), mean, std

    def _folder(self, split: str) -> tv.ImageFolder:
        transform = T.Compose([
            T.Grayscale(1) if self.channels == 1 else T.Lambda(lambda image: image.convert("RGB")),
            T.Resize(self.image_size),
            T.CenterCrop(self.image_size),
            T.ToTensor(),
            T.Normalize([self.mean] * self.channels, [self.std] * self.channels),
        ])
        try:
            return tv.ImageFolder(str(self.root / split), transform=transform)
        except (FileNotFoundError, RuntimeError) as err:
            raise DatasetMissing(f"imagefolder: {self.root / split}: {err}".splitlines()[0]) from None

    def load(self) -> DataBundle:
        for split in ("train", "val"):
            if not (self.root / split).is_dir():
                raise DatasetMissing(
                    f"imagefolder: {self.root / split} not found; put images in {self.root}/train/<class>/ and "
                    f"{self.root}/val/<class>/ (optionally test/), or set dataset.root=/abs/path")
        train, val = self._folder("train"), self._folder("val")
        if val.classes != train.classes:
            raise ConfigError(f"imagefolder: val classes {val.classes} differ from train classes {train.classes}")
        if (self.root / "test").is_dir():
            test = self._folder("test")
            if test.classes != train.classes:
                raise ConfigError(f"imagefolder: test classes {test.classes} differ from train classes {train.classes}")
        else:
            test_idx, train_idx = split_indices(len(train), [self.test_fraction], self.split_seed)
            train, test = Subset(train, train_idx.tolist()), Subset(train, test_idx.tolist())
        classes = val.classes
        return DataBundle(
            name=f"imagefolder:{Path(self.root).name}",
            train=train, val=val, test=test,
            num_classes=len(classes),
            input_shape=(self.channels, self.image_size, self.image_size),
            augment=Augment(crop_padding=self.image_size // 8 if self.augment else 0, flip=self.augment, cutout=self.cutout),
        )
