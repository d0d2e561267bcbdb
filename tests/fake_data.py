"""Small datasets written in the real on-disk formats torchvision reads (CIFAR's protocol-2 pickles with
str keys, MNIST idx files, image folders), so the real loaders are tested without downloads."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def _images(n: int, shape, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    labels = [i % 10 for i in range(n)]
    images = rng.integers(0, 60, size=(n, *shape), dtype=np.uint8)
    for i, label in enumerate(labels):  # a learnable signal: the class sets a bright band
        images[i, ..., label * shape[-2] // 10: label * shape[-2] // 10 + 2, :] = 250
    return images, labels


def write_cifar10(root: Path, per_batch: int = 20) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        images, labels = _images(per_batch, (3, 32, 32), seed)
        batch = {"data": images.reshape(per_batch, -1), "labels": labels, "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


def write_cifar100(root: Path, n: int = 60) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(["train", "test"]):
        images, labels = _images(n, (3, 32, 32), seed)
        fine = [(label * 7 + i) % 100 for i, label in enumerate(labels)]
        batch = {"data": images.reshape(n, -1), "fine_labels": fine, "coarse_labels": [f % 20 for f in fine]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}, protocol=2))
    return root


def write_mnist(root: Path, folder_name: str = "MNIST", n_train: int = 60, n_test: int = 30) -> Path:
    raw = root / folder_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = _images(n, (28, 28), seed)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + bytes(labels))
    return root


def write_image_folder(root: Path, splits=("train", "val", "test"), per_class: int = 4, classes=("cat", "dog")) -> Path:
    from PIL import Image

    for s, split in enumerate(splits):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = np.full((20, 24, 3), 40 + 150 * c, dtype=np.uint8)
                pixels[i % 20] = 10 * s
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def write_flat_image_folder(root: Path, per_class: int = 4, classes=("cat", "dog")) -> Path:
    """`root/<class>/*.png` with no split folders: the images write_image_folder puts in `train/`."""
    return write_image_folder(root, splits=("",), per_class=per_class, classes=classes)


def write_array_folder(root: Path, images: np.ndarray, labels, classes, suffix: str = ".png") -> Path:
    """HWC uint8 `images` as `root/<class name>/<index><suffix>` (PNG or JPEG by the suffix)."""
    from PIL import Image

    for index, (pixels, label) in enumerate(zip(images, labels)):
        folder = root / str(classes[int(label)])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{index:05d}{suffix}")
    return root
