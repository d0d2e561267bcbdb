"""Data-parallel one-shot search with torch.distributed: several processes train one supernet.

Start it with `torchrun --nproc_per_node=N -m nasrun hydra.run.dir=RUN ...` (RANK / WORLD_SIZE /
LOCAL_RANK in the environment) or with `hardware.devices=N`, which spawns the N processes itself.
Every rank builds the same components from the same seed; the process group uses gloo on the CPU and
NCCL on CUDA (rank r on cuda:<local rank>). A one-shot strategy makes its supernet training data-parallel
with three calls of `current()`:

    dist = distributed.current()
    model = dist.prepare_model(model)                  # synchronised BatchNorm, rank 0's initial values
    x, y = dist.shard(x_global, y_global)              # this rank's slice of the global batch
    dist.rescale(loss_fn(model(x), y), len(y_global)).backward()
    dist.average_gradients(params)                     # weights and α alike

so each step follows the gradient of the global batch, as a single process would, up to float rounding
(BatchNorm sees the statistics of the global batch). `dist.agree(arch)` checks at the end that every
rank derived the same architecture.
Only rank 0 runs the Runner and writes the run directory; the other ranks run the search alone
(`nasrun.run.spawn`: starting the processes, and what the other ranks do).
A weight-sharing estimator (`trains_supernet`) trains its supernet the same way in `bind`, under
`dist.batch_norm_synced(supernet)` (its elastic BN layers too); the other ranks bind it and exit.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as torch_dist
import torch.distributed.nn.functional as differentiable
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nasrun.errors import ConfigError, NasrunError
from nasrun.nets.lean import SearchBatchNorm2d

log = logging.getLogger("nasrun")


@dataclass(frozen=True)
class Distributed:
    """This process's place in the group. The default (world size 1) makes every method a no-op."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...] | torch.Tensor:
        """This rank's contiguous slice (along dim 0) of each tensor of a global batch."""
        parts = tuple(torch.tensor_split(t, self.world_size)[self.rank] if self.enabled else t for t in tensors)
        return parts[0] if len(parts) == 1 else parts

    def share(self, global_batch: int) -> float:
        """The fraction of a global batch of `global_batch` samples that `shard` gives this rank."""
        base, extra = divmod(int(global_batch), self.world_size)
        return (base + (self.rank < extra)) / int(global_batch)

    def rescale(self, loss: torch.Tensor, global_batch: int) -> torch.Tensor:
        """A mean loss over this rank's shard, weighted so that `average_gradients` then yields the
        gradient of the mean loss over the global batch even when shards differ in size (1x when equal)."""
        return loss * (self.world_size * self.share(global_batch)) if self.enabled else loss

    def average_gradients(self, parameters: Iterable[torch.Tensor]) -> None:
        """Average each gradient over the ranks (what DistributedDataParallel does), with one all-reduce.
        A parameter without a gradient keeps none (every rank runs the same model, so the same ones)."""
        parameters = [p for p in parameters if p.grad is not None]
        if not self.enabled or not parameters:
            return
        grads = [p.grad for p in parameters]
        flat = torch.cat([g.reshape(-1) for g in grads]) / self.world_size
        torch_dist.all_reduce(flat, op=torch_dist.ReduceOp.SUM)
        offset = 0
        for param, grad in zip(parameters, grads):
            param.grad = flat[offset:offset + grad.numel()].view_as(grad).clone()
            offset += grad.numel()

    def broadcast_parameters(self, parameters: Iterable[torch.Tensor]) -> None:
        """Copy rank 0's values into every rank (a safety net on top of identical seeding)."""
        if self.enabled:
            for param in parameters:
                torch_dist.broadcast(param.data, src=0)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """BatchNorm layers synchronised across ranks (torch's SyncBatchNorm on CUDA, `SyncBatchNormCPU`
        on the CPU) and rank 0's initial values everywhere. Call before creating optimisers."""
        if not self.enabled:
            return model
        if next(model.parameters(), torch.empty(0)).is_cuda:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            model = convert_batchnorm_cpu(model)
        self.broadcast_parameters(list(model.parameters()) + list(model.buffers()))
        return model

    @contextmanager
    def batch_norm_synced(self, model: nn.Module):
        """Within the block, every BatchNorm layer of `model` (elastic ones, which normalise the leading
        channels of a narrower input, included) normalises in training mode with the statistics of the
        global batch; afterwards the layers are plain again (BN recalibration and scoring stay local)."""
        norms = [m for m in model.modules() if isinstance(m, _BatchNorm)] if self.enabled else []
        for norm in norms:
            norm.forward = _synced_forward(norm)
        try:
            yield model
        finally:
            for norm in norms:
                del norm.forward

    def mean_over_ranks(self, metrics: dict[str, float]) -> dict[str, float]:
        """Each number averaged over the ranks (e.g. per-rank epoch losses, for logging on rank 0)."""
        if not self.enabled or not metrics:
            return dict(metrics)
        values = torch.tensor([float(v) for v in metrics.values()], dtype=torch.float64)
        torch_dist.all_reduce(values, op=torch_dist.ReduceOp.SUM)
        return {key: value / self.world_size for key, value in zip(metrics, values.tolist())}

    def agree(self, arch: Any) -> Any:
        """`arch`, after checking that every rank derived the same one (else a NasrunError)."""
        if not self.enabled:
            return arch
        keys: list = [None] * self.world_size
        torch_dist.all_gather_object(keys, json.dumps(arch, sort_keys=True, default=str))
        if len(set(keys)) != 1:
            raise NasrunError(f"distributed search: ranks derived different architectures: {keys}")
        return arch


