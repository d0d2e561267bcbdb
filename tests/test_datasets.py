import pytest
import torch

from conftest import DIGITS_SUBSETS
from fake_data import write_cifar10, write_cifar100, write_mnist
from nasrun.datasets.digits import Digits, read_digits
from nasrun.datasets.vision import VisionDataset
from nasrun.errors import DatasetMissing


def test_digits_splits_are_disjoint_seeded_and_complete():
    bundle = Digits().load()
    assert bundle.sizes() == {"train": 1079, "val": 359, "test": 359}
    assert bundle.input_shape == (1, 8, 8) and bundle.num_classes == 10
    again = Digits().load()
    assert torch.equal(bundle.val.images, again.val.images)
    other = Digits(split_seed=1).load()
    assert not torch.equal(bundle.val.images, other.val.images)
    rows = lambda split: {tuple(x.flatten().tolist()) for x in split.images}  # noqa: E731
    assert not rows(bundle.train) & rows(bundle.test)


def test_digits_are_scikit_learns_read_without_importing_it_or_the_compiler():
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    pixels, labels = read_digits()
    reference = load_digits()
    assert pixels.shape == (1797, 64) and (pixels == reference.data).all() and (labels == reference.target).all()
    # what every run does first: load digits, set deterministic mode (warn-only); 2 s of imports each avoided
    check = ("import sys, torch; from nasrun.datasets.digits import read_digits; from nasrun.hardware import "
             "set_deterministic; read_digits(); set_deterministic(True); print(torch.are_deterministic_algorithms_enabled(),"
             " torch.is_deterministic_algorithms_warn_only_enabled(), 'sklearn' in sys.modules, 'torch._inductor' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.stdout.split() == ["True", "True", "False", "False"], result.stderr


def test_loader_batches_are_seeded_and_cover_the_split():
    bundle = Digits().load()
    first = [y for _, y in bundle.loader("train", 100, shuffle=True, seed=3)]
    second = [y for _, y in bundle.loader("train", 100, shuffle=True, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert sorted(torch.cat(first).tolist()) == sorted(bundle.train.labels.tolist())


@pytest.mark.parametrize("name, writer, classes, shape", [
    ("cifar10", write_cifar10, 10, (3, 32, 32)),
    ("cifar100", write_cifar100, 100, (3, 32, 32)),
    ("mnist", write_mnist, 10, (1, 28, 28)),
    ("fashion_mnist", lambda root: write_mnist(root, "FashionMNIST"), 10, (1, 28, 28)),
])
def test_torchvision_sets_load_from_their_on_disk_format(tmp_path, name, writer, classes, shape):
    writer(tmp_path)
    bundle = VisionDataset(name, root=str(tmp_path), val_fraction=0.2, verify=False).load()
    assert bundle.num_classes == classes and bundle.input_shape == shape
    sizes = bundle.sizes()
    assert sizes["val"] > 0 and sizes["train"] > sizes["val"] and sizes["test"] > 0
    x, y = next(iter(bundle.loader("train", 8, shuffle=True)))
    assert x.shape == (8, *shape) and y.dtype == torch.long
    assert abs(bundle.train.images.mean().item()) < 1e-3  # standardised with the training split's statistics


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion_mnist"])
def test_missing_dataset_is_one_clear_line_naming_the_place(tmp_path, name):
    with pytest.raises(DatasetMissing) as err:
        VisionDataset(name, root=str(tmp_path)).load()
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message and "download" in message


def test_augmentation_applies_to_training_batches_only(tmp_path):
    write_cifar10(tmp_path)
    bundle = VisionDataset("cifar10", root=str(tmp_path), cutout=8, verify=False).load()
    x_train, _ = next(iter(bundle.loader("train", 16, shuffle=False, seed=0)))
    assert not torch.equal(x_train, bundle.train.images[:16])
    x_val, _ = next(iter(bundle.loader("val", 16)))
    assert torch.equal(x_val, bundle.val.images[:16])


def test_cifar_files_are_checked_against_the_official_checksums_unless_verify_is_off(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(DatasetMissing, match="checksum") as err:
        VisionDataset("cifar10", root=str(tmp_path)).load()
    assert "\n" not in str(err.value) and "dataset.verify=false" in str(err.value)
    assert VisionDataset("cifar10", root=str(tmp_path), verify=False).load().num_classes == 10


class _Payload:
    def __reduce__(self):
        return (print, ("this code ran",))


def test_unverified_cifar_file_holding_code_or_garbage_is_one_line_and_runs_nothing(tmp_path, capsys):
    import pickle

    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": _Payload(), "labels": [0]}, protocol=2))
    with pytest.raises(DatasetMissing, match="data_batch_1|corrupt") as err:
        VisionDataset("cifar10", root=str(tmp_path), verify=False).load()
    assert "data_batch_1" in str(err.value) and "print" in str(err.value) and "this code ran" not in capsys.readouterr().out
    batch.write_bytes(b"\x80\x02garbage")
    with pytest.raises(DatasetMissing, match="corrupt"):
        VisionDataset("cifar10", root=str(tmp_path), verify=False).load()


def test_random_crop_takes_each_image_window_from_its_padded_copy():
    import torch

    from nasrun.datasets.base import random_crop

    x = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6)
    out = random_crop(x, 2, torch.Generator().manual_seed(7))
    draws = torch.Generator().manual_seed(7)
    dy, dx = torch.randint(0, 5, (2,), generator=draws), torch.randint(0, 5, (2,), generator=draws)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    assert out.shape == x.shape
    for i in range(2):
        assert torch.equal(out[i], padded[i, :, dy[i]:dy[i] + 5, dx[i]:dx[i] + 6])


def test_scale_tiny_keeps_the_digits_subsets_the_tests_use(compose_cfg):
    dataset = compose_cfg(["scale=tiny"]).dataset
    assert {key: dataset[key] for key in DIGITS_SUBSETS} == DIGITS_SUBSETS
    bundle = Digits(**DIGITS_SUBSETS).load()
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (256, 128, 128)


def test_batches_are_prepared_on_one_thread_with_the_same_result_and_the_training_count_kept():
    """Batch preparation runs on one thread (nasrun.datasets.base.one_thread): crop and flip give the same
    batches on one or two threads, and the loop body (the training step) keeps the process's count."""
    from nasrun.datasets.base import Augment, TensorSplit, batches

    split = TensorSplit(torch.rand(300, 3, 32, 32), torch.arange(300) % 10)
    augment = Augment(crop_padding=4, flip=True)
    before = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            run = []
            for x, y in batches(split, 64, shuffle=True, seed=3, augment=augment):
                assert torch.get_num_threads() == threads
                run.append((x, y))
            runs.append(run)
    finally:
        torch.set_num_threads(before)
    assert len(runs[0]) == 5 and all(torch.equal(a, b) for (xa, ya), (xb, yb) in zip(*runs) for a, b in ((xa, xb), (ya, yb)))
    assert not torch.equal(runs[0][0][0], split.images[:64])  # augmented
