"""The real CIFAR-10 sample (6,000 images, `../shared/data/cifar10-sample`, README there) written in the
`cifar-10-batches-py` layout torchvision reads, so that scripts and tests feed real images through the
real `dataset=cifar10` loader instead of a shortcut.

    python scripts/cifar10_sample.py OUT_DIR [--per-batch 1000] [--test 1000]   # then dataset.root=OUT_DIR
"""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import numpy as np

CANDIDATES = (Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-sample" / "cifar10_sample.npz",
              Path("/work/shared/data/cifar10-sample/cifar10_sample.npz"))


def sample_path() -> Path:
    """$NASRUN_CIFAR10_SAMPLE, else the workplace's shared data folder beside the checkout or at /work/shared."""
    candidates = [Path(p) for p in (os.environ.get("NASRUN_CIFAR10_SAMPLE", ""),) if p] + list(CANDIDATES)
    return next((p for p in candidates if p.is_file()), candidates[0])


def write_cifar10_batches(root: Path, per_batch: int = 1000, test: int = 1000, sample: Path | None = None) -> dict:
    """The sample's first `5 * per_batch` training and `test` test images as CIFAR's protocol-2 pickles
    (rows of R, G, B planes) under `root/cifar-10-batches-py`; returns the arrays written."""
    arrays = np.load(sample or sample_path())
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train = arrays["train_images"][:5 * per_batch], arrays["train_labels"][:5 * per_batch]
    held_out = arrays["test_images"][:test], arrays["test_labels"][:test]
    batches = [(f"data_batch_{i + 1}", train[0][i * per_batch:(i + 1) * per_batch],
                train[1][i * per_batch:(i + 1) * per_batch]) for i in range(5)] + [("test_batch", *held_out)]
    for name, images, labels in batches:
        rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # HWC -> CHW planes, one row per image
        batch = {"data": rows, "labels": [int(label) for label in labels], "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(c) for c in arrays["classes"]]},
                                                       protocol=2))
    return {"train": train, "test": held_out}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-batch", type=int, default=1000, help="training images per data_batch_N (5 of them)")
    parser.add_argument("--test", type=int, default=1000, help="test images")
    args = parser.parse_args(argv)
    arrays = write_cifar10_batches(args.out, args.per_batch, args.test)
    print(f"wrote {len(arrays['train'][1])} training and {len(arrays['test'][1])} test images to "
          f"{args.out / 'cifar-10-batches-py'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