class SyncBatchNormCPU(_BatchNorm):
    """BatchNorm whose training-mode statistics are those of the global batch across all ranks (the
    sums travel through a differentiable all-reduce, so gradients flow across ranks as in one process).
    torch's SyncBatchNorm is CUDA-only; this one serves gloo runs. Outside a group it is plain BatchNorm."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch_dist.is_initialized() and torch_dist.get_world_size() > 1):
            return super().forward(x)
        return synced_batch_norm(self, x)


def _synced_forward(norm: _BatchNorm):
    plain = type(norm).forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        return synced_batch_norm(norm, x) if norm.training else plain(norm, x)
    return forward


def synced_batch_norm(norm: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Training-mode BatchNorm of `x` over the global batch of all ranks (the sums travel through a
    differentiable all-reduce) with `norm`'s leading x.shape[1] channels; updates their running statistics."""
    channels, dims = x.shape[1], [0, *range(2, x.dim())]
    count = torch.tensor([x.numel() // channels], dtype=x.dtype, device=x.device)
    totals = differentiable.all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
    n = totals[-1]
    mean = totals[:channels] / n
    var = totals[channels:2 * channels] / n - mean * mean
    if norm.track_running_stats:
        _update_running_stats(norm, channels, mean.detach(), var.detach(), n.item())
    shape = [1, channels] + [1] * (x.dim() - 2)
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + norm.eps)
    return y * norm.weight[:channels].view(shape) + norm.bias[:channels].view(shape) if norm.affine else y


@torch.no_grad()
def _update_running_stats(norm: _BatchNorm, channels: int, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
    norm.num_batches_tracked += 1
    momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
    norm.running_mean[:channels].lerp_(mean, momentum)
    norm.running_var[:channels].lerp_(var * n / max(n - 1, 1), momentum)


def convert_batchnorm_cpu(module: nn.Module) -> nn.Module:
    """`module` with every plain BatchNorm layer (1d/2d/3d, and the search cells' SearchBatchNorm2d, which
    normalises as torch's does; other subclasses are left alone) replaced by a SyncBatchNormCPU sharing its
    parameters and buffers."""
    if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, SearchBatchNorm2d):
        synced = SyncBatchNormCPU(module.num_features, module.eps, module.momentum, module.affine,
                                  module.track_running_stats)
        if module.affine:
            synced.weight, synced.bias = module.weight, module.bias
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            if getattr(module, name, None) is not None:
                setattr(synced, name, getattr(module, name))
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        setattr(module, name, convert_batchnorm_cpu(child))
    return module


_current = Distributed()


def current() -> Distributed:
    """The process group this process belongs to (world size 1 outside a distributed run)."""
    return _current


def environment() -> Distributed | None:
    """The group described by torchrun-style variables, or None when not launched that way."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    return Distributed(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))


def init(hardware) -> Distributed:
    """Join the group of the environment (if any) and start the process group (NCCL on CUDA, gloo on the
    CPU). On CUDA, rank r runs on `rank_device(hardware, group)` (cuda:<local rank>): the caller sets it."""
    global _current
    group = environment()
    if group is None:
        _current = Distributed()
        return _current
    if hardware.is_cuda:
        torch.cuda.set_device(rank_device(hardware, group))
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if hardware.is_cuda else "gloo", rank=group.rank,
                                      world_size=group.world_size)
    _current = group
    return group


def rank_device(hardware, group: Distributed) -> str:
    """The device this rank trains on: cuda:<local rank> in a CUDA group, else the hardware's own."""
    if not (group.enabled and hardware.is_cuda):
        return hardware.device
    if torch.cuda.device_count() <= group.local_rank:
        raise ConfigError(f"distributed run: local rank {group.local_rank} has no GPU "
                          f"({torch.cuda.device_count()} visible)")
    return f"cuda:{group.local_rank}"


def finish() -> None:
    """Leave the group `init` started."""
    global _current
    if _current.enabled and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
    _current = Distributed()
