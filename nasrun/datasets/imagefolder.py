"""A user's own images in class folders: `root/train/<class>/*` with optional `val/` and `test/` beside it,
or `root/<class>/*` directly. A split without a folder is cut from the training images with a seeded
fraction. Images are decoded once into a uint8 cache (in memory, and on disk next to the data when large)
and normalised per batch; only when they do not fit in `max_cache_mb` are they decoded on every access."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import PIL
import torchvision
from torchvision import datasets as tv
from torchvision import transforms as T

from nasrun.datasets.source import DatasetSource
from nasrun.datasets.base import Augment, DataBundle, InputTransform, limit, resolve_root, split_indices
from nasrun.datasets.image_cache import CachedSplit, FolderSubset, decode, load_or_decode
from nasrun.errors import ConfigError, DataError, DatasetMissing

log = logging.getLogger("nasrun")

CACHE_MODES = ("auto", "memory", "disk", "none")
AUTO_DISK_BYTES = 32 * 2 ** 20  # `cache: auto` also writes a disk cache from this many decoded bytes on
CACHE_FORMAT = 1                # bump when the decoded content of the same files and settings changes
SPLITS = ("train", "val", "test")


class _Folder(tv.ImageFolder):
    """torchvision's ImageFolder, skipping hidden folders (the `.nasrun-cache/` beside the class folders)."""

    def find_classes(self, directory: str):
        classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
        if not classes:
            raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
        return classes, {name: index for index, name in enumerate(classes)}


def load_image(path: str):
    """An image file as torchvision's ImageFolder opens it; one that cannot be decoded (empty, truncated,
    not an image) is a one-line DataError naming it."""
    try:
        return tv.folder.default_loader(path)
    except Exception as err:  # noqa: BLE001 - whatever PIL raises for a broken file, the file is named
        reason = str(err).splitlines()[0][:120] if str(err) else ""
        raise DataError(f"imagefolder: cannot read the image {path} ({type(err).__name__}: {reason})") from None


class _ToRGB:
    def __call__(self, image):
        return image.convert("RGB")


@dataclass
class _WorkerBundle(DataBundle):
    """A DataBundle whose loaders use at least `workers` DataLoader workers (for splits decoded on access)."""

    workers: int = 0

    def loader(self, split, batch_size, shuffle=False, seed=0, num_workers=0, drop_last=False):
        return super().loader(split, batch_size, shuffle, seed, max(num_workers, self.workers), drop_last)


