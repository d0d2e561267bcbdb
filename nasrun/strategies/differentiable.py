"""Differentiable one-shot search, as a strategy: what DARTS, PC-DARTS and GDAS share. The strategy checks
the settings, builds the α-weighted supernet (`make_weighting`: the variant's edge weighting) and hands it
to the bilevel training (nasrun.supernets.bilevel), which trains it epoch by epoch, saves and resumes its
state and logs α; the run scores the derived architecture as its one trial (OneShotStrategy)."""

from __future__ import annotations

import contextlib
import logging

import torch

from nasrun import distributed
from nasrun.errors import ConfigError
from nasrun.nets.size import check_network_size
from nasrun.supernets.bilevel import Bilevel, BilevelSettings
from nasrun.supernets.memory import choose_checkpoint
from nasrun.supernets.weighted import (SupernetSize, WeightedSupernet, Weighting, build_weighted_supernet,
                                       check_checkpoint_mode)
from nasrun.strategies.base import (AT_LEAST_0, FRACTION, POSITIVE, WHOLE, OneShotStrategy, SearchContext,
                                   check_number, pair)

log = logging.getLogger("nasrun")


class DifferentiableSearch(OneShotStrategy):
    """Shared settings (published DARTS defaults in conf/strategy/darts.yaml):

    epochs, batch_size; supernet size C, layers (DARTS space cells) and N (NB201 cells per stage);
    w: lr (cosine to lr_min per epoch), momentum, weight_decay, grad_clip; α: arch_lr, arch_betas,
    arch_weight_decay; order 1|2; warmup_epochs (w only, α frozen); train_portion of the training split
    used for w (the rest for α); steps_per_epoch caps the steps (null: the whole half);
    stop_at_skip_connects stops early once the derived normal cell holds that many skip-connects;
    checkpoint (none | cells | edges) recomputes activations in the backward pass: less memory for about
    one more forward pass, the same values (see `WeightedSupernet.checkpoint`); auto (the default) runs
    without recomputation where a step fits in the device's free memory, else with edges
    (nasrun.supernets.memory).
    """

    name = "differentiable"

    def __init__(self, epochs: int = 50, batch_size: int = 64, C: int = 16, layers: int = 8, N: int = 5,
                 lr: float = 0.025, lr_min: float = 0.001, momentum: float = 0.9, weight_decay: float = 3e-4,
                 grad_clip: float | None = 5.0, arch_lr: float = 3e-4, arch_betas=(0.5, 0.999),
                 arch_weight_decay: float = 1e-3, order: int = 1, warmup_epochs: int = 0,
                 train_portion: float = 0.5, steps_per_epoch: int | None = None,
                 stop_at_skip_connects: int | None = None, checkpoint: str = "auto"):
        for key, value in {"epochs": epochs, "batch_size": batch_size, "C": C, "layers": layers, "N": N}.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"strategy.{key} must be a positive integer, got {value!r}")
        if order not in (1, 2):
            raise ConfigError(f"strategy.order must be 1 or 2, got {order!r}")
        if not 0.0 < float(train_portion) < 1.0:
            raise ConfigError(f"strategy.train_portion must be in (0, 1), got {train_portion}")
        if steps_per_epoch is not None and int(steps_per_epoch) <= 0:
            raise ConfigError(f"strategy.steps_per_epoch must be positive or null, got {steps_per_epoch}")
        numbers = [("lr", lr, POSITIVE), ("lr_min", lr_min, AT_LEAST_0), ("momentum", momentum, FRACTION),
                   ("weight_decay", weight_decay, AT_LEAST_0), ("arch_lr", arch_lr, POSITIVE),
                   ("arch_weight_decay", arch_weight_decay, AT_LEAST_0), ("warmup_epochs", warmup_epochs, WHOLE)]
        numbers += [(f"arch_betas[{i}]", beta, FRACTION) for i, beta in enumerate(pair(arch_betas, "arch_betas"))]
        numbers += [("grad_clip", grad_clip, POSITIVE)] if grad_clip is not None else []
        numbers += [("stop_at_skip_connects", stop_at_skip_connects, WHOLE)] if stop_at_skip_connects is not None else []
        for key, value, rule in numbers:
            check_number(key, value, rule)
        self.C, self.layers, self.N = C, layers, N
        self.settings = BilevelSettings(
            epochs=epochs, batch_size=batch_size, lr=float(lr), lr_min=float(lr_min), momentum=float(momentum),
            weight_decay=float(weight_decay), grad_clip=grad_clip, arch_lr=float(arch_lr),
            arch_betas=tuple(arch_betas), arch_weight_decay=float(arch_weight_decay), order=int(order),
            warmup_epochs=int(warmup_epochs), train_portion=float(train_portion),
            steps_per_epoch=None if steps_per_epoch is None else int(steps_per_epoch),
            stop_at_skip_connects=stop_at_skip_connects)
        self.checkpoint = checkpoint if checkpoint == "auto" else check_checkpoint_mode(checkpoint)

    # --- what subclasses choose --------------------------------------------------------------------------
    def make_weighting(self) -> Weighting:
        return Weighting()

    def start_epoch(self, epoch: int) -> dict:
        """Per-epoch settings (e.g. GDAS's temperature); returns what to log."""
        return {}

    # --- setup -------------------------------------------------------------------------------------------
    def build_supernet(self, space, input_shape, num_classes: int) -> WeightedSupernet:
        """The supernet, without recomputation for `checkpoint: auto` until `choose_checkpoint` decides."""
        size = SupernetSize(self.C, self.layers, self.N, "none" if self.checkpoint == "auto" else self.checkpoint)
        return build_weighted_supernet(space, input_shape, num_classes, self.make_weighting(), size, self.name)

    def choose_checkpoint(self, model: WeightedSupernet, input_shape, hardware, ranks: int = 1) -> str:
        """Resolve `checkpoint: auto` for `model` on `hardware` (logged); other settings stay as they are."""
        if self.checkpoint == "auto":
            model.checkpoint, why = choose_checkpoint(model, input_shape, -(-self.settings.batch_size // ranks), hardware)
            log.info("strategy.checkpoint=auto: %s (%s)", model.checkpoint, why)
        return model.checkpoint

    # --- the search -----------------------------------------------------------------------------------
    def search(self, context: SearchContext) -> tuple:
        """Train the supernet on the context's data and hardware; (derived architecture, search seconds)."""
        data = context.data
        check_network_size(lambda: self.build_supernet(context.space, data.input_shape, data.num_classes),
                           data.input_shape, f"strategy={self.name} (its supernet: strategy.C, layers, N)", context.limits)
        torch.manual_seed(self.seed)
        model = self.build_supernet(context.space, data.input_shape, data.num_classes)
        model = model.to(context.hardware.device, memory_format=torch.channels_last)  # channels-last: ~1.5x faster on CPU
        self.choose_checkpoint(model, data.input_shape, context.hardware, distributed.current().world_size)
        return self.trainer(context.hardware.autocast).search(model, data, context.hardware.device, context,
                                                              self.start_epoch)

    def trainer(self, autocast=contextlib.nullcontext) -> Bilevel:
        """The bilevel training under this strategy's settings and seed (0 before `bind`)."""
        return Bilevel(self.settings, getattr(self, "seed", 0), autocast)

