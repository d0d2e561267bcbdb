"""Epoch throughput of `dataset=imagefolder`: its uint8 cache against decoding every image through PIL every
epoch (the path before the cache), on the same images in the same run.

`--images` real 32x32 images of the CIFAR-10 sample (/work/shared/data/cifar10-sample, README there) are
written as JPEGs into a temporary `train/<class>/` folder, with 500 of its test images each in `val/` and
`test/`. An epoch is every training image once, in shuffled batches of 64 from DataBundle.loader("train")
with the default augmentation (crop + flip) as training consumes them, and again without it. Timed:
  old path      torchvision ImageFolder + the PIL transform (ToTensor, Normalize), DataLoader num_workers=0
  cached, first ImageFolderDataset(cache=memory).load() (decoding every image of the three folders) + 1 epoch
  cached, later the median of `--epochs` further epochs
  disk cache    a load() that reads the cache file an earlier cache=disk load wrote
Goal: later cached epochs >= 20x the old path's images/s.

    python scripts/bench_imagefolder.py [--images 5000] [--epochs 5] [--old-epochs 2] [--workers 2]

The table goes to results/imagefolder.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision import datasets as tv
from torchvision import transforms as T

from nasrun.datasets.base import Augment, DataBundle
from nasrun.build import build_components
from nasrun.commands.common import compose_run_config
from nasrun.datasets.imagefolder import ImageFolderDataset
from nasrun.hardware import cpu_name
from results_file import write_results

SAMPLE = Path(os.environ.get("NASRUN_CIFAR10_SAMPLE", "/work/shared/data/cifar10-sample/cifar10_sample.npz"))
BATCH, EVAL_IMAGES, QUALITY = 64, 500, 90


def write_jpeg_folders(root: Path, count: int) -> None:
    """`count` sample training images (repeated past 5,000) in train/<class>/, 500 test images each in val/ and test/."""
    sample = np.load(SAMPLE)
    classes = [str(c) for c in sample["classes"]]
    train_index = np.arange(count) % len(sample["train_labels"])
    parts = {"train": (sample["train_images"][train_index], sample["train_labels"][train_index]),
             "val": (sample["test_images"][:EVAL_IMAGES], sample["test_labels"][:EVAL_IMAGES]),
             "test": (sample["test_images"][EVAL_IMAGES:2 * EVAL_IMAGES],
                      sample["test_labels"][EVAL_IMAGES:2 * EVAL_IMAGES])}
    for split, (images, labels) in parts.items():
        for index, (pixels, label) in enumerate(zip(images, labels)):
            folder = root / split / classes[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / f"{index:05d}.jpg", quality=QUALITY)


def old_bundle(root: Path, augment: Augment) -> DataBundle:
    """The training split as the loader gave it before the cache: every image through PIL on every access."""
    transform = T.Compose([T.Lambda(lambda image: image.convert("RGB")), T.Resize(32), T.CenterCrop(32),
                           T.ToTensor(), T.Normalize([0.5] * 3, [0.25] * 3)])
    train = tv.ImageFolder(str(root / "train"), transform=transform)
    return DataBundle("old", train, train, train, len(train.classes), (3, 32, 32), augment)


def epoch_seconds(bundle: DataBundle, seed: int) -> float:
    start = time.perf_counter()
    seen = sum(len(y) for _, y in bundle.loader("train", BATCH, shuffle=True, seed=seed, num_workers=0))
    assert seen == len(bundle.train)
    return time.perf_counter() - start


def image_folder(root: Path, cache: str, workers: int) -> ImageFolderDataset:
    """The source `nasrun dataset=imagefolder dataset.root=ROOT dataset.cache=CACHE` reads (32x32)."""
    cfg = compose_run_config(["dataset=imagefolder", f"dataset.root={root}", "dataset.image_size=32",
                              f"dataset.cache={cache}", f"dataset.num_workers={workers}"])
    return build_components(cfg, ["dataset"]).dataset


def timed_load(source: ImageFolderDataset) -> tuple[DataBundle, float]:
    start = time.perf_counter()
    bundle = source.load()
    return bundle, time.perf_counter() - start


def no_augment(bundle: DataBundle) -> DataBundle:
    return dataclasses.replace(bundle, augment=Augment())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000, help="training images (the sample has 5,000)")
    parser.add_argument("--epochs", type=int, default=5, help="later cached epochs timed (median)")
    parser.add_argument("--old-epochs", type=int, default=2, help="old-path epochs timed (median)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers decoding for the cache")
    args = parser.parse_args()
    if not SAMPLE.is_file():
        sys.exit(f"{SAMPLE} not found: this benchmark needs the real CIFAR-10 sample (set NASRUN_CIFAR10_SAMPLE=PATH)")
    print("command: python " + " ".join(sys.argv))
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {PIL.__version__}; "
          f"CPU {cpu_name()} ({os.cpu_count()} cores); {torch.get_num_threads()} torch threads; "
          f"{args.workers} decode workers")

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        write_jpeg_folders(root, args.images)
        total = args.images + 2 * EVAL_IMAGES
        print(f"{args.images} training images (+{EVAL_IMAGES} val, +{EVAL_IMAGES} test), 32x32 JPEG quality "
              f"{QUALITY}, shuffled batches of {BATCH}")
        cached, load_s = timed_load(image_folder(root, "memory", args.workers))
        seconds = {"cached, first epoch (with decode)": load_s + epoch_seconds(cached, seed=0)}
        old = old_bundle(root, cached.augment)
        for label, bundle, epochs in (("old path (PIL every epoch)", old, args.old_epochs),
                                      ("cached, later epochs", cached, args.epochs)):
            seconds[label] = statistics.median(epoch_seconds(bundle, seed) for seed in range(1, epochs + 1))
            seconds[f"{label}, no augmentation"] = statistics.median(
                epoch_seconds(no_augment(bundle), seed) for seed in range(1, epochs + 1))
        timed_load(image_folder(root, "disk", args.workers))
        _, disk_s = timed_load(image_folder(root, "disk", args.workers))

    rate = {label: args.images / s for label, s in seconds.items()}
    for label, s in seconds.items():
        print(f"{label:<45} {rate[label]:>10,.0f} images/s  ({s * 1000:,.1f} ms/epoch)")
    decoding = (f"decoding for the cache: {total} images in {load_s:.2f} s = {total / load_s:,.0f} images/s; "
                f"a load() reading the disk cache: {disk_s:.3f} s")
    old, later = rate["old path (PIL every epoch)"], rate["cached, later epochs"]
    ratios = (f"ratio cached later epochs / old path: {later / old:.1f}x with the default augmentation, "
              f"{rate['cached, later epochs, no augmentation'] / rate['old path (PIL every epoch), no augmentation']:.1f}x "
              f"without (goal >= 20x); first epoch / old path: {rate['cached, first epoch (with decode)'] / old:.2f}x")
    print(decoding)
    print(ratios)
    write_results("imagefolder", "dataset=imagefolder: the uint8 cache against decoding through PIL every epoch", [(
        f"{args.images} training images, 32x32 JPEG quality {QUALITY}, shuffled batches of {BATCH}, "
        f"{args.workers} decode workers, {torch.get_num_threads()} torch threads",
        ["path", "images/s", "ms per epoch"],
        [[label, f"{rate[label]:,.0f}", f"{s * 1000:,.1f}"] for label, s in seconds.items()])],
        notes=f"{ratios}. {decoding}.")


if __name__ == "__main__":
    main()
