"""Train each architecture from scratch for a fixed number of epochs and score it on the validation split."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn

from nasrun.errors import CheckpointError, ConfigError
from nasrun.estimators.base import Estimator, Evaluation, Fidelity, Report
from nasrun.hardware import seed_everything
from nasrun.rundir import RunDir, load_checkpoint, save_checkpoint
from nasrun.state import TrainingState
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

    @property
    def max_fidelity(self) -> int:
        return self.recipe.epochs

    def evaluate(self, arch: Any, seed: int, report: Report = None, fidelity: Fidelity | None = None) -> Evaluation:
        """Train for `recipe.epochs`, or with a `fidelity` to `fidelity.epochs` in total, continuing the
        state of `fidelity.continues`; the schedule always spans `recipe.epochs` (the maximum fidelity) and
        epoch e's batches follow from (seed, e), so 1 + 2 + 6 continued epochs equal 9 in one go."""
        model = self.build(arch, seed)
        optimizer = self.recipe.make_optimizer(model.parameters())
        scheduler = self.recipe.make_scheduler(optimizer, self.steps_per_epoch())
        start, best, target = 0, None, self.recipe.epochs
        if fidelity is not None:
            target = self._check_fidelity(fidelity)
            start, best = self.states.resume(fidelity, model, optimizer, scheduler)
        drop_path_base = getattr(model, "drop_path_prob", None)
        for epoch in range(start + 1, target + 1):
            if best is not None and self.should_stop(epoch - 1, best):
                break
            if drop_path_base is not None:  # drop-path annealed linearly from 0, as DARTS retrains
                model.drop_path_prob = drop_path_base * (epoch - 1) / self.recipe.epochs
            loss = train_one_epoch(model, self.data, self.recipe, optimizer, scheduler, self.hardware, seed * 1000 + epoch)
            metrics = {"train_loss": loss}
            if self.validate_every_epoch or epoch == target:
                metrics["val_accuracy"] = accuracy(model, self.data, "val", self.hardware)
            if report:
                report(epoch, target, metrics)
            best = self.after_epoch(epoch, metrics, model, best)
        if fidelity is not None:
            self.states.save(fidelity, model, optimizer, scheduler, best)
        return self.finish(model, best)

    def _check_fidelity(self, fidelity: Fidelity) -> int:
        if not 1 <= fidelity.epochs <= self.recipe.epochs:
            raise ConfigError(f"fidelity of {fidelity.epochs} epochs is outside 1..{self.recipe.epochs}, the "
                              "estimator's epochs (the maximum fidelity its schedule spans)")
        return fidelity.epochs

    @property
    def states(self) -> "TrainingStates":
        if getattr(self, "_states", None) is None:
            self._states = TrainingStates(self.run_dir)
        return self._states

    # --- hooks that early stopping overrides --------------------------------------------------
    validate_every_epoch = False

    def after_epoch(self, epoch: int, metrics: dict, model: nn.Module, best: dict | None) -> dict:
        return {"epoch": epoch, **metrics}

    def should_stop(self, epoch: int, best: dict) -> bool:
        """After `epoch`, with `best` what after_epoch kept: end the training early?"""
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


class TrainingStates:
    """The training states multi-fidelity trials leave for their promotions (a `TrainingState`: model,
    optimizer, scheduler, the torch RNG, the epoch and what `after_epoch` kept), in
    `RunDir.training_state(trial)` files (in memory without a run directory, which only an in-process
    executor can share)."""

    def __init__(self, run_dir: Path | None):
        self.run_dir, self.memory = run_dir, {}

    def _path(self, trial: int) -> Path | None:
        return RunDir(self.run_dir).training_state(trial) if self.run_dir is not None else None

    def _load(self, trial: int) -> dict | None:
        path = self._path(trial)
        if path is None:
            return self.memory.get(trial)
        return load_checkpoint(path) if path.is_file() else None

    def resume(self, fidelity: Fidelity, model, optimizer, scheduler) -> tuple[int, dict | None]:
        """Load the state this evaluation starts from: its own, when a crash came after it was saved
        (the run is resumed), else the continued trial's; (epochs done, what after_epoch kept)."""
        state = self._load(fidelity.trial)
        if state is None and fidelity.continues is not None:
            state = self._load(fidelity.continues)
            if state is None:
                raise CheckpointError(f"the training state of trial {fidelity.continues} is missing; trial "
                                      f"{fidelity.trial} cannot continue it")
        if state is None:
            return 0, None
        TrainingState(model=model, optimizer=optimizer, scheduler=scheduler).restore(state)
        return int(state["epoch"]), state["best"]

    def save(self, fidelity: Fidelity, model, optimizer, scheduler, best: dict) -> None:
        """Keep this trial's state; drop the continued one's (its trial will not be continued twice)."""
        state = TrainingState(model=model, optimizer=optimizer, scheduler=scheduler).capture(
            epoch=int(best.get("last_epoch", best["epoch"])), best=best)
        path = self._path(fidelity.trial)
        if path is None:
            self.memory[fidelity.trial] = copy.deepcopy(state)
            self.memory.pop(fidelity.continues, None)
            return
        save_checkpoint(state, path)
        if fidelity.continues is not None:
            self._path(fidelity.continues).unlink(missing_ok=True)


def snapshot(model: nn.Module) -> dict:
    """A CPU copy of the model's weights."""
    return copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
