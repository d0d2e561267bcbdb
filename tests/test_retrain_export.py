"""Retraining with a final recipe over seeds, and exports that give the model's outputs without nasrun."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasrun.rundir import RunDir
from nasrun.evaluation.export import export_model, load_exported, sample_input
from nasrun.nets import build_network
from nasrun.nets.nb201 import format_arch

from conftest import run_cli

MACRO_ARCH = {"stem": 8, "layers": [{"op": "conv3x3", "width": 8, "stride": 2, "skips": []},
                                    {"op": "sepconv3x3", "width": 16, "stride": 1, "skips": [0]}]}
NB201_ARCH = format_arch(["nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1", "skip_connect"])


NORMALIZE = {"mean": [0.3], "std": [0.4]}


def spec_for(space: str, arch, options=None) -> dict:
    """A best_architecture.json-like spec whose inputs were normalised with NORMALIZE during training."""
    return {"space": space, "arch": arch, "network": {"input_shape": [1, 8, 8], "num_classes": 10, "options": options or {}},
            "input": {"shape": [1, 8, 8], "range": [0.0, 1.0], "normalize": NORMALIZE}, "classes": list("0123456789")}


def normalized(images: torch.Tensor) -> torch.Tensor:
    return (images - NORMALIZE["mean"][0]) / NORMALIZE["std"][0]


def trained_like(spec: dict) -> torch.nn.Module:
    """A network with non-trivial weights and BatchNorm statistics."""
    torch.manual_seed(1)
    net = spec["network"]
    model = build_network(spec["space"], spec["arch"], net["input_shape"], net["num_classes"], **net["options"])
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, *net["input_shape"]))
    return model.eval()


@pytest.mark.parametrize("space,arch,options", [("macro", MACRO_ARCH, {}), ("nb201", NB201_ARCH, {"C": 4, "N": 1})])
def test_exports_give_the_model_outputs(space, arch, options, tmp_path):
    spec = spec_for(space, arch, options)
    model = trained_like(spec)
    written = export_model(model, spec, tmp_path)
    assert set(written) == {"json", "weights", "pt2", "torchscript", "onnx"}
    assert written["weights"] == "weights.safetensors"
    x = sample_input(spec, batch=5)
    assert 0 <= x.min() and x.max() <= 1  # images as a user has them; the export normalises them itself
    with torch.no_grad():
        expected = model(normalized(x))
        torch.testing.assert_close(load_exported(tmp_path)(x), expected, rtol=0, atol=0)
        torch.testing.assert_close(torch.jit.load(str(tmp_path / "model.torchscript.pt"))(x), expected)
        torch.testing.assert_close(torch.export.load(str(tmp_path / "model.pt2")).module()(x), expected)
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    graph = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(graph)
    (logits,) = ReferenceEvaluator(graph).run(None, {"images": x.numpy()})   # batch 5: dynamic batch axis
    torch.testing.assert_close(torch.from_numpy(logits), expected, rtol=1e-4, atol=1e-4)


BLOCK_SEARCH_CODE = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(BLOCKED):
            raise ImportError(f"{name} is blocked")
sys.meta_path.insert(0, Block())
"""


@pytest.mark.slow  # two fresh interpreters (torch imported twice): `make test-slow`
def test_exports_load_without_search_code(tmp_path):
    spec = spec_for("macro", MACRO_ARCH)
    model = trained_like(spec)
    export_model(model, spec, tmp_path, formats=("json", "weights", "torchscript"))
    x = sample_input(spec, batch=3)
    torch.save(model(normalized(x)).detach(), tmp_path / "expected.pt")
    nets_only = ("nasrun.spaces", "nasrun.strategies", "nasrun.estimators", "nasrun.run.runner", "nasrun.experiment")
    scripts = {
        nets_only: "from nasrun.evaluation.export import load_exported, sample_input\n"
                   "import json; spec = json.load(open('architecture.json'))\n"
                   "out = load_exported('.')(sample_input(spec, batch=3))",
        ("nasrun",): "out = torch.jit.load('model.torchscript.pt')(torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)))",
    }
    for blocked, body in scripts.items():
        code = (f"BLOCKED = {blocked!r}\n{BLOCK_SEARCH_CODE}\nimport torch\n{body}\n"
                "torch.testing.assert_close(out, torch.load('expected.pt')); print('same outputs')")
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "same outputs" in result.stdout, result.stderr[-2000:]


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    result = run_cli(["budget.trials=2", "estimator.epochs=1", "search_space.min_layers=2", "search_space.max_layers=2",
                      "search_space.widths=[8]", "progress=false", f"hydra.run.dir={root / 'run'}"], root)
    assert result.returncode == 0, result.stderr[-2000:]
    return root / "run"


