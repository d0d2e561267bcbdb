"""Train each architecture from scratch for a fixed number of epochs and score it on the validation split."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from nasrun.errors import ConfigError
from nasrun.estimators.base import Estimator, Evaluation, Report
from nasrun.hardware import seed_everything
from nasrun.training import Recipe, accuracy, count_parameters, train_one_epoch


class FullTraining(Estimator):
    reports = ("val_accuracy", "train_loss", "epochs", "params")

    def __init__(self, epochs: int = 10, batch_size: int = 64, lr: float = 0.05, momentum: float = 0.9,
                 weight_decay: float = 3e-4, optimizer: str = "sgd", scheduler: str = "cosine",
                 grad_clip: float | None = 5.0, label_smoothing: float = 0.0):
        if int(epochs) <= 0 or int(batch_size) <= 0 or float(lr) <= 0:
            raise ConfigError(f"estimator: epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}")
        if optimizer not in ("sgd", "adam") or scheduler not in ("cosine", "constant"):
            raise ConfigError(f"estimator: optimizer must be sgd|adam and scheduler cosine|constant, got {optimizer}, {scheduler}")
        self.recipe = Recipe(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), momentum=float(momentum),
                             weight_decay=float(weight_decay), optimizer=optimizer, scheduler=scheduler,
                             grad_clip=grad_clip, label_smoothing=float(label_smoothing))

    def build(self, arch: Any, seed: int) -> nn.Module:
        seed_everything(seed)
        return self.space.build(arch, self.data.input_shape, self.data.num_classes).to(self.hardware.device)

    def steps_per_epoch(self) -> int:
        return -(-len(self.data.train) // self.recipe.batch_size)

    def evaluate(self, arch: Any, seed: int, report: Report = None) -> Evaluation:
        model = self.build(arch, seed)
        optimizer = self.recipe.make_optimizer(model.parameters())
        scheduler = self.recipe.make_scheduler(optimizer, self.steps_per_epoch())
        best = None
        drop_path_base = getattr(model, "drop_path_prob", None)
        for epoch in range(1, self.recipe.epochs + 1):
            if drop_path_base is not None:  # drop-path annealed linearly from 0, as DARTS retrains
                model.drop_path_prob = drop_path_base * (epoch - 1) / self.recipe.epochs
            loss = train_one_epoch(model, self.data, self.recipe, optimizer, scheduler, self.hardware, seed * 1000 + epoch)
            metrics = {"train_loss": loss}
            if self.validate_every_epoch or epoch == self.recipe.epochs:
                metrics["val_accuracy"] = accuracy(model, self.data, "val", self.hardware)
            if report:
                report(epoch, self.recipe.epochs, metrics)
            best = self.after_epoch(epoch, metrics, model, best)
            if self.should_stop(epoch, best):
                break
        return self.finish(model, best)

    # --- hooks that early stopping overrides --------------------------------------------------
    validate_every_epoch = False

    def after_epoch(self, epoch: int, metrics: dict, model: nn.Module, best: dict | None) -> dict:
        return {"epoch": epoch, **metrics}

    def should_stop(self, epoch: int, best: dict) -> bool:
        return False

    def finish(self, model: nn.Module, best: dict) -> Evaluation:
        metrics = {"val_accuracy": best["val_accuracy"], "train_loss": best["train_loss"],
                   "epochs": best["epoch"], "params": count_parameters(model)}
        weights = best.get("weights") or {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return Evaluation(metrics=metrics, weights=weights)

    def test(self, arch: Any, evaluation: Evaluation, seed: int) -> dict[str, float]:
        model = self.space.build(arch, self.data.input_shape, self.data.num_classes)
        if evaluation.weights is not None:
            model.load_state_dict(evaluation.weights)
        model.to(self.hardware.device)
        return {"test_accuracy": accuracy(model, self.data, "test", self.hardware)}


def snapshot(model: nn.Module) -> dict:
    return copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
