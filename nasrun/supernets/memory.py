"""`strategy.checkpoint=auto`: recompute activations only where a search step would not fit otherwise.

The memory a training step needs is measured, not modelled: one training-mode forward pass of a copy of
the supernet at batch PROBE_BATCH, without recomputation, with autograd's saved-tensor hooks counting
every tensor kept for the backward pass (each storage once; weights and buffers aside). Activations grow
with the batch, so the step needs about that per sample times the batch, times STEP_MARGIN for what a
backward pass holds at once besides them. Where that fits in FREE_SHARE of the device's free memory
(`Hardware.free_memory`: the GPU's, or the machine's RAM within its cgroup limit) the search runs without
recomputation ("none"), the fastest; else with "edges", the least memory. Both give the same values
(`WeightedSupernet.checkpoint`), so the choice never changes a search's result.
"""

from __future__ import annotations

import copy
import itertools

import torch

PROBE_BATCH = 2
STEP_MARGIN = 1.5   # a step's peak over the activations one forward pass keeps (gradients in flight, the α step)
FREE_SHARE = 0.5    # the share of the free memory a step without recomputation may take


def activation_bytes(model: torch.nn.Module, input_shape, device: str, batch: int = PROBE_BATCH) -> int:
    """Bytes autograd keeps for the backward pass of one training-mode forward pass of `model` (without
    recomputation) on `batch` inputs, weights and buffers aside. Measured on a copy, under a forked random
    state: the model's batch-norm statistics and torch's random numbers are left as they were."""
    probe = copy.deepcopy(model)
    probe.checkpoint = "none"
    probe.train()
    fixed = {t.untyped_storage().data_ptr() for t in itertools.chain(probe.parameters(), probe.buffers())}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in fixed:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    x = torch.zeros(batch, *input_shape, device=device).contiguous(memory_format=torch.channels_last)
    cuda = [torch.device(device).index or 0] if str(device).startswith("cuda") else []
    with torch.random.fork_rng(devices=cuda), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        probe(x)
    return sum(kept.values())


def choose_checkpoint(model: torch.nn.Module, input_shape, batch: int, hardware) -> tuple[str, str]:
    """The recomputation for `checkpoint: auto`, "none" or "edges", and why (for the log)."""
    need = activation_bytes(model, input_shape, hardware.device) / PROBE_BATCH * batch * STEP_MARGIN
    free, where = hardware.free_memory()
    mode = "none" if need <= FREE_SHARE * free else "edges"
    return mode, (f"a step at batch {batch} without recomputation needs about {need / 2**30:.2f} GiB; "
                  f"{where}: {free / 2**30:.2f} GiB free")
