"""The hardware target: device, CPU threads, mixed precision, loader workers, deterministic mode.

torch is imported where a setting is applied, not at the top: a run that computes nothing with torch
(a tabular estimator) builds its Hardware without loading torch, and `device: auto` is resolved when
the device is first read.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from dataclasses import dataclass

import numpy as np

from nasrun.errors import ConfigError
from nasrun.machine import ThreadChoice, choose_threads, free_memory


class Device:
    """The `device` field: checked when set; `auto` becomes cuda (a GPU is visible) or cpu when first read."""

    def __get__(self, hardware, owner=None) -> str:
        if hardware is None:
            return "auto"  # the dataclass default
        if hardware._device == "auto":
            hardware._device = resolve_device("auto")
        return hardware._device

    def __set__(self, hardware, value) -> None:
        value = str(value)
        hardware._device = value if value == "auto" else resolve_device(value)


@dataclass
class Hardware:
    device: str = Device()          # cpu | cuda | cuda:N | auto
    threads: int | None = None      # torch intra-op threads (None: the usable cores, nasrun.machine)
    amp: bool = False               # bfloat16 autocast on CUDA
    num_workers: int = 0            # DataLoader workers for on-disk datasets
    deterministic: bool = True      # torch deterministic algorithms, cudnn.benchmark off
    devices: int = 1                # processes of a data-parallel one-shot search (nasrun.distributed)
    job: dict | None = None         # what a cluster job asks for (hydra/launcher=slurm reads it)

    def __post_init__(self):
        if self.threads is not None and int(self.threads) <= 0:
            raise ConfigError(f"hardware.threads must be positive or null, got {self.threads}")
        if isinstance(self.devices, bool) or int(self.devices) < 1:
            raise ConfigError(f"hardware.devices must be a positive integer, got {self.devices!r}")
        if int(self.num_workers) < 0:
            raise ConfigError(f"hardware.num_workers must be >= 0, got {self.num_workers}")

    def apply(self, input_shape=None) -> ThreadChoice:
        """Set process-wide torch options (threads: see nasrun.machine; `input_shape`, (C, H, W) of the
        images trained on, where known). Called at the start of every (multirun) job and in every worker
        process; returns the thread choice."""
        import torch

        choice = choose_threads(self.threads, input_shape=input_shape)
        torch.set_num_threads(choice.threads)
        set_deterministic(bool(self.deterministic))
        if self.is_cuda:
            torch.backends.cudnn.benchmark = not self.deterministic
            if self.deterministic:
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        return choice

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def autocast(self):
        """bfloat16 autocast on CUDA when amp is on; a no-op elsewhere."""
        if self.amp and self.is_cuda:
            import torch

            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def free_memory(self) -> tuple[int, str]:
        """Bytes a computation on this device could still allocate, and where the figure comes from: the
        GPU's free memory plus what torch's caching allocator holds unused, or the machine's (nasrun.machine)."""
        if not self.is_cuda:
            return free_memory()
        import torch

        device = torch.device(self.device)
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached, f"free memory of {self.device}"

    def name(self) -> str:
        if self.is_cuda:
            import torch

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
    if device == "cpu":
        return device
    if device != "auto" and not device.startswith("cuda"):
        raise ConfigError(f"hardware.device must be cpu, cuda, cuda:N or auto, got '{device}'")
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ConfigError("hardware=cuda but no CUDA GPU is visible here; use hardware=cpu or hardware=auto")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"hardware.device={device} but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def torch_loaded() -> bool:
    """Whether torch is imported: every module that computes with torch imports it at its top, so once a
    run's components are built, False means the run computes nothing with it (a table lookup)."""
    return "torch" in sys.modules


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and, once it is loaded, torch (all devices). Whatever trains seeds again per
    trial, after loading torch; torch's unseeded generator is fixed anyway."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if torch_loaded():
        sys.modules["torch"].manual_seed(seed)


def set_deterministic(mode: bool) -> None:
    """`torch.use_deterministic_algorithms(mode, warn_only=True)`, without its import of torch._inductor
    (about 2.5 s of every run) while nothing has loaded the compiler: the ATen flag is what eager code
    reads. Once torch._inductor is loaded (or where torch lacks the flag's setter) the public call sets
    the compiler's flag too."""
    import torch

    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=True)
    else:
        setter(mode, warn_only=True)
