"""The image-folder dataset: its layouts and seeded splits, subsets, the uint8 cache (in memory and on disk)
against torchvision's decode-every-epoch path, and a search on real CIFAR-10 images through the CLI."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision import datasets as tv
from torchvision import transforms as T

from conftest import CIFAR10_SAMPLE, TINY, run_cli, run_dirs
from fake_data import write_array_folder, write_flat_image_folder, write_image_folder
from nasrun.rundir import RunDir
from nasrun.datasets import image_cache, imagefolder
from nasrun.datasets.image_cache import CachedSplit, FolderSubset
from nasrun.datasets.imagefolder import ImageFolderDataset
from nasrun.errors import ConfigError, DatasetMissing

SAMPLE = CIFAR10_SAMPLE


def load(root, image_size=8, **options):
    return ImageFolderDataset(str(root), image_size=image_size, **options).load()


def pil_path(folder, image_size, channels=3) -> tuple[torch.Tensor, torch.Tensor]:
    """A folder's images as the loader gave them before the cache: PIL + ToTensor + Normalize per image."""
    mode = T.Grayscale(1) if channels == 1 else T.Lambda(lambda image: image.convert("RGB"))
    transform = T.Compose([mode, T.Resize(image_size), T.CenterCrop(image_size), T.ToTensor(),
                           T.Normalize([0.5] * channels, [0.25] * channels)])
    pairs = list(tv.ImageFolder(str(folder), transform=transform))
    return torch.stack([x for x, _ in pairs]), torch.tensor([y for _, y in pairs])


def stacked(split) -> torch.Tensor:
    return torch.stack([split[i][0] for i in range(len(split))])


def rows(split) -> list[tuple]:
    return sorted(tuple(x.flatten().tolist()) for x in split.images)


@pytest.fixture
def pil_opens(monkeypatch):
    """How many images PIL opened since the fixture started (torchvision's loader calls PIL.Image.open)."""
    opened = []
    original = PIL.Image.open

    def counting(*args, **kwargs):
        opened.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", counting)
    return opened


# --- layouts -----------------------------------------------------------------------------------------------
def test_train_val_test_folders_are_the_splits(tmp_path):
    write_image_folder(tmp_path)
    bundle = load(tmp_path, image_size=16)
    assert bundle.sizes() == {"train": 8, "val": 8, "test": 8}
    assert bundle.num_classes == 2 and bundle.input_shape == (3, 16, 16) and bundle.name == f"imagefolder:{tmp_path.name}"
    assert isinstance(bundle.train, CachedSplit) and bundle.train.raw.dtype == torch.uint8
    x, y = next(iter(bundle.loader("train", 4, shuffle=True)))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and y.shape == (4,)


@pytest.mark.parametrize("splits, options, sizes", [
    (("train", "val"), {"test_fraction": 0.25}, {"train": 15, "val": 20, "test": 5}),
    (("train", "test"), {"val_fraction": 0.25}, {"train": 15, "val": 5, "test": 20}),
    (("train",), {"val_fraction": 0.25, "test_fraction": 0.25}, {"train": 10, "val": 5, "test": 5}),
    ((), {"val_fraction": 0.25, "test_fraction": 0.25}, {"train": 10, "val": 5, "test": 5}),
], ids=["train+val", "train+test", "train", "root/<class>"])
def test_missing_splits_are_cut_from_the_training_images(tmp_path, splits, options, sizes):
    if splits:
        write_image_folder(tmp_path, splits=splits, per_class=10)
    else:
        write_flat_image_folder(tmp_path, per_class=10)
    bundle = load(tmp_path, channels=1, **options)
    assert bundle.sizes() == sizes and bundle.input_shape == (1, 8, 8) and bundle.num_classes == 2
    cut = [bundle.train] + [getattr(bundle, s) for s in ("val", "test") if s not in splits]
    everything = [tuple(x.flatten().tolist()) for split in cut for x in split.images]
    assert len(set(everything)) == len(everything) == 20  # disjoint and complete: every image exactly once


def test_cut_splits_are_determined_by_the_split_seed(tmp_path):
    write_image_folder(tmp_path, splits=("train",), per_class=10)
    first, again = load(tmp_path, split_seed=3), load(tmp_path, split_seed=3)
    other = load(tmp_path, split_seed=4)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(first, split).raw, getattr(again, split).raw)
        assert torch.equal(getattr(first, split).labels, getattr(again, split).labels)
    assert rows(first.val) != rows(other.val)


def test_a_folder_of_class_folders_splits_like_a_train_folder(tmp_path):
    write_flat_image_folder(tmp_path / "flat", per_class=6)
    write_image_folder(tmp_path / "nested", splits=("train",), per_class=6)
    flat, nested = load(tmp_path / "flat"), load(tmp_path / "nested")
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(flat, split).raw, getattr(nested, split).raw)