class ImageFolderDataset(DatasetSource):
    def __init__(self, root: str, image_size: int = 32, channels: int = 3, val_fraction: float = 0.1,
                 test_fraction: float = 0.1, split_seed: int = 0, train_subset: int | None = None,
                 eval_subset: int | None = None, augment: bool = True, cutout: int = 0, mean: float = 0.5,
                 std: float = 0.25, cache: str = "auto", cache_dir: str | None = None,
                 max_cache_mb: float = 2048, num_workers: int = 2):
        if channels not in (1, 3):
            raise ConfigError(f"imagefolder: channels must be 1 or 3, got {channels}")
        if cache not in CACHE_MODES:
            raise ConfigError(f"imagefolder: cache must be one of {list(CACHE_MODES)}, got {cache!r}")
        if float(max_cache_mb) < 0 or int(num_workers) < 0 or int(image_size) <= 0:
            raise ConfigError("imagefolder: image_size must be positive, max_cache_mb and num_workers >= 0, got "
                              f"{image_size}, {max_cache_mb}, {num_workers}")
        self.root, self.image_size, self.channels = resolve_root(root), int(image_size), int(channels)
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.train_subset, self.eval_subset = train_subset, eval_subset
        self.augment, self.cutout, self.mean, self.std = augment, int(cutout), mean, std
        self.cache, self.max_cache_mb, self.num_workers = cache, float(max_cache_mb), int(num_workers)
        self.cache_dir = resolve_root(cache_dir) if cache_dir else self.root / ".nasrun-cache"

    # --- layout ------------------------------------------------------------------------------------------
    def expected(self) -> str:
        return (f"expected {self.root}/train/<class>/*.png (with optional val/ and test/ beside train/) or "
                f"{self.root}/<class>/*.png; set dataset.root=/abs/path")

    def folders(self) -> dict[str, Path]:
        """The split folders on disk: train/ (val/, test/) under root, or root itself as the training folder."""
        if not self.root.is_dir():
            raise DatasetMissing(f"imagefolder: {self.root} not found; {self.expected()}")
        present = {split: self.root / split for split in SPLITS if (self.root / split).is_dir()}
        if present and "train" not in present:
            raise DatasetMissing(f"imagefolder: {self.root} has {'/, '.join(present)}/ but no train/; {self.expected()}")
        return present or {"train": self.root}

    def _open(self, folder: Path, transform) -> _Folder:
        try:
            return _Folder(str(folder), transform=transform, loader=load_image)
        except (FileNotFoundError, RuntimeError) as err:
            raise DatasetMissing(f"imagefolder: {str(err).splitlines()[0]} {self.expected()}") from None

    def _check_classes(self, opened: dict[str, _Folder]) -> None:
        train = opened["train"].classes
        for split, folder in opened.items():
            if folder.classes != train:
                missing, extra = sorted(set(train) - set(folder.classes)), sorted(set(folder.classes) - set(train))
                raise ConfigError(f"imagefolder: the class folders of {split}/ differ from train/'s (missing "
                                  f"{missing}, extra {extra}); every split needs the same class folders")

    # --- transforms and cache ----------------------------------------------------------------------------
    def _pixels(self) -> list:
        """Channel conversion, resize and center crop: what the uint8 cache holds."""
        mode = T.Grayscale(1) if self.channels == 1 else _ToRGB()
        return [mode, T.Resize(self.image_size), T.CenterCrop(self.image_size)]

    def streaming_transform(self) -> T.Compose:
        """The transform of images decoded on every access (also what the cache reproduces)."""
        normalise = T.Normalize([self.mean] * self.channels, [self.std] * self.channels)
        return T.Compose([*self._pixels(), T.ToTensor(), normalise])

    def input_transform(self) -> InputTransform:
        """What turns an image file into the network's input (`_pixels`, then ToTensor and Normalize), in words."""
        mode = "grayscale (PIL convert('L'))" if self.channels == 1 else "RGB (PIL convert('RGB'))"
        steps = (f"convert to {mode}", f"resize the shorter side to {self.image_size} (bilinear, antialiased)",
                 f"center-crop {self.image_size}x{self.image_size}")
        return InputTransform((float(self.mean),) * self.channels, (float(self.std),) * self.channels,
                              preprocessing=steps)

    def settings(self) -> dict:
        return {"format": CACHE_FORMAT, "image_size": self.image_size, "channels": self.channels,
                "pillow": PIL.__version__, "torchvision": torchvision.__version__}

    def cache_file(self, split: str, folder: Path) -> Path:
        tag = hashlib.sha256(json.dumps([str(folder), self.settings()]).encode()).hexdigest()[:12]
        return self.cache_dir / f"{split if folder != self.root else 'all'}-{tag}.pt"

    def _decoded(self, split: str, folder: _Folder, on_disk: bool) -> CachedSplit:
        shape = (len(folder), self.channels, self.image_size, self.image_size)
        path = Path(folder.root)
        if on_disk:
            images, labels = load_or_decode(folder, path, self.cache_file(split, path), self.settings(), shape,
                                            self.num_workers)
        else:
            images, labels = decode(folder, self.num_workers)
        return CachedSplit(images, labels, self.mean, self.std)

    def _decoded_bytes(self, opened: dict[str, _Folder]) -> int:
        return sum(len(folder) for folder in opened.values()) * self.channels * self.image_size ** 2

    def _fits_in_memory(self, opened: dict[str, _Folder]) -> bool:
        if self.cache == "none":
            return False
        megabytes = self._decoded_bytes(opened) / 2 ** 20
        if megabytes > self.max_cache_mb:
            log.warning("imagefolder: the decoded images need %.0f MB, over max_cache_mb=%g; decoding them on "
                        "every access with %d workers", megabytes, self.max_cache_mb, self.num_workers)
            return False
        return True

    # --- splits ------------------------------------------------------------------------------------------
    def _splits(self) -> tuple[dict, list[str], bool]:
        """Each split folder as a CachedSplit (a FolderSubset when not cached), the class names, whether cached."""
        decode_transform = T.Compose([*self._pixels(), T.PILToTensor()])
        opened = {split: self._open(path, decode_transform) for split, path in self.folders().items()}
        self._check_classes(opened)
        if self._fits_in_memory(opened):
            return self._cached(opened), opened["train"].classes, True
        return self._streamed(opened), opened["train"].classes, False

    def _cached(self, opened: dict[str, _Folder]) -> dict[str, CachedSplit]:
        on_disk = self.cache == "disk" or (self.cache == "auto" and self._decoded_bytes(opened) >= AUTO_DISK_BYTES)
        return {split: self._decoded(split, folder, on_disk) for split, folder in opened.items()}

    def _streamed(self, opened: dict[str, _Folder]) -> dict[str, FolderSubset]:
        for folder in opened.values():
            folder.transform = self.streaming_transform()
        return {split: FolderSubset(folder, range(len(folder))) for split, folder in opened.items()}

    def _cut(self, splits: dict) -> dict:
        """Cut the splits without a folder from the training split with their seeded fractions."""
        missing = [split for split in ("val", "test") if split not in splits]
        if missing:
            fractions = [self.val_fraction if split == "val" else self.test_fraction for split in missing]
            *parts, rest = split_indices(len(splits["train"]), fractions, self.split_seed)
            train = splits["train"]
            splits = {**splits, **{s: train.subset(p) for s, p in zip(missing, parts)}, "train": train.subset(rest)}
        return splits

    def load(self) -> DataBundle:
        splits, classes, cached = self._splits()
        splits = self._cut(splits)
        return _WorkerBundle(
            name=f"imagefolder:{self.root.name}",
            train=limit(splits["train"], self.train_subset, self.split_seed),
            val=limit(splits["val"], self.eval_subset, self.split_seed),
            test=limit(splits["test"], self.eval_subset, self.split_seed),
            num_classes=len(classes),
            input_shape=(self.channels, self.image_size, self.image_size),
            augment=Augment(crop_padding=self.image_size // 8 if self.augment else 0, flip=self.augment,
                            cutout=self.cutout),
            workers=0 if cached else self.num_workers,
            transform=self.input_transform(),
            classes=list(classes),
        )
