"""Export a trained network so it runs without nasrun's search code.

`<out>/` receives:
  architecture.json     space, arch and network options: `nasrun.nets.load_network` rebuilds the network
  weights.safetensors   the weights (safetensors when installed, else weights.pt: a weights-only state dict)
  model.torchscript.pt  TorchScript (traced): `torch.jit.load(path)`; needs torch only
  model.onnx            ONNX (input `images`, output `logits`, dynamic batch) when the `onnx` package is installed
Load the first two back with `load_exported(out)`.

`nasrun-export RUN_DIR_OR_ARCH_JSON [--weights W] [--out DIR]` exports a run's best network
(`best_architecture.json` + `checkpoints/best_model.pt`) as it was trained during the search.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from nasrun.rundir import RunDir, atomic_write_json, load_checkpoint
from nasrun.errors import CheckpointError, NasrunError
from nasrun.nets.size import NetworkLimits

FORMATS = ("json", "weights", "torchscript", "onnx")


def has_package(name: str) -> bool:
    """Whether `name` can be imported (a package set to None in sys.modules, or broken, cannot)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def sample_input(spec: dict, batch: int = 2) -> torch.Tensor:
    shape = spec["network"]["input_shape"]
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))


def export_model(model: nn.Module, spec: dict, out_dir: str | Path, formats=FORMATS) -> dict[str, str]:
    """Write the requested formats of `model` (described by `spec`, a best_architecture.json-like dict)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    written: dict[str, str] = {}
    if "weights" in formats:
        written["weights"] = save_weights(model, out_dir).name
    if "torchscript" in formats:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, sample_input(spec))
        traced.save(str(out_dir / "model.torchscript.pt"))
        written["torchscript"] = "model.torchscript.pt"
    if "onnx" in formats and has_package("onnx"):
        export_onnx(model, spec, out_dir / "model.onnx")
        written["onnx"] = "model.onnx"
    if "json" in formats:
        atomic_write_json(out_dir / "architecture.json", {
            "space": spec["space"], "arch": spec["arch"], "network": spec["network"], "files": written,
            "load": "from nasrun.evaluation.export import load_exported; net = load_exported('.')  # or torch.jit.load / onnx",
        })
        written["json"] = "architecture.json"
    return written


def save_weights(model: nn.Module, out_dir: Path) -> Path:
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    if has_package("safetensors"):
        from safetensors.torch import save_file

        path = out_dir / "weights.safetensors"
        save_file(state, str(path))
    else:
        path = out_dir / "weights.pt"
        torch.save(state, path)
    return path


def export_onnx(model: nn.Module, spec: dict, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (sample_input(spec),), str(path), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))


def load_exported(out_dir: str | Path) -> nn.Module:
    """The exported network with its weights, in eval mode (needs nasrun.nets, not the search code)."""
    from nasrun.nets import load_network

    out_dir = Path(out_dir)
    model = load_network(out_dir / "architecture.json")
    model.load_state_dict(load_weights(out_dir))
    return model.eval()


def load_weights(out_dir: Path) -> dict:
    if (out_dir / "weights.safetensors").exists():
        from safetensors.torch import load_file

        try:
            return load_file(str(out_dir / "weights.safetensors"))
        except Exception as err:  # noqa: BLE001 - a truncated file
            raise CheckpointError(f"{out_dir / 'weights.safetensors'} is corrupt or truncated ({err})") from None
    return load_checkpoint(out_dir / "weights.pt")


# --- exporting a search run's best network -----------------------------------------------------------------
def read_spec(path: Path) -> dict:
    """An architecture JSON whose network block can be built (nasrun.nets.check_spec)."""
    from nasrun.nets import check_spec

    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise NasrunError(f"{path} is not a readable architecture JSON ({type(err).__name__})") from None
    return check_spec(spec, path)


def available_formats() -> list[str]:
    """Every format whose package can be imported."""
    return [kind for kind in FORMATS if kind != "onnx" or has_package("onnx")]


def check_formats(formats) -> None:
    """Refuse, before anything is written, a format whose package is not importable."""
    if "onnx" in formats and not has_package("onnx"):
        raise NasrunError("--formats onnx needs the onnx package, which is not installed (pip install onnx); "
                          "nothing was exported")


def export_run(source: Path, weights: Path | None, out_dir: Path, formats=FORMATS,
               limits: NetworkLimits | None = None) -> dict[str, str]:
    """Export the network of `source` (a run directory or an architecture JSON) with `weights`; refused,
    with nothing written, for a missing format package or a network over `limits`."""
    from nasrun.nets import build_network, check_spec_size

    check_formats(formats)
    spec_path = RunDir(source).best if source.is_dir() else source
    spec = read_spec(spec_path)
    if weights is None and source.is_dir():
        weights = RunDir(source).best_weights
    if weights is None:
        raise NasrunError("no weights to export: pass --weights, a run directory, or use nasrun-train to retrain")
    check_spec_size(spec, spec_path, limits)
    net = spec["network"]
    model = build_network(spec["space"], spec["arch"], net["input_shape"], net["num_classes"], **net.get("options", {}))
    model.load_state_dict(load_checkpoint(weights))
    return export_model(model, spec, out_dir, formats)
