"""Training a supernet: which subnets each step trains (uniform, sandwich, progressive shrinking), the
distillation loss, and BN recalibration before a subnet is scored with inherited weights.

Every epoch's randomness (data order, sampled paths) follows from (seed, epoch), so a training resumed
from an epoch checkpoint continues exactly as an uninterrupted one would."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nasrun.datasets import DataBundle
from nasrun.errors import ConfigError
from nasrun.hardware import Hardware
from nasrun.supernets.base import Supernet
from nasrun.training import DivergedError, Recipe

SAMPLINGS = ("uniform", "sandwich", "progressive_shrinking")


@dataclass
class Distillation:
    """In-place knowledge distillation (as in BigNAS): each step first trains the largest subnet with
    cross-entropy; the other subnets of the step learn from its (detached) logits."""

    teacher: str | None = None      # "largest" or None (off)
    temperature: float = 4.0
    alpha: float = 0.7              # weight of the distillation term; 1 - alpha weighs cross-entropy

    def __post_init__(self):
        if self.teacher not in (None, "largest"):
            raise ConfigError(f"estimator.kd.teacher must be 'largest' or null, got {self.teacher!r}")
        if float(self.temperature) <= 0 or not 0.0 <= float(self.alpha) <= 1.0:
            raise ConfigError(f"estimator.kd: temperature must be > 0 and alpha in [0, 1], got "
                              f"{self.temperature}, {self.alpha}")
        self.temperature, self.alpha = float(self.temperature), float(self.alpha)

    @property
    def enabled(self) -> bool:
        return self.teacher is not None


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, kd: Distillation,
                      ce: nn.Module) -> torch.Tensor:
    """alpha·T²·KL(teacher_T ‖ student_T) + (1 − alpha)·CE(student, target) (Hinton et al., 2015)."""
    t = kd.temperature
    soft = F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t
    return kd.alpha * soft + (1.0 - kd.alpha) * ce(student, target)


@dataclass
class PathPlan:
    """Which subnets one training step trains; gradients of all of them are accumulated."""

    sampling: str = "uniform"
    sandwich_random: int = 2        # random subnets per step besides the largest and the smallest

    def __post_init__(self):
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"estimator.sampling must be one of {list(SAMPLINGS)}, got {self.sampling!r}")
        if int(self.sandwich_random) < 0:
            raise ConfigError(f"estimator.sandwich_random must be >= 0, got {self.sandwich_random}")
        self.sandwich_random = int(self.sandwich_random)

    def check(self, supernet: Supernet) -> None:
        if self.sampling == "progressive_shrinking" and not supernet.shrink_stages():
            raise ConfigError(f"estimator.sampling=progressive_shrinking needs elastic dimensions; the "
                              f"{supernet.space.name} space has none (use uniform or sandwich)")

    def stage(self, supernet: Supernet, step: int, total_steps: int) -> str | None:
        """Progressive shrinking's stage at `step`: the stages split the training steps evenly."""
        if self.sampling != "progressive_shrinking":
            return None
        stages = supernet.shrink_stages()
        return stages[min(len(stages) - 1, step * len(stages) // max(1, total_steps))]

    def paths(self, supernet: Supernet, step: int, total_steps: int, rng: random.Random) -> list[Any]:
        if self.sampling == "sandwich":
            randoms = [supernet.sample(rng) for _ in range(self.sandwich_random)]
            return [supernet.largest(), supernet.smallest(), *randoms]
        return [supernet.sample(rng, self.stage(supernet, step, total_steps))]


def train_supernet_epoch(supernet: Supernet, data: DataBundle, recipe: Recipe, plan: PathPlan, kd: Distillation,
                         optimizer, scheduler, hardware: Hardware, seed: int, epoch: int) -> float:
    """One pass over the training split; returns the mean loss per trained subnet."""
    supernet.train()
    steps_per_epoch = -(-len(data.train) // recipe.batch_size)
    total_steps = recipe.epochs * steps_per_epoch
    rng = random.Random(seed * 1_000 + epoch)
    ce = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    largest_key = supernet.space.key(supernet.largest()) if kd.enabled else None
    total, count = 0.0, 0
    batches = data.loader("train", recipe.batch_size, shuffle=True, seed=seed * 1_000 + epoch,
                          num_workers=hardware.num_workers)
    for index, (x, y) in enumerate(batches):
        x, y = x.to(hardware.device, non_blocking=True), y.to(hardware.device, non_blocking=True)
        step = (epoch - 1) * steps_per_epoch + index
        paths = plan.paths(supernet, step, total_steps, rng)
        if kd.enabled and supernet.space.key(paths[0]) != largest_key:
            paths = [supernet.largest(), *paths]        # in-place distillation: the teacher trains too
        optimizer.zero_grad(set_to_none=True)
        teacher = None
        for arch in paths:
            supernet.set_active(arch)
            with hardware.autocast():
                logits = supernet(x)
            loss = ce(logits, y) if teacher is None else distillation_loss(logits, teacher, y, kd, ce)
            if not torch.isfinite(loss):
                raise DivergedError(f"non-finite supernet training loss ({loss.item()})")
            loss.backward()
            if kd.enabled and teacher is None:
                teacher = logits.detach().float()
            total += loss.item() * len(y)
            count += len(y)
        if recipe.grad_clip:
            nn.utils.clip_grad_norm_(supernet.parameters(), recipe.grad_clip)
        optimizer.step()
        scheduler.step()
    return total / max(count, 1)


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, batches: Iterable, device: str) -> None:
    """Replace every BN layer's running statistics by the exact average over `batches` (the active path's
    statistics: subnets differ in the inputs their BN layers see), then leave the model in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    for x, _ in batches:
        model(x.to(device))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()
