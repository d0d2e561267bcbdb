"""Per-op latency lookup tables, measured once on the user's own device, and the predictor built on them.

For a space whose layers are independent modules (the macro space) a network's latency is close to the
sum of its parts: the stem, each layer's op at its (op, c_in, c_out, stride, input resolution), each skip
projection at its (c_in, c_out, resolution in, resolution out), and the head. `nasrun-latency-table`
measures every such part the space can produce (batch 1, median of repeated runs after warm-up) and
saves them as JSON; `metrics.latency=table metrics.latency_table=PATH` then predicts `latency_ms`
instead of timing every architecture (as once-for-all does for phones — here, on your device).

    nasrun-latency-table search_space=macro dataset=cifar10 hardware=cpu --out latency_macro_cifar10.json
"""

from __future__ import annotations

import json
import platform
from itertools import product
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from nasrun.errors import ConfigError
from nasrun.assessment.metrics import example_input, measure_latency_ms
from nasrun.rundir import atomic_write_json

FORMAT = 1


def resolutions(height: int, reductions: int) -> list[int]:
    """The feature-map sizes a macro network can have: the input's, then halved (rounding up) per reduction."""
    sizes = [int(height)]
    for _ in range(reductions):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def macro_parts(space, input_shape: Sequence[int], num_classes: int) -> Iterator[tuple[str, nn.Module, tuple]]:
    """(key, module, input shape at batch 1) for every part a network of the macro space can contain."""
    from nasrun.nets.macro import conv_bn_relu, make_op, projection

    channels, height = int(input_shape[0]), int(input_shape[1])
    sizes = resolutions(height, len(space.reduce_at))
    c_ins = sorted({space.stem_width, *space.widths})
    yield stem_key(channels, space.stem_width, height), conv_bn_relu(channels, space.stem_width, 3), \
        (channels, height, height)
    for op, c_in, c_out, stride, size in product(space.ops, c_ins, space.widths, (1, 2), sizes):
        if stride == 1 or size != sizes[-1]:
            yield op_key(op, c_in, c_out, stride, size), make_op(op, c_in, c_out, stride), (c_in, size, size)
    for c_in, c_out, size_in, size_out in product(c_ins, space.widths, sizes, sizes):
        if size_out <= size_in and (c_in != c_out or size_in != size_out):
            yield skip_key(c_in, c_out, size_in, size_out), projection(c_in, c_out, size_in, size_out), \
                (c_in, size_in, size_in)
    for width, size in product(c_ins, sizes):
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))
        yield head_key(width, size), head, (width, size, size)


def stem_key(c_in, c_out, size) -> str:
    return f"stem|{c_in}|{c_out}|{size}"


def op_key(op, c_in, c_out, stride, size) -> str:
    return f"op|{op}|{c_in}|{c_out}|{stride}|{size}"


def skip_key(c_in, c_out, size_in, size_out) -> str:
    return f"skip|{c_in}|{c_out}|{size_in}|{size_out}"


def head_key(c_in, size) -> str:
    return f"head|{c_in}|{size}"


def macro_keys(arch: dict, input_shape: Sequence[int]) -> list[str]:
    """The table keys whose latencies add up to the network of `arch` (the walk MacroNet makes)."""
    channels, height = int(input_shape[0]), int(input_shape[1])
    widths, sizes = [arch["stem"]], [height]
    keys = [stem_key(channels, arch["stem"], height)]
    for index, layer in enumerate(arch["layers"], start=1):
        stride = int(layer.get("stride", 1))
        size = (sizes[-1] + stride - 1) // stride
        keys.append(op_key(layer["op"], widths[-1], layer["width"], stride, sizes[-1]))
        for node in layer.get("skips", []):
            if widths[node] != layer["width"] or sizes[node] != size:
                keys.append(skip_key(widths[node], layer["width"], sizes[node], size))
        widths.append(layer["width"])
        sizes.append(size)
    keys.append(head_key(widths[-1], sizes[-1]))
    return keys


class LatencyTable:
    """Measured milliseconds per part, with what they were measured for."""

    def __init__(self, entries: dict[str, float], info: dict):
        self.entries, self.info = entries, info

    @classmethod
    def measure(cls, space, input_shape: Sequence[int], num_classes: int, device: str = "cpu",
                warmup: int = 3, min_seconds: float = 0.05, report: Callable[[int, str], None] | None = None):
        if getattr(space, "name", None) != "macro":
            raise ConfigError(f"latency tables need a space whose layers are independent (macro); "
                              f"'{space.name}' cells share their inputs, so measure whole networks instead")
        entries = {}
        with torch.no_grad():
            for count, (key, module, shape) in enumerate(macro_parts(space, input_shape, num_classes), start=1):
                module = module.to(device).eval()
                entries[key] = round(measure_latency_ms(module, example_input(shape, 1, device), warmup, min_seconds), 5)
                if report:
                    report(count, key)
        info = {"format": FORMAT, "space": space.name, "input_shape": list(input_shape), "num_classes": num_classes,
                "device": device, "device_name": device_name(device), "batch": 1, "torch": torch.__version__,
                "threads": torch.get_num_threads()}
        return cls(entries, info)

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, {**self.info, "entries": self.entries})

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        path = Path(path).expanduser()
        try:
            record = json.loads(path.read_text())
            entries = record.pop("entries")
        except (OSError, ValueError, KeyError, AttributeError) as err:
            raise ConfigError(f"latency table {path} is missing or not a nasrun-latency-table JSON ({err})") from None
        return cls(entries, record)

    def predictor(self, space, input_shape: Sequence[int]) -> Callable[[Any], float]:
        """arch -> predicted milliseconds at batch 1."""
        if list(input_shape) != list(self.info.get("input_shape", [])) or space.name != self.info.get("space"):
            raise ConfigError(f"latency table was built for space {self.info.get('space')} at input "
                              f"{self.info.get('input_shape')}, not {space.name} at {list(input_shape)}: rebuild it")

        def predict(arch: Any) -> float:
            keys = macro_keys(space.validate(arch), input_shape)
            missing = [k for k in keys if k not in self.entries]
            if missing:
                raise ConfigError(f"latency table lacks {missing[:3]}: it was built for another space config; rebuild it")
            return sum(self.entries[k] for k in keys)

        return predict


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine() or "cpu"
