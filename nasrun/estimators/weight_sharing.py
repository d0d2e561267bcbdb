"""One-shot weight sharing: train one supernet per search, then score each architecture with the weights
it inherits from it, after recalibrating batch-norm statistics on a few training batches.

The supernet is trained in `bind` (before any trial, so executors that copy the estimator into workers
copy a trained supernet) with single-path sampling, `uniform` (SPOS), `sandwich` or
`progressive_shrinking`, optionally distilling from the largest subnet. Its weights, optimizer and
scheduler are saved after every epoch in `<run dir>/checkpoints/supernet.pt`: a run restarted on the
same run dir continues from the last finished epoch and never trains a finished supernet again.
With several processes (`hardware.devices=N` or torchrun) every rank binds the estimator and trains the
one supernet data-parallel: each takes its shard of every global batch, gradients are averaged and batch
norm sees the global batch, so every rank ends with the supernet one process would train (up to float
rounding); only rank 0 writes the checkpoint and goes on to score architectures.
`test` retrains the chosen architecture from scratch (`retrain`, a FullTraining config) and reports its
one-shot and stand-alone scores side by side.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any


from nasrun import distributed
from nasrun.rundir import RunDir, load_checkpoint
from nasrun.state import TrainingState
from nasrun.errors import CheckpointError, ConfigError
from nasrun.estimators.base import Estimator, Evaluation, Report
from nasrun.estimators.full_training import FullTraining
from nasrun.hardware import seed_everything
from nasrun.nets.size import check_network_size
from nasrun.records import to_jsonable
from nasrun.supernets import Supernet, build_supernet
from nasrun.supernets.training import Distillation, PathPlan, recalibrate_batch_norm, train_supernet_epoch
from nasrun.training import DivergedError, StepReport, accuracy, count_parameters

log = logging.getLogger("nasrun")


class WeightSharing(Estimator):
    reports = ("val_accuracy", "params", "supernet_epochs")
    trains_supernet = True

    def __init__(self, epochs: int = 30, sampling: str = "uniform", sandwich_random: int = 2,
                 kd: dict | None = None, calibration_batches: int = 4, calibration_batch_size: int = 64,
                 retrain: dict | None = None, **recipe):
        self.recipe = FullTraining(epochs=epochs, **recipe).recipe    # FullTraining validates the recipe
        self.plan = PathPlan(sampling, sandwich_random)
        self.kd = Distillation(**(kd or {}))
        if int(calibration_batches) <= 0 or int(calibration_batch_size) <= 0:
            raise ConfigError("estimator.calibration_batches and calibration_batch_size must be positive")
        self.calibration_batches, self.calibration_batch_size = int(calibration_batches), int(calibration_batch_size)
        retrain = dict(retrain or {})
        self.retrain_enabled = bool(retrain.pop("enabled", True))
        try:
            self.retrainer = FullTraining(**retrain)
        except TypeError as err:
            raise ConfigError(f"estimator.retrain: {err}") from None
        self.supernet: Supernet | None = None

    # --- the supernet, trained once per run --------------------------------------------------------
    def bind(self, space, data, hardware, run_dir=None, seed: int = 0, steps: StepReport = None) -> None:
        """Train the supernet (or load it); `steps` hears every training step (the Runner's progress bar)."""
        super().bind(space, data, hardware, run_dir, seed)
        check_network_size(lambda: build_supernet(space, data.input_shape, data.num_classes), data.input_shape,
                           "search_space (its weight-sharing supernet)", self.network_limits)
        seed_everything(self.seed)
        self.supernet = build_supernet(space, data.input_shape, data.num_classes).to(hardware.device)
        self.plan.check(self.supernet)
        self.teacher_network = self.kd.load_teacher(data, hardware.device)
        group = distributed.current()
        group.broadcast_parameters(list(self.supernet.parameters()) + list(self.supernet.buffers()))
        with group.batch_norm_synced(self.supernet):
            self.epochs_trained = self.train_supernet(steps)

    @property
    def checkpoint_path(self) -> Path | None:
        return RunDir(self.run_dir).supernet if self.run_dir is not None else None

    def signature(self) -> str:
        """What the cached supernet depends on: a checkpoint with another signature is refused."""
        space = {k: v for k, v in vars(self.space).items() if not k.startswith("_")}
        return json.dumps(to_jsonable({
            "space": self.space.name, "space_options": space, "input_shape": self.data.input_shape,
            "num_classes": self.data.num_classes, "dataset": self.data.name, "sizes": self.data.sizes(),
            "recipe": vars(self.recipe), "sampling": vars(self.plan), "kd": vars(self.kd), "seed": self.seed,
        }), sort_keys=True)

    def train_supernet(self, steps: StepReport = None) -> int:
        """Train (or resume, or load) the supernet; returns the number of epochs it has been trained."""
        optimizer = self.recipe.make_optimizer(self.supernet.parameters())
        scheduler = self.recipe.make_scheduler(optimizer, -(-len(self.data.train) // self.recipe.batch_size))
        start = self.load_progress(optimizer, scheduler)
        if start >= self.recipe.epochs:
            log.info("supernet: loaded %s (%d epochs trained)", self.checkpoint_path, start)
            return start
        for epoch in range(start + 1, self.recipe.epochs + 1):
            try:
                loss = train_supernet_epoch(self.supernet, self.data, self.recipe, self.plan, self.kd, optimizer,
                                            scheduler, self.hardware, self.seed, epoch, self.teacher_network, steps)
                loss = distributed.current().mean_over_ranks({"loss": loss})["loss"]
            except DivergedError as err:
                raise ConfigError(f"estimator: supernet training diverged in epoch {epoch} ({err}); "
                                  f"try a lower estimator.lr") from None
            log.info("supernet epoch %d/%d (%s): loss %.4f", epoch, self.recipe.epochs, self.plan.sampling, loss)
            self.save_progress(epoch, optimizer, scheduler)
        return self.recipe.epochs

    def training_state(self, optimizer, scheduler) -> TrainingState:
        return TrainingState(rng=False, supernet=self.supernet, optimizer=optimizer, scheduler=scheduler)

    def load_progress(self, optimizer, scheduler) -> int:
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return 0
        state = load_checkpoint(path, map_location=self.hardware.device)
        if state.get("signature") != self.signature():
            raise CheckpointError(f"{path} holds a supernet trained with another space, dataset or training "
                                  f"config; delete it or use a fresh run directory")
        return int(self.training_state(optimizer, scheduler).restore(state)["epoch"])

    def save_progress(self, epoch: int, optimizer, scheduler) -> None:
        if self.checkpoint_path is not None and distributed.current().is_main:
            self.training_state(optimizer, scheduler).save(self.checkpoint_path, epoch=epoch,
                                                           signature=self.signature())

    # --- scoring with inherited weights -------------------------------------------------------------
    def inherited_accuracy(self, arch: Any, split: str) -> float:
        """Accuracy of `arch`'s path with the supernet's weights, BN statistics recalibrated on the
        same training batches for every architecture."""
        self.supernet.set_active(arch)
        batches = self.data.loader("train", self.calibration_batch_size, shuffle=True, seed=self.seed,
                                   num_workers=self.hardware.num_workers)
        calibration = (batch for _, batch in zip(range(self.calibration_batches), batches))
        recalibrate_batch_norm(self.supernet, calibration, self.hardware.device)
        return accuracy(self.supernet, self.data, split, self.hardware)

    def evaluate(self, arch: Any, seed: int, report: Report = None) -> Evaluation:
        arch = self.space.validate(arch)
        score = self.inherited_accuracy(arch, "val")
        network = self.supernet.extract(arch)
        metrics = {"val_accuracy": score, "params": count_parameters(network), "supernet_epochs": self.epochs_trained}
        if report:
            report(1, 1, metrics)
        weights = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
        return Evaluation(metrics=metrics, weights=weights)

    # --- the final architecture ---------------------------------------------------------------------
    def test(self, arch: Any, evaluation: Evaluation, seed: int) -> dict[str, float] | Evaluation:
        """One-shot scores (inherited weights) and, unless `retrain.enabled=false`, the stand-alone scores
        of the architecture retrained from scratch (with its weights); `test_accuracy` is the stand-alone
        one when retrained."""
        arch = self.space.validate(arch)
        oneshot_val = evaluation.metrics.get("val_accuracy")
        if oneshot_val is None:
            oneshot_val = self.inherited_accuracy(arch, "val")
        scores = {"oneshot_val_accuracy": oneshot_val, "oneshot_test_accuracy": self.inherited_accuracy(arch, "test")}
        if not self.retrain_enabled:
            return {**scores, "test_accuracy": scores["oneshot_test_accuracy"]}
        self.retrainer.bind(self.space, self.data, self.hardware, self.run_dir, self.seed)
        retrained = self.retrainer.evaluate(arch, seed)
        return Evaluation({**scores, "standalone_val_accuracy": retrained.metrics["val_accuracy"],
                           "test_accuracy": self.retrainer.test(arch, retrained, seed)["test_accuracy"],
                           "retrain_epochs": retrained.metrics["epochs"]}, weights=retrained.weights)
