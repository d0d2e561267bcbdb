"""What a run directory, an architecture file, a config or an image folder holds is data: a network too big
to build, options no builder takes, numbers out of range, a tampered state, a broken image or a dataset
too small to mean anything is refused with exit 2 and one line naming the file or key, no traceback, and
nothing already written changes. The network-size cases run under an address-space limit: they must be
refused from an estimate (nasrun/nets/size.py), never by allocating until memory runs out."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

import torch

from conftest import TINY, run_cli
from fake_data import write_flat_image_folder
from nasrun.rundir import RunDir
from nasrun.datasets import DataBundle, TensorSplit, image_cache
from nasrun.datasets.imagefolder import ImageFolderDataset
from nasrun.errors import DataError
from nasrun.nets import build_network
from nasrun.nets.size import NetworkLimits, NetworkTooLarge, check_network_size
from nasrun.reports.drawing import MAX_DRAWN_NODES, draw_architecture
from nasrun.spaces.darts_genotypes import published_genotype
from test_bad_inputs import digests

TABULAR = ["search_space=nb201", "estimator=nb201", "budget.trials=3", "progress=false", "report=false"]
ADDRESS_SPACE_MB = 2560  # beyond what torch and the imports have mapped; every refused network needs far more


# --- fixtures: one tiny run per module, copied per test -----------------------------------------------------
def searched_once(tmp_path_factory, args: list) -> Path:
    root = tmp_path_factory.mktemp("untrusted")
    result = run_cli([*args, f"hydra.run.dir={root / 'run'}"], root)
    assert result.returncode == 0, result.stderr
    return root / "run"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A tiny macro search on digits: best_architecture.json and checkpoints/best_model.pt."""
    return searched_once(tmp_path_factory, TINY)


@pytest.fixture(scope="module")
def reinforce_run(tmp_path_factory) -> Path:
    """A tabular REINFORCE search (its state holds a torch blob), made to look interrupted."""
    run = searched_once(tmp_path_factory, [*TABULAR, "strategy=reinforce"])
    RunDir(run).summary.unlink()
    return run


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


@pytest.fixture
def interrupted_run(reinforce_run, tmp_path) -> Path:
    return Path(shutil.copytree(reinforce_run, tmp_path / "run"))


def assert_refused(result, *fragments: str) -> None:
    """Exit 2, no traceback, and exactly one error line, naming every fragment."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def refused_on(run: Path, command: str, args: list, *fragments: str, limited: bool = False) -> None:
    """`command args` is refused naming `fragments`, and every file of `run` is byte-identical afterwards
    (nothing new in it either). `limited`: in a fresh process whose address space is capped."""
    before = digests(run)
    result = run_limited(command, args, run.parent) if limited else run_cli(args, run.parent, command=command)
    assert_refused(result, *fragments)
    assert digests(run) == before


def run_limited(command: str, args: list, cwd: Path) -> subprocess.CompletedProcess:
    """`command args` with its address space capped at ADDRESS_SPACE_MB beyond what the process has mapped
    when the command starts: allocating a refused network there fails (MemoryError, a traceback) instead of
    passing; the CPU-time limit catches a hang."""
    return run_cli(args, cwd, command=command, timeout=180,
                   limits={"memory_mb": ADDRESS_SPACE_MB, "cpu_seconds": 120})


def edit_json(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, separators=(",", ":")))


def set_best(run: Path, space: str | None = None, arch=None, **network) -> Path:
    """Rewrite the run's best_architecture.json: another space / arch, or keys of its `network` block."""
    def change(spec):
        spec["space"] = space or spec["space"]
        spec["arch"] = spec["arch"] if arch is None else arch
        spec["network"].update(network)
    edit_json(RunDir(run).best, change)
    return RunDir(run).best