def test_split_folders_with_different_classes_are_refused(tmp_path):
    write_image_folder(tmp_path, splits=("train",), classes=("cat", "dog"))
    write_image_folder(tmp_path, splits=("val",), classes=("cat", "cow"))
    with pytest.raises(ConfigError, match=r"val/.*missing \['dog'\], extra \['cow'\]"):
        load(tmp_path)


@pytest.mark.parametrize("make", [
    lambda root: root / "absent",
    lambda root: root,
    lambda root: write_image_folder(root, splits=("val", "test")),
    lambda root: (root / "train" / "cat").mkdir(parents=True) or root,
], ids=["missing root", "empty root", "val and test without train", "class folder without images"])
def test_a_missing_or_empty_folder_is_one_line_naming_the_layout(tmp_path, make):
    root = make(tmp_path)
    with pytest.raises(DatasetMissing) as err:
        load(root)
    message = str(err.value)
    assert "\n" not in message and str(root) in message and "train/<class>/" in message and "<class>/*.png" in message


# --- subsets -----------------------------------------------------------------------------------------------
def test_subsets_are_seeded_samples_of_each_split(tmp_path):
    write_image_folder(tmp_path, per_class=5)
    full = load(tmp_path, split_seed=2)
    bundle = load(tmp_path, split_seed=2, train_subset=6, eval_subset=3)
    assert bundle.sizes() == {"train": 6, "val": 3, "test": 3}
    for split, count in (("train", 6), ("val", 3), ("test", 3)):
        order = torch.randperm(10, generator=torch.Generator().manual_seed(2))[:count]  # cifar10's semantics
        expected = getattr(full, split).subset(order)
        assert torch.equal(getattr(bundle, split).raw, expected.raw)
        assert torch.equal(getattr(bundle, split).labels, expected.labels)
    assert load(tmp_path, train_subset=100).sizes()["train"] == 10


# --- the cache against the PIL path ------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [3, 1])
def test_cached_images_are_the_values_of_the_pil_path(tmp_path, channels):
    write_image_folder(tmp_path, per_class=3)
    bundle = load(tmp_path, image_size=16, channels=channels)
    for split in ("train", "val", "test"):
        images, labels = pil_path(tmp_path / split, 16, channels)
        assert torch.allclose(getattr(bundle, split).images[:], images, atol=1e-6)
        assert torch.equal(getattr(bundle, split).labels, labels)
    x, _ = next(iter(bundle.loader("val", 4)))
    assert torch.allclose(x, pil_path(tmp_path / "val", 16, channels)[0][:4], atol=1e-6)


@pytest.mark.parametrize("options", [{"max_cache_mb": 0.001}, {"cache": "none"}], ids=["too large", "cache none"])
def test_without_the_cache_images_are_decoded_on_access_with_the_same_values(tmp_path, caplog, options):
    write_image_folder(tmp_path, splits=("train", "val"), per_class=4)
    cached = load(tmp_path, test_fraction=0.25)
    with caplog.at_level("WARNING", logger="nasrun"):
        streamed = load(tmp_path, test_fraction=0.25, num_workers=0, **options)
    assert ("max_cache_mb" in caplog.text) == ("max_cache_mb" in options)
    assert streamed.sizes() == cached.sizes() == {"train": 6, "val": 8, "test": 2}
    for split in ("train", "val", "test"):
        assert isinstance(getattr(streamed, split), FolderSubset)
        assert torch.allclose(stacked(getattr(streamed, split)), getattr(cached, split).images[:], atol=1e-6)
    x, y = next(iter(streamed.loader("train", 4, shuffle=True, seed=1)))
    assert x.shape == (4, 3, 8, 8) and y.shape == (4,)


def test_a_cached_split_works_where_a_tensor_split_does(tmp_path):
    from nasrun.evaluation.retrain import merge_splits

    write_image_folder(tmp_path, per_class=2)
    bundle = load(tmp_path)
    merged = merge_splits(bundle.train, bundle.val)  # torch.cat of the two splits' images
    assert torch.equal(merged.images, torch.cat([bundle.train.images[:], bundle.val.images[:]]))
    copy = pickle.loads(pickle.dumps(bundle))  # executor=processes pickles the data
    assert torch.equal(copy.train.images[:], bundle.train.images[:])
    assert torch.isclose(bundle.train.images.mean(), bundle.train.images[:].mean())
    assert bundle.train.images.shape == (4, 3, 8, 8) and len(list(bundle.train.images)) == 4


# --- the disk cache ----------------------------------------------------------------------------------------
def cache_files(root):
    return sorted((root / ".nasrun-cache").glob("*"))


def test_the_disk_cache_is_reused_without_decoding(tmp_path, pil_opens):
    write_image_folder(tmp_path, per_class=3)
    first = load(tmp_path, cache="disk")
    assert len(pil_opens) == 18 and [p.suffix for p in cache_files(tmp_path)] == [".pt"] * 3  # no temp files left
    pil_opens.clear()
    again = load(tmp_path, cache="disk")
    assert pil_opens == []
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(again, split).raw, getattr(first, split).raw)
    load(tmp_path, cache="disk", channels=1)  # other settings: decoded again, into files of their own
    assert len(pil_opens) == 18 and len(cache_files(tmp_path)) == 6


