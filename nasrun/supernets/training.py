"""Training a supernet: which subnets each step trains (uniform, sandwich, progressive shrinking), the
distillation loss, and BN recalibration before a subnet is scored with inherited weights.

Every epoch's randomness (data order, sampled paths) follows from (seed, epoch), so a training resumed
from an epoch checkpoint continues exactly as an uninterrupted one would."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nasrun import distributed
from nasrun.rundir import RunDir, load_checkpoint
from nasrun.datasets import DataBundle
from nasrun.errors import ConfigError
from nasrun.hardware import Hardware
from nasrun.nets import load_network
from nasrun.state import read_json_object
from nasrun.supernets.base import Supernet
from nasrun.training import DivergedError, Recipe, StepReport, logits_of

SAMPLINGS = ("uniform", "sandwich", "progressive_shrinking")


@dataclass
class Distillation:
    """Knowledge distillation. `teacher: largest` is in-place distillation (as in BigNAS): each step first
    trains the largest subnet with cross-entropy and the step's other subnets learn from its detached
    logits. `teacher: <path to a run's best_architecture.json>` distils every subnet from that trained,
    frozen network (weights: `teacher_weights`, by default the run's retrained_model.pt or best_model.pt)."""

    teacher: str | None = None      # "largest", a best_architecture.json path, or None (off)
    teacher_weights: str | None = None
    temperature: float = 4.0
    alpha: float = 0.7              # weight of the distillation term; 1 - alpha weighs cross-entropy

    def __post_init__(self):
        if self.teacher is not None and not isinstance(self.teacher, str):
            raise ConfigError(f"estimator.kd.teacher must be 'largest', a best_architecture.json path or null, "
                              f"got {self.teacher!r}")
        if float(self.temperature) <= 0 or not 0.0 <= float(self.alpha) <= 1.0:
            raise ConfigError(f"estimator.kd: temperature must be > 0 and alpha in [0, 1], got "
                              f"{self.temperature}, {self.alpha}")
        self.temperature, self.alpha = float(self.temperature), float(self.alpha)

    @property
    def enabled(self) -> bool:
        return self.teacher is not None

    @property
    def in_place(self) -> bool:
        return self.teacher == "largest"

    def load_teacher(self, data: DataBundle, device: str) -> nn.Module | None:
        """The frozen teacher network of a `teacher: <path>` config (None otherwise)."""
        if not self.enabled or self.in_place:
            return None
        spec_path = Path(self.teacher).expanduser().resolve()
        if not spec_path.is_file():
            raise ConfigError(f"estimator.kd.teacher: {spec_path} not found (use 'largest', null, or a run's "
                              f"best_architecture.json)")
        spec = read_json_object(spec_path, "teacher architecture")
        shape, classes = spec.get("network", {}).get("input_shape"), spec.get("network", {}).get("num_classes")
        if shape is None or tuple(shape) != tuple(data.input_shape) or classes != data.num_classes:
            raise ConfigError(f"estimator.kd.teacher: {spec_path} is a network for input {shape} and {classes} "
                              f"classes, the data has {list(data.input_shape)} and {data.num_classes}")
        network = load_network(spec_path)
        network.load_state_dict(load_checkpoint(self._weights_path(spec_path)))
        network.requires_grad_(False)
        return network.to(device).eval()

    def _weights_path(self, spec_path: Path) -> Path:
        if self.teacher_weights is not None:
            return Path(self.teacher_weights).expanduser().resolve()
        weights = RunDir(spec_path.parent).weights_for_best()
        if weights is not None:
            return weights
        raise ConfigError(f"estimator.kd.teacher: no checkpoints/retrained_model.pt or best_model.pt next to "
                          f"{spec_path}; set estimator.kd.teacher_weights")


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
                         optimizer, scheduler, hardware: Hardware, seed: int, epoch: int,
                         teacher_network: nn.Module | None = None, steps: StepReport = None) -> float:
    """One pass over the training split; returns the mean loss per trained subnet (of this rank's samples).
    In a distributed run each rank trains the same paths on its shard of every batch, with averaged gradients.
    `steps` hears every step, counted over all `recipe.epochs`."""
    group = distributed.current()
    supernet.train()
    steps_per_epoch = -(-len(data.train) // recipe.batch_size)
    total_steps = recipe.epochs * steps_per_epoch
    rng = random.Random(seed * 1_000 + epoch)
    ce = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    largest_key = supernet.space.key(supernet.largest()) if kd.in_place else None
    total, count = 0.0, 0
    batches = data.loader("train", recipe.batch_size, shuffle=True, seed=seed * 1_000 + epoch,
                          num_workers=hardware.num_workers)
    for index, (x, y) in enumerate(batches):
        global_batch = len(y)
        x, y = group.shard(x.to(hardware.device, non_blocking=True), y.to(hardware.device, non_blocking=True))
        step = (epoch - 1) * steps_per_epoch + index
        paths = plan.paths(supernet, step, total_steps, rng)
        if kd.in_place and supernet.space.key(paths[0]) != largest_key:
            paths = [supernet.largest(), *paths]        # in-place distillation: the teacher trains too
        optimizer.zero_grad(set_to_none=True)
        teacher = frozen_logits(teacher_network, x, hardware) if teacher_network is not None else None
        for arch in paths:
            supernet.set_active(arch)
            with hardware.autocast():
                logits = supernet(x)
            loss = ce(logits, y) if teacher is None else distillation_loss(logits, teacher, y, kd, ce)
            if not torch.isfinite(loss):
                raise DivergedError(f"non-finite supernet training loss ({loss.item()})")
            group.rescale(loss, global_batch).backward()
            if kd.in_place and teacher is None:
                teacher = logits.detach().float()
            total += loss.item() * len(y)
            count += len(y)
        group.average_gradients(supernet.parameters())
        if recipe.grad_clip:
            nn.utils.clip_grad_norm_(supernet.parameters(), recipe.grad_clip)
        optimizer.step()
        scheduler.step()
        if steps is not None:
            steps(step + 1, steps_per_epoch, recipe.epochs)
    return total / max(count, 1)


@torch.no_grad()
def frozen_logits(network: nn.Module, x: torch.Tensor, hardware: Hardware) -> torch.Tensor:
    with hardware.autocast():
        return logits_of(network(x)).float()


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
