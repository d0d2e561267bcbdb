"""The hardware target: device, CPU threads, mixed precision, loader workers, deterministic mode."""

from __future__ import annotations

import contextlib
import os
import random
import sys
from dataclasses import dataclass

import numpy as np
import torch

from nasrun.errors import ConfigError


@dataclass
class Hardware:
    device: str = "auto"            # cpu | cuda | cuda:N | auto
    threads: int | None = None      # torch intra-op threads (None: torch's default)
    amp: bool = False               # bfloat16 autocast on CUDA
    num_workers: int = 0            # DataLoader workers for on-disk datasets
    deterministic: bool = True      # torch deterministic algorithms, cudnn.benchmark off
    devices: int = 1                # processes of a data-parallel one-shot search (nasrun.distributed)
    job: dict | None = None         # what a cluster job asks for (hydra/launcher=slurm reads it)

    def __post_init__(self):
        self.device = resolve_device(self.device)
        if self.threads is not None and int(self.threads) <= 0:
            raise ConfigError(f"hardware.threads must be positive or null, got {self.threads}")
        if isinstance(self.devices, bool) or int(self.devices) < 1:
            raise ConfigError(f"hardware.devices must be a positive integer, got {self.devices!r}")
        if int(self.num_workers) < 0:
            raise ConfigError(f"hardware.num_workers must be >= 0, got {self.num_workers}")

    def apply(self) -> None:
        """Set process-wide torch options. Called at the start of every (multirun) job."""
        if self.threads is not None:
            torch.set_num_threads(int(self.threads))
        set_deterministic(bool(self.deterministic))
        if self.is_cuda:
            torch.backends.cudnn.benchmark = not self.deterministic
            if self.deterministic:
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def autocast(self):
        """bfloat16 autocast on CUDA when amp is on; a no-op elsewhere."""
        if self.amp and self.is_cuda:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def name(self) -> str:
        if self.is_cuda:
            return torch.cuda.get_device_name(torch.device(self.device))
        return cpu_name()


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), else what `platform` knows."""
    import platform

    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def resolve_device(device: str) -> str:
    device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("hardware=cuda but no CUDA GPU is visible here; use hardware=cpu or hardware=auto")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"hardware.device={device} but only {torch.cuda.device_count()} GPU(s) are visible")
        return device
    raise ConfigError(f"hardware.device must be cpu, cuda, cuda:N or auto, got '{device}'")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(mode: bool) -> None:
    """`torch.use_deterministic_algorithms(mode, warn_only=True)`, without its import of torch._inductor
    (about 2.5 s of every run) while nothing has loaded the compiler: the ATen flag is what eager code
    reads. Once torch._inductor is loaded (or where torch lacks the flag's setter) the public call sets
    the compiler's flag too."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=True)
    else:
        setter(mode, warn_only=True)
