"""Export a trained network so it runs without nasrun.

The exported model takes images as a user has them: float32, NCHW, values in [0, 1], at the run's input
size; the normalisation the dataset applied during the search (mean / std per channel) is inside it.
`<out>/` receives:
  architecture.json     the metadata: class names, input shape and channels, the preprocessing that makes
                        an image file a [0, 1] tensor, the normalisation inside the model, the files and how
                        to load each; also space, arch and network options (`nasrun.nets` rebuilds it)
  weights.safetensors   the bare network's weights (safetensors when installed, else weights.pt)
  model.pt2             torch.export (`torch.export.load(path).module()`), dynamic batch; needs torch only
  model.torchscript.pt  TorchScript (traced): `torch.jit.load(path)`; needs torch only
  model.onnx            ONNX (input `images`, output `logits`, dynamic batch); needs the `onnx` package to write
`load_exported(out)` rebuilds the model from the first two with nasrun.

`nasrun-export RUN_DIR_OR_ARCH_JSON [--weights W] [--out DIR]` exports a run's best network
(`best_architecture.json` + `checkpoints/best_model.pt`) as it was trained during the search.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import warnings
from pathlib import Path

import torch
from torch import nn

from nasrun.errors import CheckpointError, NasrunError
from nasrun.nets.deploy import NormalizedInput
from nasrun.rundir import RunDir, atomic_write_json, load_checkpoint, read_json, save_checkpoint
from nasrun.state import atomic_write
from nasrun.state.reads import read_bytes
from nasrun.nets.size import NetworkLimits

FORMATS = ("json", "weights", "pt2", "torchscript", "onnx")
MODEL_FILES = {"pt2": "model.pt2", "torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
LOADERS = {
    "pt2": "torch.export.load('model.pt2').module()(images)",
    "torchscript": "torch.jit.load('model.torchscript.pt')(images)",
    "onnx": "onnxruntime.InferenceSession('model.onnx').run(None, {'images': images.numpy()})[0]",
    "weights": "from nasrun.evaluation.export import load_exported; load_exported('.')(images)",
}


def has_package(name: str) -> bool:
    """Whether `name` can be imported (a package set to None in sys.modules, or broken, cannot)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def importable(name: str) -> bool:
    """Whether `import name` works (an installed but broken package does not count)."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def why_unavailable(kind: str) -> str | None:
    """Why this installation cannot write format `kind`, or None when it can."""
    if kind == "onnx" and not importable("onnx"):
        return "the onnx package is not importable (pip install 'nasrun[export]')"
    if kind == "pt2" and not hasattr(getattr(torch, "export", None), "save"):
        return f"torch {torch.__version__} has no torch.export (torch>=2.1 has)"
    return None


def available_formats() -> tuple[str, ...]:
    return tuple(kind for kind in FORMATS if why_unavailable(kind) is None)


def check_formats(formats) -> None:
    """A one-line error, before anything is written, when a requested format cannot be written here."""
    problems = [f"{kind}: {why_unavailable(kind)}" for kind in formats if why_unavailable(kind)]
    if problems:
        raise NasrunError(f"cannot export {'; '.join(problems)}")


def sample_input(spec: dict, batch: int = 2) -> torch.Tensor:
    """A seeded batch shaped like the exported model's input: float in [0, 1] (normal values when the spec
    does not say how inputs were normalised, then the model takes normalised inputs)."""
    shape, generator = spec["network"]["input_shape"], torch.Generator().manual_seed(0)
    if normalization(spec) is None:
        return torch.randn(batch, *shape, generator=generator)
    return torch.rand(batch, *shape, generator=generator)


def normalization(spec: dict) -> dict | None:
    """The spec's `{"mean", "std"}` (best_architecture.json: input.normalize), or None for an older run."""
    return (spec.get("input") or {}).get("normalize")


def deployable(network: nn.Module, spec: dict) -> nn.Module:
    """`network` taking [0, 1] images, its training-time normalisation inside (as is, without one)."""
    norm = normalization(spec)
    model = network if norm is None else NormalizedInput(network, norm["mean"], norm["std"])
    return model.cpu().eval()


