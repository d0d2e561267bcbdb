"""Train up to `max_epochs`, validating every epoch; stop after `patience` epochs without an improvement
of at least `min_delta`, and keep the weights of the best validation epoch."""

from __future__ import annotations

from torch import nn

from nasrun.errors import ConfigError
from nasrun.estimators.full_training import FullTraining, snapshot


class EarlyStopping(FullTraining):
    reports = (*FullTraining.reports, "epochs_trained")
    validate_every_epoch = True

    def __init__(self, max_epochs: int = 30, patience: int = 5, min_delta: float = 0.0, **recipe):
        if int(patience) <= 0:
            raise ConfigError(f"estimator.patience must be positive, got {patience}")
        super().__init__(epochs=max_epochs, **recipe)
        self.patience, self.min_delta = int(patience), float(min_delta)

    def after_epoch(self, epoch: int, metrics: dict, model: nn.Module, best: dict | None) -> dict:
        if best is None or metrics["val_accuracy"] > best["val_accuracy"] + self.min_delta:
            return {"epoch": epoch, **metrics, "weights": snapshot(model), "last_epoch": epoch}
        return {**best, "last_epoch": epoch}

    def should_stop(self, epoch: int, best: dict) -> bool:
        return epoch - best["epoch"] >= self.patience

    def finish(self, model: nn.Module, best: dict):
        evaluation = super().finish(model, best)
        evaluation.metrics["epochs_trained"] = best["last_epoch"]
        return evaluation
