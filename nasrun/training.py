"""Training and scoring loops shared by every estimator and by retraining."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from nasrun.datasets import DataBundle
from nasrun.hardware import Hardware


# steps(done, per_epoch, epochs): a long training (a supernet's) finished its step `done` (1-based, counted
# from the first epoch) of per_epoch x epochs; the Runner draws it on the progress bar and times it.
StepReport = Optional[Callable[[int, int, int], None]]


class DivergedError(RuntimeError):
    """Training produced a non-finite loss."""


@dataclass
class Recipe:
    """How a network is trained: SGD (or Adam) with a cosine (or constant) schedule."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 3e-4
    nesterov: bool = True
    optimizer: str = "sgd"          # sgd | adam
    scheduler: str = "cosine"       # cosine | constant
    grad_clip: float | None = 5.0
    label_smoothing: float = 0.0

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                                   weight_decay=self.weight_decay, nesterov=self.nesterov and self.momentum > 0)
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        raise ValueError(f"unknown optimizer '{self.optimizer}' (sgd or adam)")

    def make_scheduler(self, optimizer, steps_per_epoch: int):
        if self.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.epochs * steps_per_epoch))
        if self.scheduler == "constant":
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        raise ValueError(f"unknown scheduler '{self.scheduler}' (cosine or constant)")


def logits_of(output) -> torch.Tensor:
    """The logits of a network's output: networks with an auxiliary head return (logits, aux_logits) in
    training mode."""
    return output[0] if isinstance(output, (tuple, list)) else output


def in_cpu_layout(model: nn.Module, hardware: Hardware) -> bool:
    """On the CPU, put `model` in channels-last, oneDNN's own layout (with NCHW tensors each convolution
    reorders its input and output on every call): a training step of a macro network on 8x8 digits, batch
    64, one thread, took 5.2-6.1 ms against 7.9-8.4 ms NCHW; on 32x32 images, two threads, 38-39 ms against
    51-53. Returns whether the batches should follow (`batch_layout`). GPU models are left as they are."""
    if hardware.device != "cpu":
        return False
    model.to(memory_format=torch.channels_last)  # a no-op once done; parameters keep their identity
    return True


def batch_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def train_one_epoch(model: nn.Module, data: DataBundle, recipe: Recipe, optimizer, scheduler,
                    hardware: Hardware, seed: int, loss_fn: Callable | None = None) -> float:
    """One pass over the training split; returns the mean loss. Raises DivergedError on NaN/inf."""
    model.train()
    loss_fn = loss_fn or classification_loss(recipe)
    device, channels_last = hardware.device, in_cpu_layout(model, hardware)
    total, count = 0.0, 0
    for x, y in data.loader("train", recipe.batch_size, shuffle=True, seed=seed, num_workers=hardware.num_workers):
        x, y = batch_layout(x.to(device, non_blocking=True), channels_last), y.to(device, non_blocking=True)
        with hardware.autocast():
            loss = loss_fn(model(x), y)
        value = loss.item()
        if not math.isfinite(value):
            raise DivergedError(f"non-finite training loss ({value})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        scheduler.step()
        total += value * len(y)
        count += len(y)
    return total / max(count, 1)


def classification_loss(recipe: Recipe) -> Callable:
    """Cross-entropy on the main logits, plus 0.4× that of an auxiliary head when the network has one."""
    ce = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    def loss(output, y):
        if isinstance(output, tuple):
            return ce(output[0], y) + 0.4 * ce(output[1], y)
        return ce(output, y)

    return loss


@torch.no_grad()
def accuracy(model: nn.Module, data: DataBundle, split: str, hardware: Hardware, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of `model` on one split."""
    model.eval()
    correct, count, channels_last = 0, 0, in_cpu_layout(model, hardware)
    for x, y in data.loader(split, batch_size, num_workers=hardware.num_workers):
        x, y = batch_layout(x.to(hardware.device), channels_last), y.to(hardware.device)
        with hardware.autocast():
            predicted = logits_of(model(x)).argmax(1)
        correct += (predicted == y).sum().item()
        count += len(y)
    return correct / max(count, 1)


def count_parameters(model: nn.Module) -> int:
    """The trainable parameters of `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