def export_model(network: nn.Module, spec: dict, out_dir: str | Path, formats=None) -> dict[str, str]:
    """Write the requested formats (default: every one this installation can write) of `network` (the bare
    network, described by `spec`: a best_architecture.json-like dict). Each file is written whole
    (nasrun.state.atomic_write: a link at its name is replaced, never followed)."""
    formats = available_formats() if formats is None else tuple(formats)
    check_formats(formats)
    out_dir = Path(out_dir)
    model, example = deployable(network, spec), sample_input(spec)
    written: dict[str, str] = {}
    if "weights" in formats:
        written["weights"] = save_weights(network, out_dir).name
    writers = {"pt2": export_pt2, "torchscript": export_torchscript, "onnx": export_onnx}
    for kind, write in writers.items():
        if kind in formats:
            buffer = io.BytesIO()
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                write(model, example, buffer)
            atomic_write(out_dir / MODEL_FILES[kind], buffer.getvalue())
            written[kind] = MODEL_FILES[kind]
    if "json" in formats:
        atomic_write_json(out_dir / "architecture.json", metadata(spec, written))
        written["json"] = "architecture.json"
    return written


def metadata(spec: dict, written: dict[str, str]) -> dict:
    """architecture.json: what a user needs to feed the exported model and read its output."""
    net = spec["network"]
    described = {key: spec[key] for key in ("dataset", "classes") if key in spec}
    if normalization(spec) is not None:
        model_input = {**spec["input"], "normalized_inside_model": True}
    else:
        model_input = {"shape": net["input_shape"], "layout": "NCHW", "dtype": "float32", "normalize": None,
                       "note": "this run did not record its input normalisation: feed inputs normalised as in training"}
    return {
        "space": spec["space"], "arch": spec["arch"], "network": net, **described,
        "input": model_input,
        "output": {"name": "logits", "shape": ["batch", net["num_classes"]],
                   "meaning": "unnormalised class scores; argmax is the class index into `classes`"},
        "files": written,
        "load": {kind: LOADERS[kind] for kind in written if kind in LOADERS},
    }


def export_pt2(model: nn.Module, example: torch.Tensor, buffer: io.BytesIO) -> None:
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, buffer)


def export_torchscript(model: nn.Module, example: torch.Tensor, buffer: io.BytesIO) -> None:
    torch.jit.save(torch.jit.trace(model, example), buffer)


def export_onnx(model: nn.Module, example: torch.Tensor, buffer: io.BytesIO) -> None:
    torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=17,
                      input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    import onnx

    onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()))


def save_weights(model: nn.Module, out_dir: Path) -> Path:
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    if has_package("safetensors"):
        from safetensors.torch import save

        path = out_dir / "weights.safetensors"
        atomic_write(path, save(state))
    else:
        path = out_dir / "weights.pt"
        save_checkpoint(state, path)
    return path


def load_exported(out_dir: str | Path) -> nn.Module:
    """The exported model (taking [0, 1] images, normalisation inside) rebuilt with `nasrun.nets` from its
    architecture.json and weights, in eval mode; `.network` is the bare network when it normalises."""
    from nasrun.nets import load_network

    out_dir = Path(out_dir)
    spec = read_spec(out_dir / "architecture.json")
    network = load_network(out_dir / "architecture.json")
    network.load_state_dict(load_weights(out_dir))
    return deployable(network, spec)


def load_weights(out_dir: Path) -> dict:
    path = out_dir / "weights.safetensors"
    if path.exists():
        from safetensors.torch import load

        data = read_bytes(path, "checkpoint", "weights")
        try:
            return load(data)
        except Exception as err:  # noqa: BLE001 - a truncated file
            raise CheckpointError(f"{path} is corrupt or truncated ({err})") from None
    return load_checkpoint(out_dir / "weights.pt")


# --- exporting a search run's best network -----------------------------------------------------------------
def read_spec(path: Path) -> dict:
    """An architecture JSON whose network block can be built (nasrun.nets.check_spec)."""
    from nasrun.nets import check_spec

    if not path.is_file():
        raise NasrunError(f"{path} is not a readable architecture JSON (no such file)")
    return check_spec(read_json(path, "architecture JSON"), path)


def export_run(source: Path, weights: Path | None, out_dir: Path, formats=None,
               limits: NetworkLimits | None = None) -> tuple[dict[str, str], dict]:
    """Export a run's best network (or an architecture JSON with `weights`); returns what was written and
    the architecture spec it came from. Refused, with nothing written, for a format this installation
    cannot write or a network over `limits`."""
    from nasrun.nets import build_network, check_spec_size

    if formats is not None:
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
    try:
        model.load_state_dict(load_checkpoint(weights))
    except RuntimeError as err:
        raise CheckpointError(f"{weights} does not hold this architecture's weights "
                              f"({str(err).splitlines()[0][:160]})") from None
    return export_model(model, spec, out_dir, formats), spec
