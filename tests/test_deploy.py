"""A run's best network deployed: `nasrun-export`, then each format loaded in a fresh process that never
imports nasrun, fed images as a user has them (float in [0, 1], NCHW), scoring nasrun's test accuracy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, run_cli
from fake_data import write_array_folder
from nasrun.rundir import RunDir

# Runs in a fresh interpreter with nasrun unimportable: loads every model file of the export in EXPORT and
# prints the accuracy of each on images.npy / labels.npy.
LOAD_WITHOUT_NASRUN = r'''
import json, sys, warnings

class BlockNasrun:
    def find_spec(self, name, path=None, target=None):
        if name == "nasrun" or name.startswith("nasrun."):
            raise ImportError(f"{name} must not be imported to use an export")

sys.meta_path.insert(0, BlockNasrun())
import numpy as np
import torch

images, labels = np.load("images.npy"), np.load("labels.npy")
meta = json.load(open(f"{EXPORT}/architecture.json"))
assert list(images.shape[1:]) == meta["input"]["shape"] and 0 <= images.min() and images.max() <= 1


def accuracy(logits) -> float:
    return float((np.asarray(logits).argmax(1) == labels).mean())


with torch.no_grad():
    scores = {"pt2": accuracy(torch.export.load(f"{EXPORT}/model.pt2").module()(torch.from_numpy(images)))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in favour of torch.export
        scores["torchscript"] = accuracy(torch.jit.load(f"{EXPORT}/model.torchscript.pt")(torch.from_numpy(images)))
try:
    import onnxruntime
    session = onnxruntime.InferenceSession(f"{EXPORT}/model.onnx", providers=["CPUExecutionProvider"])
    scores["onnx"] = accuracy(session.run(None, {"images": images})[0])
except ImportError:
    import onnx
    from onnx.reference import ReferenceEvaluator
    scores["onnx"] = accuracy(ReferenceEvaluator(onnx.load(f"{EXPORT}/model.onnx")).run(None, {"images": images})[0])
assert "nasrun" not in sys.modules
print(json.dumps(scores))
'''


def search_and_export(root: Path, overrides: list[str]) -> tuple[Path, Path]:
    run, export = root / "run", root / "export"
    result = run_cli([*overrides, *TINY, f"hydra.run.dir={run}"], root)
    assert result.returncode == 0, result.stderr[-2000:]
    result = run_cli([str(run), "--out", str(export)], root, command="nasrun-export")
    assert result.returncode == 0, result.stderr[-2000:]
    return run, export


def scores_without_nasrun(export: Path, images: np.ndarray, labels: np.ndarray, workdir: Path) -> dict:
    np.save(workdir / "images.npy", images.astype(np.float32))
    np.save(workdir / "labels.npy", labels)
    code = f"EXPORT = {str(export)!r}\n{LOAD_WITHOUT_NASRUN}"
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def assert_nasrun_accuracy(scores: dict, run: Path, test_size: int) -> None:
    """Every format scores the test accuracy nasrun recorded (to within one image: other kernels)."""
    reported = json.loads(RunDir(run).best.read_text())["metrics"]["test_accuracy"]
    assert set(scores) == {"pt2", "torchscript", "onnx"}
    for kind, score in scores.items():
        assert abs(score - reported) <= 1 / test_size + 1e-9, (kind, score, reported)


@pytest.fixture(scope="module")
def digits_export(tmp_path_factory):   # tested on the whole test split, as the user's raw images below
    return search_and_export(tmp_path_factory.mktemp("digits"), ["dataset.eval_subset=null"])


def raw_digits_test_split() -> tuple[np.ndarray, np.ndarray]:
    """The images nasrun tests a digits run on, as a user has them: scikit-learn's 0-16 pixels / 16."""
    from sklearn.datasets import load_digits

    from nasrun.datasets.base import split_indices  # only to pick the same test images as the run

    digits = load_digits()
    _, test, _ = split_indices(len(digits.target), [0.2, 0.2], seed=0)
    return digits.images[test.numpy()][:, None] / 16.0, digits.target[test.numpy()]


def test_a_digits_export_scores_nasrun_accuracy_on_raw_images_without_nasrun(digits_export, tmp_path):
    run, export = digits_export
    meta = json.loads((export / "architecture.json").read_text())
    assert meta["classes"] == [str(digit) for digit in range(10)]
    assert meta["input"]["shape"] == [1, 8, 8] and meta["input"]["range"] == [0.0, 1.0]
    assert meta["input"]["normalized_inside_model"] and meta["input"]["preprocessing"][-1] == "pixel / 16"
    assert meta["input"] == {**json.loads(RunDir(run).best.read_text())["input"],
                             "normalized_inside_model": True}
    images, labels = raw_digits_test_split()
    assert_nasrun_accuracy(scores_without_nasrun(export, images, labels, tmp_path), run, len(labels))