def test_retrain_from_run_dir_reports_mean_and_std_and_exports(search_run, tmp_path):
    out = tmp_path / "train"
    result = run_cli([str(search_run), "repeats=2", "epochs=2", "augment.cutout=2", "augment.flip=true",
                      f"out={out}", "progress=false"], tmp_path, command="nasrun-train")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mean ± std" in result.stderr
    report = json.loads(RunDir(out).retrain.read_text())
    tests = [r["test_accuracy"] for r in report["repeats"]]
    assert [r["seed"] for r in report["repeats"]] == [0, 1]
    assert report["test_accuracy"]["mean"] == pytest.approx(statistics.fmean(tests))
    assert report["test_accuracy"]["std"] == pytest.approx(statistics.stdev(tests))
    assert all(0.2 < t <= 1 for t in tests)  # 10 classes: well above chance after 2 epochs
    assert report["architecture"]["arch"] == json.loads(RunDir(search_run).best.read_text())["arch"]
    assert report["recipe"]["augment"] == {"crop_padding": 0, "flip": True, "cutout": 2}
    assert report["environment"]["versions"]["torch"] == torch.__version__
    assert {Path(p).name for p in report["export"].values()} == {"architecture.json", "weights.safetensors",
                                                                  "model.pt2", "model.torchscript.pt", "model.onnx"}
    assert report["architecture"]["classes"] == [str(digit) for digit in range(10)]
    final = load_exported(out / "export")
    weights = torch.load(out / "weights" / f"seed_{report['final_model_seed']}.pt", weights_only=True)
    assert all(torch.equal(final.network.state_dict()[k], v) for k, v in weights.items())


def test_retrain_is_reproducible_and_uses_drop_path_and_auxiliary_head(tmp_path, monkeypatch):
    from torch import nn

    from nasrun import nets
    from nasrun.evaluation.retrain import retrain

    seen = {"drop_path": [], "aux": 0}

    class AuxNet(nn.Module):
        """A toy network with the DARTS evaluation network's hooks: drop_path_prob and (logits, aux)."""

        def __init__(self, arch, input_shape, num_classes, auxiliary=False):
            super().__init__()
            self.body, self.auxiliary, self.drop_path_prob = nn.Linear(64, num_classes), auxiliary, 0.0
            self.aux_head = nn.Linear(64, num_classes) if auxiliary else None

        def forward(self, x):
            seen["drop_path"].append(self.drop_path_prob)
            logits = self.body(x.flatten(1))
            if self.training and self.aux_head is not None:
                seen["aux"] += 1
                return logits, self.aux_head(x.flatten(1))
            return logits

    monkeypatch.setitem(nets.BUILDERS, "toy", AuxNet)
    arch_json = tmp_path / "arch.json"
    arch_json.write_text(json.dumps({"space": "toy", "arch": {}, "network": {"input_shape": [1, 8, 8], "num_classes": 10}}))
    args = ["repeats=1", "epochs=3", "drop_path_prob=0.3", "progress=false", "export=false", "hardware=cpu"]
    _, first = retrain(arch_json, [*args, f"out={tmp_path / 'a'}"])
    _, second = retrain(arch_json, [*args, f"out={tmp_path / 'b'}"])
    assert first["repeats"][0]["test_accuracy"] == second["repeats"][0]["test_accuracy"]
    assert first["architecture"]["network"]["options"] == {"auxiliary": True}
    assert seen["aux"] > 0
    assert sorted(set(seen["drop_path"])) == pytest.approx([0.0, 0.1, 0.2])


def test_bad_inputs_are_one_line_errors(search_run, tmp_path):
    from nasrun.errors import NasrunError
    from nasrun.evaluation.retrain import retrain

    for args, message in (([str(search_run), "dataset=nope"], "no such option"),
                          ([str(search_run), "repeats=0"], "repeats must be a positive integer")):
        with pytest.raises(NasrunError, match=message):
            retrain(Path(args[0]), args[1:])
    result = run_cli([str(tmp_path / "missing.json")], tmp_path, command="nasrun-train")
    assert result.returncode == 2 and "not a readable architecture JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_recipe_is_composed_over_the_runs_dataset_and_hardware(search_run, tmp_path):
    import shutil

    from nasrun.errors import ConfigError
    from nasrun.evaluation.retrain import train_config
    from nasrun.rundir import RunDir

    run = Path(shutil.copytree(search_run, tmp_path / "run"))
    saved = RunDir(run).config
    saved.write_text(saved.read_text().replace("val_fraction: 0.2", "val_fraction: 0.25").replace("device: auto", "device: cpu"))
    cfg, _ = train_config(run, ["epochs=3", "+network.C=4", "dataset.test_fraction=0.1"])
    assert cfg.epochs == 3 and cfg.network == {"C": 4} and cfg.hardware.device == "cpu"
    assert (cfg.dataset.name, cfg.dataset.val_fraction, cfg.dataset.test_fraction) == ("digits", 0.25, 0.1)
    assert train_config(run, ["dataset=mnist", "hardware=auto"])[0].hardware.device == "auto"
    with pytest.raises(ConfigError, match=r"unknown key 'bogus' .*'\+bogus=1' adds it"):
        train_config(run, ["bogus=1"])


def test_export_of_a_search_run(search_run, tmp_path):
    result = run_cli([str(search_run), "--out", str(tmp_path / "export")], tmp_path, command="nasrun-export")
    assert result.returncode == 0, result.stderr[-2000:]
    model = load_exported(tmp_path / "export")
    weights = torch.load(RunDir(search_run).best_weights, weights_only=True)
    assert all(torch.equal(model.network.state_dict()[k], v) for k, v in weights.items())