# --- 1. networks too big to build ----------------------------------------------------------------------------
LAYER = {"op": "identity", "width": 8, "stride": 1, "skips": []}
NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TOO_BIG = {
    "1e8 channels": (dict(arch={"stem": 8, "layers": [{**LAYER, "op": "conv3x3", "width": 10 ** 8}]}), "--max-params"),
    "1e6 layers": (dict(arch={"stem": 8, "layers": [LAYER] * 10 ** 6}), "--max-modules"),
    "1e5 x 1e5 input": (dict(input_shape=[1, 10 ** 5, 10 ** 5]), "--max-memory-gb"),
    "darts C=1e5 layers=1000": (dict(space="darts", arch=published_genotype("DARTS_V2"),
                                     options={"C": 10 ** 5, "layers": 1000}), "--max-params"),
}


@pytest.mark.parametrize("case", [pytest.param(case, marks=[pytest.mark.slow] if case == "1e6 layers" else [])
                                  for case in TOO_BIG])   # 1e6 layers: a ~60 MB JSON file read under limits
def test_export_refuses_a_network_too_big_before_writing_anything(run, case):
    changes, option = TOO_BIG[case]
    set_best(run, **changes)
    refused_on(run, "nasrun-export", [run], "best_architecture.json", "limit", option, limited=True)
    assert not (run / "export").exists()


def test_train_refuses_a_network_too_big_before_making_its_folder(run, tmp_path):
    set_best(run, space="nb201", arch=NB201_ARCH, options={"C": 10 ** 5, "N": 1000})
    refused_on(run, "nasrun-train", [run, f"out={tmp_path / 'train'}", "progress=false"], "best_architecture.json",
               "parameters", "--max-params", limited=True)
    assert not (tmp_path / "train").exists()


def test_benchmark_refuses_a_network_its_saved_config_makes_too_big(run):
    config = RunDir(run).config
    config.write_text(config.read_text().replace("stem_width: 8", f"stem_width: {10 ** 8}"))
    refused_on(run, "nasrun-benchmark", [run], "config.yaml", "search_space", "--max-params", limited=True)


def test_a_search_refuses_a_space_of_networks_too_big(tmp_path):
    result = run_limited("nasrun", [*TINY, f"search_space.widths=[{10 ** 8}]", f"hydra.run.dir={tmp_path / 'run'}"],
                         tmp_path)
    assert_refused(result, "search_space", "limits.max_params")
    assert not RunDir(tmp_path / "run").trials.exists()


def test_a_differentiable_search_refuses_a_supernet_too_big(tmp_path):
    result = run_cli([*TINY, "strategy=darts", f"strategy.C={10 ** 5}", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert_refused(result, "strategy=darts", "supernet", "limits.max_params")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_limits_are_options(run, tmp_path):
    """Lowered below the tiny network, a limit refuses it; the same network is built within the defaults."""
    refused_on(run, "nasrun-export", [run, "--max-params", "100"], "best_architecture.json", "--max-params")
    result = run_cli([*TINY, "limits.max_params=100", f"hydra.run.dir={tmp_path / 'small'}"], tmp_path)
    assert_refused(result, "search_space", "limit 100", "limits.max_params")
    set_best(run, input_shape=[1, 10 ** 4, 10 ** 4])  # activations of about 8 GiB, measured on meta tensors
    refused_on(run, "nasrun-export", [run, "--max-memory-gb", "1", "--formats", "json"], "about", "--max-memory-gb")
    result = run_cli([run, "--formats", "json"], tmp_path, command="nasrun-export")
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "export" / "architecture.json").read_text())["network"]["input_shape"] == [1, 10 ** 4, 10 ** 4]


def test_a_limit_that_is_not_a_positive_number_is_refused(run, tmp_path):
    refused_on(run, "nasrun-export", [run, "--max-params", "-5"], "--max-params")
    result = run_cli([*TINY, "limits.max_memory_gb=0", f"hydra.run.dir={tmp_path / 'fresh'}"], tmp_path)
    assert_refused(result, "limits.max_memory_gb")