def write_band_images(root: Path, classes=("cat", "dog", "owl"), per_class: int = 8) -> Path:
    """train/ val/ test/ folders of 20x24 noisy RGB images whose class sets where a bright band is."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        labels = np.arange(per_class * len(classes)) % len(classes)
        images = rng.integers(0, 80, size=(len(labels), 20, 24, 3), dtype=np.uint8)
        for image, label in zip(images, labels):
            image[6 * label: 6 * label + 4] = 240
        write_array_folder(root / split, images, labels, classes)
    return root


@pytest.mark.slow  # a search, an export and a fresh interpreter: `make test-slow` (the digits export's check stays here)
def test_an_image_folder_export_carries_class_names_and_preprocessing(tmp_path):
    from PIL import Image
    from torchvision import transforms as T

    root = write_band_images(tmp_path / "images")
    run, export = search_and_export(tmp_path, ["dataset=imagefolder", f"dataset.root={root}",
                                               "dataset.image_size=8", "dataset.mean=0.4", "dataset.std=0.3"])
    best = json.loads(RunDir(run).best.read_text())
    meta = json.loads((export / "architecture.json").read_text())
    for described in (best, meta):
        assert described["classes"] == ["cat", "dog", "owl"]
        assert described["input"]["shape"] == [3, 8, 8]
        assert described["input"]["normalize"] == {"mean": pytest.approx([0.4] * 3), "std": pytest.approx([0.3] * 3)}
        assert any("center-crop 8x8" in step for step in described["input"]["preprocessing"])
    to_model_input = T.Compose([T.Resize(8), T.CenterCrop(8), T.ToTensor()])  # what the metadata says
    files = sorted((root / "test").glob("*/*.png"))
    images = np.stack([to_model_input(Image.open(f).convert("RGB")).numpy() for f in files])
    labels = np.array([meta["classes"].index(f.parent.name) for f in files])
    assert_nasrun_accuracy(scores_without_nasrun(export, images, labels, tmp_path), run, len(labels))


def test_only_the_requested_formats_are_written(digits_export, tmp_path):
    run, _ = digits_export
    result = run_cli([str(run), "--out", str(tmp_path / "out"), "--formats", "pt2", "json"], tmp_path,
                     command="nasrun-export")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["architecture.json", "model.pt2"]


def test_a_requested_format_that_cannot_be_written_is_an_error_before_writing(digits_export, tmp_path):
    run, _ = digits_export
    out = tmp_path / "out"
    result = run_cli([str(run), "--out", str(out), "--formats", "pt2", "onnx"], tmp_path, command="nasrun-export",
                     missing=("onnx",))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["nasrun-export: error: cannot export onnx: the onnx package is not "
                                                  "importable (pip install 'nasrun[export]')"]
    assert not out.exists()
    result = run_cli([str(run), "--out", str(out)], tmp_path, command="nasrun-export", missing=("onnx",))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped onnx: the onnx package is not importable (pip install 'nasrun[export]')" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["architecture.json", "model.pt2", "model.torchscript.pt",
                                                     "weights.safetensors"]


def test_an_architecture_without_a_recorded_normalisation_exports_the_bare_network(digits_export, tmp_path):
    run, _ = digits_export
    spec = json.loads(RunDir(run).best.read_text())
    del spec["input"]
    (tmp_path / "old.json").write_text(json.dumps(spec))
    result = run_cli([str(tmp_path / "old.json"), "--weights", str(RunDir(run).best_weights),
                      "--formats", "json", "torchscript"], tmp_path, command="nasrun-export")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "does not record its input normalisation" in result.stderr
    meta = json.loads((tmp_path / "export" / "architecture.json").read_text())
    assert meta["input"]["normalize"] is None and meta["classes"] == [str(digit) for digit in range(10)]
    model = torch.jit.load(str(tmp_path / "export" / "model.torchscript.pt"))
    assert not any(name in ("mean", "std") for name, _ in model.named_buffers())


def raw_test_split(name: str, root: Path) -> tuple[torch.Tensor, list[str]]:
    """The official test images as a user has them (uint8 pixels / 255, NCHW) and the class names, read
    from the files themselves."""
    import pickle

    import torchvision

    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        pixels = pickle.loads((folder / "test_batch").read_bytes())["data"].reshape(-1, 3, 32, 32)
        classes = pickle.loads((folder / "batches.meta").read_bytes())["label_names"]
    else:
        mnist = torchvision.datasets.MNIST(str(root), train=False)
        pixels, classes = mnist.data.numpy()[:, None], mnist.classes
    return torch.as_tensor(pixels, dtype=torch.float32) / 255, list(classes)


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_a_torchvision_set_records_the_normalisation_its_splits_hold(tmp_path, name):
    from fake_data import write_cifar10, write_mnist
    from nasrun.datasets.vision import VisionDataset

    root = write_mnist(write_cifar10(tmp_path))
    data = VisionDataset(name, str(root), verify=False).load()
    described = data.describe_input()
    images, classes = raw_test_split(name, root)
    assert described["classes"] == classes and described["input"]["shape"] == list(images.shape[1:])
    normalize = described["input"]["normalize"]
    mean, std = (torch.tensor(normalize[key]).view(1, -1, 1, 1) for key in ("mean", "std"))
    torch.testing.assert_close((images - mean) / std, data.test.images, rtol=0, atol=0)
