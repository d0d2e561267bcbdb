"""Per-op latency lookup tables, measured once on the user's own device, and the predictor built on them.

For a space whose layers are independent modules (the macro space) a network's latency is close to the
sum of its parts, which the space lists (`SearchSpace.latency_parts`): the stem, each layer's op at its
(op, c_in, c_out, stride, input resolution), each skip projection at its (c_in, c_out, resolution in,
resolution out), and the head. `nasrun-latency-table`
measures every such part the space can produce (batch 1, median of repeated runs after warm-up) and
saves them as JSON; `metrics.latency=table metrics.latency_table=PATH` then predicts `latency_ms`
instead of timing every architecture (as once-for-all does for phones — here, on your device).

    nasrun-latency-table search_space=macro dataset=cifar10 hardware=cpu --out latency_macro_cifar10.json
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from nasrun.errors import CheckpointError, ConfigError
from nasrun.assessment.metrics import example_input, measure_latency_ms
from nasrun.rundir import atomic_write_json
from nasrun.state import read_json_object

FORMAT = 1


class LatencyTable:
    """Measured milliseconds per part, with what they were measured for."""

    def __init__(self, entries: dict[str, float], info: dict):
        self.entries, self.info = entries, info

    @classmethod
    def measure(cls, space, input_shape: Sequence[int], num_classes: int, device: str = "cpu",
                warmup: int = 3, min_seconds: float = 0.05, report: Callable[[int, str], None] | None = None):
        parts = space.latency_parts(input_shape, num_classes)
        if parts is None:
            raise ConfigError(f"latency tables need a space whose layers are independent (macro); "
                              f"'{space.name}' cells share their inputs, so measure whole networks instead")
        entries = {}
        with torch.no_grad():
            for count, (key, module, shape) in enumerate(parts, start=1):
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
            record = read_json_object(path, "latency table", ("entries",))
            entries = record.pop("entries")
        except CheckpointError as err:
            raise ConfigError(f"latency table {path} is missing or not a nasrun-latency-table JSON ({err})") from None
        return cls(entries, record)

    def predictor(self, space, input_shape: Sequence[int]) -> Callable[[Any], float]:
        """arch -> predicted milliseconds at batch 1."""
        if list(input_shape) != list(self.info.get("input_shape", [])) or space.name != self.info.get("space"):
            raise ConfigError(f"latency table was built for space {self.info.get('space')} at input "
                              f"{self.info.get('input_shape')}, not {space.name} at {list(input_shape)}: rebuild it")

        def predict(arch: Any) -> float:
            keys = space.latency_keys(space.validate(arch), input_shape)
            missing = [k for k in keys if k not in self.entries]
            if missing:
                raise ConfigError(f"latency table lacks {missing[:3]}: it was built for another space config; rebuild it")
            return sum(self.entries[k] for k in keys)

        return predict


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine() or "cpu"