def test_the_published_networks_are_within_the_default_limits():
    """DARTS' ImageNet network (C=48, 14 cells, 224x224 inputs, 0.12 GiB) passes the defaults; under a
    0.07 GiB limit it is refused on its activations measured on meta tensors (not on the quick bounds)."""
    build = lambda: build_network("darts", published_genotype("DARTS_V2"), (3, 224, 224), 1000, C=48,  # noqa: E731
                                  layers=14, stem="imagenet")
    check_network_size(build, (3, 224, 224), "darts imagenet")
    with pytest.raises(NetworkTooLarge, match="about .* GiB of activations"):
        check_network_size(build, (3, 224, 224), "darts imagenet", NetworkLimits(max_memory_gb=0.07))


def test_too_big_an_architecture_is_not_drawn(tmp_path):
    arch = {"stem": 8, "layers": [LAYER] * MAX_DRAWN_NODES}
    with pytest.raises(ValueError, match="nodes"):
        draw_architecture("macro", arch, tmp_path / "arch.png")
    assert not (tmp_path / "arch.png").exists()


# --- 3. options, numbers and states a builder or strategy cannot take ----------------------------------------
@pytest.mark.parametrize("options, fragment", [
    ({"bogus": 1}, "bogus"),
    ({"_target_": "os.system"}, "_target_"),
])
def test_network_options_no_builder_takes_are_refused(run, tmp_path, options, fragment):
    set_best(run, options=options)
    refused_on(run, "nasrun-export", [run], "best_architecture.json", "network.options", fragment)
    refused_on(run, "nasrun-train", [run, f"out={tmp_path / 'train'}"], "best_architecture.json", fragment)
    assert not (run / "export").exists() and not (tmp_path / "train").exists()


@pytest.mark.parametrize("network, fragment", [
    ({"num_classes": -3}, "network.num_classes"),
    ({"input_shape": [1, 8]}, "input_shape"),
    ({"space": "darts", "arch": published_genotype("DARTS_V2"), "options": {"C": "wide"}}, "network.options.C"),
    ({"space": "nb201", "arch": NB201_ARCH, "options": {"N": -1}}, "network.options.N"),
])
def test_a_network_block_that_cannot_be_built_is_refused(run, network, fragment):
    set_best(run, **network)
    refused_on(run, "nasrun-export", [run], "best_architecture.json", fragment)


@pytest.mark.parametrize("strategy, override, fragment", [
    *((strategy, "lr=-1", "strategy.lr") for strategy in ("darts", "pcdarts", "gdas")),
    ("darts", "arch_lr=0", "strategy.arch_lr"), ("darts", "momentum=1.5", "strategy.momentum"),
    ("pcdarts", "weight_decay=-0.1", "strategy.weight_decay"), ("gdas", "grad_clip=0", "strategy.grad_clip"),
    ("darts", "arch_betas=[0.5]", "strategy.arch_betas"), ("pcdarts", "warmup_epochs=-2", "strategy.warmup_epochs"),
])
def test_differentiable_strategies_refuse_numbers_out_of_range(tmp_path, strategy, override, fragment):
    result = run_cli([*TINY, f"strategy={strategy}", f"strategy.{override}", f"hydra.run.dir={tmp_path / 'run'}"],
                     tmp_path)
    assert_refused(result, fragment)
    assert not RunDir(tmp_path / "run").trials.exists()


def test_resume_refuses_a_tampered_strategy_state(interrupted_run):
    run = interrupted_run

    def tamper(state):
        blob = base64.b64decode(state["strategy"]["torch"])
        state["strategy"]["torch"] = base64.b64encode(blob[:40] + b"\xff" * 64 + blob[104:]).decode()
    edit_json(RunDir(run).runner_state, tamper)
    refused_on(run, "nasrun-resume", [run], "runner.json", "strategy")


@pytest.mark.parametrize("command", ["nasrun-resume", "nasrun-report"])
@pytest.mark.parametrize("value", ['"abc"', "1.5", "null", "-1"])
def test_a_trial_id_that_is_not_a_whole_number_is_refused(interrupted_run, command, value):
    run = interrupted_run
    lines = RunDir(run).trials.read_text().splitlines()
    lines[1] = lines[1].replace('"id": 1,', f'"id": {value},', 1)
    RunDir(run).trials.write_text("\n".join(lines) + "\n")
    refused_on(run, command, [run], "trials.jsonl", "line 2", "'id'")