def test_the_disk_cache_is_rebuilt_when_an_image_changes(tmp_path, pil_opens):
    write_image_folder(tmp_path, per_class=3)
    load(tmp_path, cache="disk")
    changed = tmp_path / "train" / "dog" / "1.png"
    PIL.Image.fromarray(np.full((20, 24, 3), 7, dtype=np.uint8)).save(changed)
    os.utime(changed, ns=(os.stat(changed).st_atime_ns, os.stat(changed).st_mtime_ns + 10 ** 9))
    pil_opens.clear()
    bundle = load(tmp_path, cache="disk")
    assert len(pil_opens) == 6  # train/ decoded again; val/ and test/ read from their cache files
    assert torch.allclose(bundle.train.images[:], pil_path(tmp_path / "train", 8)[0], atol=1e-6)
    assert len(cache_files(tmp_path)) == 3


@pytest.mark.parametrize("corrupt", [
    lambda path: path.write_bytes(b"not a torch file"),
    lambda path: path.write_bytes(path.read_bytes()[:100]),
    lambda path: torch.save({"key": "x", "images": torch.zeros(1), "labels": torch.zeros(1)}, path),
], ids=["garbage", "truncated", "wrong tensors"])
def test_a_corrupt_cache_file_is_rebuilt(tmp_path, pil_opens, corrupt):
    write_image_folder(tmp_path, splits=("train",), per_class=3)
    load(tmp_path, cache="disk")
    (path,) = cache_files(tmp_path)
    corrupt(path)
    pil_opens.clear()
    bundle = load(tmp_path, cache="disk", val_fraction=0.2, test_fraction=0.2)
    assert len(pil_opens) == 6 and bundle.sizes() == {"train": 4, "val": 1, "test": 1}
    entry = torch.load(path, weights_only=True)
    assert entry["images"].shape == (6, 3, 8, 8) and entry["images"].dtype == torch.uint8


def test_auto_writes_a_disk_cache_only_for_large_folders(tmp_path, monkeypatch):
    write_flat_image_folder(tmp_path, per_class=5)
    load(tmp_path)
    assert cache_files(tmp_path) == []
    monkeypatch.setattr(imagefolder, "AUTO_DISK_BYTES", 100)
    bundle = load(tmp_path)
    assert [p.name.split("-")[0] for p in cache_files(tmp_path)] == ["all"]
    assert bundle.num_classes == 2  # the hidden .nasrun-cache/ beside the class folders is not a class
    assert load(tmp_path).sizes() == bundle.sizes()


def test_an_unwritable_cache_folder_keeps_the_images_in_memory(tmp_path, caplog):
    write_image_folder(tmp_path, splits=("train",), per_class=3)
    (tmp_path / "a-file").write_text("")
    with caplog.at_level("WARNING", logger="nasrun"):
        bundle = load(tmp_path, cache="disk", cache_dir=str(tmp_path / "a-file" / "cache"))
    assert "cannot write the cache" in caplog.text and len(bundle.train) + len(bundle.val) + len(bundle.test) == 6


def test_options_out_of_range_are_config_errors(tmp_path):
    for options in ({"cache": "ram"}, {"channels": 2}, {"max_cache_mb": -1}, {"num_workers": -1}):
        with pytest.raises(ConfigError):
            ImageFolderDataset(str(tmp_path), **options)


def test_parallel_decoding_gives_the_same_tensors(tmp_path, monkeypatch):
    write_image_folder(tmp_path, splits=("train",), per_class=4)
    serial = load(tmp_path, num_workers=0)
    monkeypatch.setattr(image_cache, "PARALLEL_DECODE_MIN", 1)
    parallel = load(tmp_path, num_workers=2)
    assert torch.equal(parallel.train.raw, serial.train.raw) and torch.equal(parallel.test.labels, serial.test.labels)


# --- real images, end to end -------------------------------------------------------------------------------
@pytest.mark.skipif(not SAMPLE.is_file(), reason=f"{SAMPLE} (the real CIFAR-10 sample) is not on this machine")
def test_a_search_on_a_folder_of_real_cifar10_images(tmp_path):
    sample = np.load(SAMPLE)
    root = write_array_folder(tmp_path / "cifar-images", sample["train_images"][:300], sample["train_labels"][:300],
                              [str(c) for c in sample["classes"]])
    result = run_cli(["dataset=imagefolder", f"dataset.root={root}", *TINY], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    summary = json.loads(RunDir(run).summary.read_text())
    assert summary["dataset"] == "imagefolder" and summary["trials"] == 2
    assert summary["failed_trials"] == 0
    assert "'train': 240, 'val': 30, 'test': 30" in RunDir(run).log.read_text()
