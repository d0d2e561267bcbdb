"""Splits held in memory as tensors, a fast batch iterator with on-the-fly augmentation, and the bundle
of train / validation / test splits every estimator receives."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from nasrun.errors import ConfigError, DataError


@dataclass
class Augment:
    """Batch augmentation for image splits: padded random crop, horizontal flip, cutout."""

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            flip = torch.rand(x.shape[0], generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if self.cutout:
            x = cutout(x, self.cutout, generator)
        return x

    @property
    def active(self) -> bool:
        return bool(self.crop_padding or self.flip or self.cutout)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # a view: (n, c, offsets y, offsets x, h, w)
    return windows[torch.arange(n), :, dy, dx]        # each image's window: ~8x faster than two gathers


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one size×size square per image, centred anywhere (DeVries & Taylor, 2017)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=generator)[:, None, None]
    cx = torch.randint(0, w, (n,), generator=generator)[:, None, None]
    ys, xs = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
    hole = ((ys - cy).abs() <= size // 2) & ((xs - cx).abs() <= size // 2)
    return x * (~hole)[:, None].to(x.dtype)


class TensorSplit(Dataset):
    """A split held in memory: normalised float images (N, C, H, W) and integer labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images.float().contiguous(), labels.long().contiguous()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def subset(self, indices: torch.Tensor) -> "TensorSplit":
        return TensorSplit(self.images[indices], self.labels[indices])


@dataclass(frozen=True)
class InputTransform:
    """How an image as a user has it becomes the network's input: `preprocessing` (in words) turns it into
    float32 NCHW values in [0, 1] (pixel / `pixel_max`), and the network sees `(x - mean) / std` per channel.
    Saved with the run (best_architecture.json) so that an export takes [0, 1] images and normalises itself."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_max: float = 255.0
    preprocessing: tuple[str, ...] = ()

    def to_json(self, input_shape: Sequence[int]) -> dict:
        return {"shape": list(input_shape), "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0],
                "pixel_max": self.pixel_max, "preprocessing": [*self.preprocessing, f"pixel / {self.pixel_max:g}"],
                "normalize": {"mean": list(self.mean), "std": list(self.std)}}


@dataclass
class DataBundle:
    """What an estimator trains and scores on. The test split is used once, for the final architecture.
    `transform` and `classes`, where the source knows them, are saved with the run for deployment."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple
    augment: Augment = field(default_factory=Augment)
    transform: InputTransform | None = None
    classes: list[str] | None = None

    def __post_init__(self):
        """The minimum that makes a score mean something: 2 classes, and at least one image in every split
        (a split without one would train on nothing, or score an empty validation set)."""
        if self.num_classes < 2:
            raise DataError(f"dataset {self.name} has {self.num_classes} class(es); a classification search "
                            "needs at least 2")
        sizes = self.sizes()
        empty = [split for split, size in sizes.items() if size == 0]
        if empty:
            raise DataError(f"dataset {self.name}: no images in the {' and '.join(empty)} split ({sizes}); every "
                            "split needs at least one: add images, or change the split fractions or subsets")

    def loader(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0,
               num_workers: int = 0, drop_last: bool = False) -> Iterator:
        """Batches of one split; training batches are augmented. Same seed, same batches."""
        data = getattr(self, split)
        augment = self.augment if split == "train" else None
        return batches(data, batch_size, shuffle, seed, augment, num_workers, drop_last)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def describe_input(self) -> dict:
        """`{"dataset", "input", "classes"}` for best_architecture.json: what an exported model is fed."""
        described: dict = {"dataset": self.name}
        if self.transform is not None:
            described["input"] = self.transform.to_json(self.input_shape)
        if self.classes is not None:
            described["classes"] = [str(name) for name in self.classes]
        return described


def batches(data: Dataset, batch_size: int, shuffle: bool, seed: int, augment: Augment | None = None,
            num_workers: int = 0, drop_last: bool = False) -> Iterator:
    """Iterate (x, y) batches. In-memory splits are sliced directly (no per-sample Python calls)."""
    generator = torch.Generator().manual_seed(int(seed))
    if isinstance(data, TensorSplit):
        return _tensor_batches(data, batch_size, shuffle, generator, augment, drop_last)
    loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator,
                        num_workers=num_workers, drop_last=drop_last)
    return _augmented(loader, augment, generator)


def _tensor_batches(data: TensorSplit, batch_size, shuffle, generator, augment, drop_last):
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        with one_thread():
            index = order[start:start + batch_size]
            x = data.images[index]
            if augment is not None and augment.active:
                x = augment(x, generator)
            y = data.labels[index]
        yield x, y


def _augmented(loader, augment, generator):
    for x, y in loader:
        if augment is not None and augment.active:
            with one_thread():
                x = augment(x, generator)
        yield x, y


@contextmanager
def one_thread():
    """torch on one thread for a batch's preparation (gathers, crops, flips: elementwise, so the result is
    the same on any number of threads), the training's own count restored before the batch is used. Its
    ops take microseconds, and a parallel region waits for every thread: beside two busy processes a
    cached 32x32 image-folder epoch (crop + flip) ran at 27k images/s on two threads against 74-82k on
    one (quiet: 63-145k either way; scripts/bench_contention.py --imagefolder)."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[torch.Tensor]:
    """Shuffle 0..n-1 with `seed` and cut it into len(fractions)+1 parts; the last takes the rest."""
    if any(f <= 0 for f in fractions) or sum(fractions) >= 1:
        raise ConfigError(f"dataset split fractions must be positive and sum below 1, got {list(fractions)}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    parts, start = [], 0
    for fraction in fractions:
        size = max(1, round(n * fraction))
        parts.append(order[start:start + size])
        start += size
    parts.append(order[start:])
    return parts


def standardise(train: torch.Tensor, *others: torch.Tensor) -> tuple[list[torch.Tensor], tuple, tuple]:
    """Normalise every split with the training split's per-channel mean and std; also returns those
    (as tuples of floats, for the run's InputTransform)."""
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, *others)], tuple(mean.flatten().tolist()), tuple(std.flatten().tolist())


def resolve_root(root: str | Path) -> Path:
    """An absolute data directory (Hydra 1.3 keeps the launch directory as cwd)."""
    return Path(root).expanduser().resolve()


def limit(split: TensorSplit, count: int | None, seed: int) -> TensorSplit:
    """The first `count` samples of a seeded shuffle of `split` (all of them when count is None)."""
    if count is None or count >= len(split):
        return split
    if count <= 0:
        raise ConfigError(f"dataset subset sizes must be positive, got {count}")
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(int(seed)))
    return split.subset(order[:count])