# --- 2. and 5. image folders: too few images or classes, files that are no image -----------------------------
def search_folder(root: Path, tmp_path: Path):
    return run_cli([*TINY, "dataset=imagefolder", f"dataset.root={root}", "dataset.image_size=8",
                    f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)


@pytest.mark.parametrize("break_it, fragment", [
    (lambda path: path.write_bytes(b""), "UnidentifiedImageError"),
    (lambda path: path.write_bytes(path.read_bytes()[:60]), "truncated"),
])
def test_an_image_that_cannot_be_read_is_named(tmp_path, break_it, fragment):
    root = write_flat_image_folder(tmp_path / "images", per_class=5)
    broken = root / "dog" / "3.png"
    break_it(broken)
    before = digests(root)
    assert_refused(search_folder(root, tmp_path), str(broken), fragment)
    assert digests(root) == before and not RunDir(tmp_path / "run").trials.exists()


@pytest.mark.parametrize("per_class, classes, fragments", [
    (1, ("cat", "dog"), ("no images in the train split", "at least one")),   # val and test take both images
    (6, ("cat",), ("1 class", "at least 2")),
])
def test_a_dataset_too_small_to_score_is_refused_before_training(tmp_path, per_class, classes, fragments):
    root = write_flat_image_folder(tmp_path / "images", per_class=per_class, classes=classes)
    assert_refused(search_folder(root, tmp_path), "imagefolder", *fragments)
    assert not RunDir(tmp_path / "run").trials.exists()


def test_an_unreadable_image_is_named_in_one_line_when_workers_decode(tmp_path, monkeypatch):
    root = write_flat_image_folder(tmp_path / "images", per_class=5)
    (root / "cat" / "2.png").write_bytes(b"")
    monkeypatch.setattr(image_cache, "PARALLEL_DECODE_MIN", 1)
    with pytest.raises(DataError) as caught:
        ImageFolderDataset(str(root), image_size=8, num_workers=2).load()
    message = str(caught.value)
    assert message.startswith(f"imagefolder: cannot read the image {root / 'cat' / '2.png'}") and "\n" not in message


def test_every_data_bundle_has_two_classes_and_no_empty_split():
    split = lambda n: TensorSplit(torch.zeros(n, 1, 4, 4), torch.arange(n) % 2)  # noqa: E731
    DataBundle("ok", split(4), split(1), split(1), 2, (1, 4, 4))
    with pytest.raises(DataError, match="1 class"):
        DataBundle("one class", split(4), split(1), split(1), 1, (1, 4, 4))
    with pytest.raises(DataError, match="no images in the val and test split"):
        DataBundle("empty", split(4), split(0), split(0), 2, (1, 4, 4))


def test_a_run_in_which_no_trial_succeeded_does_not_exit_0(tmp_path):
    result = run_cli([*TINY, "estimator.lr=1e30", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 1, result.stderr
    assert "no trial succeeded" in result.stderr and "Traceback" not in result.stderr


# --- 5. a missing optional package --------------------------------------------------------------------------
def test_export_to_onnx_without_the_package_is_refused_before_writing(run):
    before = digests(run)
    result = run_cli([run, "--formats", "onnx", "weights"], run.parent, command="nasrun-export", missing=("onnx",))
    assert_refused(result, "onnx")
    assert digests(run) == before and not (run / "export").exists()


def test_export_by_default_writes_every_format_whose_package_is_installed(run):
    result = run_cli([run], run.parent, command="nasrun-export", missing=("onnx",))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (run / "export").iterdir()) == ["architecture.json", "model.pt2",
                                                                  "model.torchscript.pt", "weights.safetensors"]
    assert "skipped onnx" in result.stdout + result.stderr
