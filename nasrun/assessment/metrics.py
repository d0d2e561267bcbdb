"""Cost metrics of a network, measured on the run's hardware target.

Names recorded per trial (in `trials.jsonl`):
  params            trainable parameters
  flops, macs       floating-point operations of one forward pass at batch 1, counted by
                    `torch.utils.flop_counter.FlopCounterMode` (convolutions, matmuls, attention: the ops
                    that dominate cost; BatchNorm, activations and pooling are not counted). macs = flops / 2.
  latency_ms        median time of one eval-mode forward pass at batch 1 (`torch.utils.benchmark.Timer`
                    after warm-up runs; the Timer synchronises CUDA around every measurement)
  latency_ms_batch  the same at batch `latency_batch`
  memory_mb         peak memory of a no-grad forward pass at batch 1: weights + buffers + input + the peak of
                    what the pass allocates on top. CUDA: `torch.cuda.max_memory_allocated` during the pass
                    minus what was allocated before it. CPU: the peak total size of the tensors alive during
                    the pass, tracked op by op with a `TorchDispatchMode` (each storage counted once,
                    released when its last tensor dies).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from nasrun.assessment.metrics_config import MetricsConfig
from nasrun.errors import ConfigError
from nasrun.training import count_parameters


def example_input(input_shape: Sequence[int], batch: int = 1, device: str = "cpu") -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn((batch, *input_shape), generator=generator).to(device)


@torch.no_grad()
def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one eval-mode forward pass on `x` (a multiply-add counts as 2)."""
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


@torch.no_grad()
def measure_latency_ms(model: nn.Module, x: torch.Tensor, warmup: int = 3, min_seconds: float = 0.2) -> float:
    """Median milliseconds of one eval-mode forward pass on `x`, after `warmup` untimed passes."""
    from torch.utils.benchmark import Timer

    model.eval()
    for _ in range(max(0, warmup)):
        model(x)
    timer = Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_seconds).median * 1000.0


class _LiveTensorBytes(TorchDispatchMode):
    """Tracks the total size of the storages created by ops and still alive, and its peak."""

    def __init__(self, existing: Sequence[torch.Tensor] = ()):
        super().__init__()
        self.existing = {t.untyped_storage().data_ptr() for t in existing}  # weights, input: not new
        self.refs: dict[int, list] = {}   # storage pointer -> [bytes, live tensors referring to it]
        self.live = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in _tensors_in(out):
            self._track(tensor)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer == 0 or pointer in self.existing:
            return
        entry = self.refs.get(pointer)
        if entry is None:
            entry = self.refs[pointer] = [storage.nbytes(), 0]
            self.live += entry[0]
            self.peak = max(self.peak, self.live)
        entry[1] += 1
        weakref.finalize(tensor, self._release, pointer)

    def _release(self, pointer: int) -> None:
        entry = self.refs.get(pointer)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self.refs[pointer]


def _tensors_in(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _tensors_in(item)]
    return []


def _static_tensors(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers(), x]


@torch.no_grad()
def measure_memory_mb(model: nn.Module, x: torch.Tensor) -> float:
    """Peak memory (MiB) of one no-grad forward pass on `x`; see the module docstring for how."""
    model.eval()
    static = _static_tensors(model, x)
    static_bytes = sum(t.numel() * t.element_size() for t in static)
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
        before = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        model(x)
        torch.cuda.synchronize(x.device)
        return (static_bytes + torch.cuda.max_memory_allocated(x.device) - before) / 2**20
    tracker = _LiveTensorBytes(static)
    with tracker:
        model(x)
    return (static_bytes + tracker.peak) / 2**20


@dataclass
class ArchitectureMetrics:
    """Measures the enabled metrics of architectures of one space at the dataset's input size.
    Latency is cached per architecture (`space.key`); with `latency: table` it is predicted instead."""

    space: Any
    input_shape: Sequence[int]
    num_classes: int
    device: str = "cpu"
    config: MetricsConfig = field(default_factory=MetricsConfig)
    measures: set[str] = field(default_factory=set)
    latency_cache: dict[str, dict] = field(default_factory=dict)
    predictor: Callable[[Any], float] | None = None

    def __post_init__(self):
        self.measures = set(self.measures or self.config.enabled)
        if "latency" in self.measures and self.config.latency == "table" and self.predictor is None:
            raise ConfigError("metrics.latency=table: build the metrics with nasrun.assessment.assess.architecture_metrics, "
                              "which loads the table's predictor")

    def measure(self, arch: Any) -> dict[str, float]:
        model = self.space.build(arch, self.input_shape, self.num_classes).to(self.device).eval()
        x = example_input(self.input_shape, 1, self.device)
        result: dict[str, float] = {}
        if "params" in self.measures:
            result["params"] = count_parameters(model)
        if "flops" in self.measures:
            flops = count_flops(model, x)
            result.update(flops=flops, macs=flops // 2)
        if "latency" in self.measures:
            result.update(self._latency(arch, model, x))
        if "memory" in self.measures:
            result["memory_mb"] = round(measure_memory_mb(model, x), 4)
        return result

    def _latency(self, arch: Any, model: nn.Module, x: torch.Tensor) -> dict[str, float]:
        if self.predictor is not None:
            return {"latency_ms": round(self.predictor(arch), 4)}
        key = self.space.key(arch)
        if key not in self.latency_cache:
            cfg = self.config
            batch = example_input(self.input_shape, cfg.latency_batch, self.device)
            self.latency_cache[key] = {
                "latency_ms": round(measure_latency_ms(model, x, cfg.latency_warmup, cfg.latency_min_seconds), 4),
                "latency_ms_batch": round(measure_latency_ms(model, batch, cfg.latency_warmup,
                                                             cfg.latency_min_seconds), 4),
            }
        return dict(self.latency_cache[key])
