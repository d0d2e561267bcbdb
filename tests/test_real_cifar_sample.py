"""Real images through the real CIFAR-10 loader: part of the 6,000-image CIFAR-10 sample
(../shared/data/cifar10-sample, README there) written in the `cifar-10-batches-py` layout torchvision
reads, then searched on from the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CIFAR10_SAMPLE, REPO, TINY, read_jsonl, run_cli, run_dirs

sys.path.insert(0, str(REPO / "scripts"))
import cifar10_sample  # noqa: E402  (scripts/cifar10_sample.py: the sample in the torchvision layout)
from nasrun.rundir import RunDir

SAMPLE = CIFAR10_SAMPLE
pytestmark = pytest.mark.skipif(not SAMPLE.is_file(), reason=f"{SAMPLE} is not on this machine")

PER_BATCH, TEST = 100, 100  # five training batches of 100 real images and a test batch of 100


def write_cifar10_batches(root: Path) -> dict:
    """The sample's first images (five training batches of PER_BATCH, TEST test images) in CIFAR's layout."""
    return cifar10_sample.write_cifar10_batches(root, PER_BATCH, TEST, SAMPLE)


def test_the_cifar10_loader_reads_the_real_images_unchanged(tmp_path):
    from nasrun.datasets.vision import VisionDataset

    arrays = write_cifar10_batches(tmp_path / "data")
    data = VisionDataset("cifar10", root=str(tmp_path / "data"), val_fraction=0.1, verify=False).load()
    assert data.sizes() == {"train": 450, "val": 50, "test": 100} and data.num_classes == 10
    test_images, test_labels = arrays["test"]
    assert data.test.labels.tolist() == test_labels.tolist()
    for loaded, raw in zip(data.test.images[:3], test_images[:3]):  # standardised per channel: affine in the pixels
        for channel in range(3):
            r = np.corrcoef(loaded[channel].flatten().numpy(), raw[..., channel].flatten())[0, 1]
            assert r > 0.9999, (channel, r)


def test_a_search_on_real_cifar10_images_in_their_own_format(tmp_path):
    write_cifar10_batches(tmp_path / "data")
    result = run_cli([*TINY, "dataset=cifar10", f"dataset.root={tmp_path / 'data'}", "dataset.verify=false",
                      "dataset.train_subset=null", "dataset.eval_subset=null"], tmp_path)  # every image of the sample
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    summary = json.loads(RunDir(run).summary.read_text())
    assert summary["dataset"] == "cifar10" and summary["trials"] == 2 and summary["failed_trials"] == 0
    assert "'train': 450, 'val': 50, 'test': 100" in RunDir(run).log.read_text()
    assert all(0.0 <= t["metrics"]["val_accuracy"] <= 1.0 for t in read_jsonl(RunDir(run).trials))
