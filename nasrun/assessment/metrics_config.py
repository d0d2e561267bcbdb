"""What the cost metrics are called and the `metrics:` block of the run config, apart from the code that
measures them (nasrun.assessment.metrics, torch): a run that measures nothing never loads torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from nasrun.errors import ConfigError

MEASURES = ("params", "flops", "latency", "memory")
# Which measure produces which recorded metric.
PRODUCES = {"params": ("params",), "flops": ("flops", "macs"), "latency": ("latency_ms", "latency_ms_batch"),
            "memory": ("memory_mb",)}


COST_METRICS = tuple(name for names in PRODUCES.values() for name in names)


def measure_for(metric: str) -> str | None:
    """The measure that records `metric` (None for metrics an estimator reports, like val_accuracy)."""
    return next((m for m, names in PRODUCES.items() if metric in names), None)


@dataclass
class MetricsConfig:
    """The `metrics:` block of the run config."""

    enabled: Sequence[str] = ("params", "flops")
    latency: str = "measure"             # measure | table
    latency_table: str | None = None     # a `nasrun-latency-table` JSON, for latency: table
    latency_batch: int = 32
    latency_warmup: int = 3
    latency_min_seconds: float = 0.2

    def __post_init__(self):
        if not isinstance(self.enabled, (list, tuple)) or not all(isinstance(m, str) for m in self.enabled):
            raise ConfigError(f"metrics.enabled must be a list of measures from {list(MEASURES)}, got {self.enabled!r}")
        unknown = [m for m in self.enabled if m not in MEASURES]
        if unknown:
            raise ConfigError(f"metrics.enabled: unknown {unknown} (known: {list(MEASURES)})")
        if self.latency not in ("measure", "table"):
            raise ConfigError(f"metrics.latency must be 'measure' or 'table', got {self.latency!r}")
        if self.latency == "table" and not self.latency_table:
            raise ConfigError("metrics.latency=table needs metrics.latency_table=<path from nasrun-latency-table>")
        if int(self.latency_batch) <= 0:
            raise ConfigError(f"metrics.latency_batch must be positive, got {self.latency_batch}")
