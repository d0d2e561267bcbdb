"""`nasrun-benchmark RUN_DIR`: benchmark the architectures a run found.

For the best architecture (or, with `--pareto`, every architecture on the run's Pareto front) it reports
accuracy on every split, params, FLOPs/MACs, latency (batch 1 and `--latency-batch`), peak forward memory,
and robustness: accuracy under Gaussian input noise (σ in units of the standardised inputs) and under
FGSM adversarial examples (ε in the same units). Weights come from `checkpoints/best_model.pt` when it
belongs to the architecture; otherwise the network is retrained from scratch with the run's estimator
and the trial's seed. The dataset, space, estimator and hardware are rebuilt from the run's saved
`.hydra/config.yaml`. Results go to `RUN_DIR/benchmark.json` and a table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from rich.table import Table
from torch import nn

from nasrun.assessment.metrics import ArchitectureMetrics, MetricsConfig
from nasrun.build import build_components
from nasrun.console import add_row, new_table, number_column
from nasrun.config import load_saved_config
from nasrun.errors import CheckpointError, NasrunError
from nasrun.nets.size import NetworkLimits, check_network_size
from nasrun.rundir import RunDir, load_checkpoint, read_json
from nasrun.training import accuracy, logits_of

log = logging.getLogger("nasrun")

SIGMAS = (0.0, 0.1, 0.25, 0.5, 1.0)
EPSILONS = (0.0, 0.01, 0.03, 0.1)


def batches_of(data, split: str, device: str, batch_size: int = 256):
    for x, y in data.loader(split, batch_size):
        yield x.to(device), y.to(device)


@torch.no_grad()
def noisy_accuracy(model: nn.Module, data, split: str, sigma: float, device: str, seed: int = 0) -> float:
    """Accuracy when N(0, σ²) noise is added to every input (same noise for the same seed)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    correct = count = 0
    for x, y in batches_of(data, split, device):
        noise = torch.randn(x.shape, generator=generator).to(device) * sigma
        correct += (logits_of(model(x + noise)).argmax(1) == y).sum().item()
        count += len(y)
    return correct / max(count, 1)


def fgsm_accuracy(model: nn.Module, data, split: str, epsilon: float, device: str) -> float:
    """Accuracy on FGSM examples x + ε·sign(∇ₓ cross-entropy) (Goodfellow et al., 2015)."""
    model.eval()
    loss_fn = nn.CrossEntropyLoss()
    correct = count = 0
    for x, y in batches_of(data, split, device):
        x = x.clone().requires_grad_(True)
        loss = loss_fn(logits_of(model(x)), y)
        (gradient,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            adversarial = x + epsilon * gradient.sign()
            correct += (logits_of(model(adversarial)).argmax(1) == y).sum().item()
        count += len(y)
    return correct / max(count, 1)


def robustness(model: nn.Module, data, device: str, sigmas: Sequence[float], epsilons: Sequence[float],
               split: str = "test") -> dict:
    return {
        "split": split,
        "gaussian_noise": {str(s): noisy_accuracy(model, data, split, s, device) for s in sigmas},
        "fgsm": {str(e): fgsm_accuracy(model, data, split, e, device) for e in epsilons},
    }


class RunBenchmark:
    """Rebuilds a run's components and benchmarks architectures of it."""

    def __init__(self, run_dir: Path, overrides: Sequence[str] = (), limits: NetworkLimits | None = None):
        from omegaconf import OmegaConf

        self.run_dir, self.limits = Path(run_dir), limits
        self.files = RunDir(run_dir)
        cfg = load_saved_config(self.run_dir)
        self.cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        parts = build_components(self.cfg, ["hardware", "search_space", "estimator", "dataset"])
        self.hardware, self.space, self.estimator = parts.hardware, parts.search_space, parts.estimator
        self.data = parts.dataset.load()
        self.hardware.apply(self.data.input_shape)
        self.estimator.bind(self.space, self.data, self.hardware, None, int(self.cfg.seed))
        self.trials = {t.id: t for t in self.files.read_trials()}

    def targets(self, pareto: bool) -> list[dict]:
        """[{trial, arch}] of the best architecture, or of the Pareto front."""
        path = self.files.pareto if pareto else self.files.best
        if not path.is_file():
            hint = " (a multi-objective run writes it)" if pareto else " (the run found no feasible architecture?)"
            raise NasrunError(f"{path} not found{hint}")
        record = read_json(path, "front" if pareto else "best architecture")
        entries = record["front"] if pareto else [record]
        return [{"trial": entry["trial"], "arch": entry["arch"]} for entry in entries]

    def model_for(self, trial_id: int, arch: Any) -> tuple[nn.Module, str]:
        """The trained network: the run's checkpoint when it is this trial's, else retrained. A network over
        the size limits is refused before it is built."""
        arch = self.space.from_json(arch)
        shape, classes = self.data.input_shape, self.data.num_classes
        check_network_size(lambda: self.space.build(arch, shape, classes), shape,
                           f"{self.files.config} (search_space) for trial {trial_id}", self.limits)
        model = self.space.build(arch, shape, classes)
        best = self.files.read_best() if self.files.best.is_file() else {}
        checkpoint = self.files.best_weights
        if best.get("trial") == trial_id and checkpoint.is_file():
            try:
                model.load_state_dict(load_checkpoint(checkpoint))
                return model.to(self.hardware.device), "checkpoint"
            except (CheckpointError, RuntimeError) as err:
                log.warning("retraining trial %d: %s", trial_id, str(err).splitlines()[0])
        trial = self.trials.get(trial_id)
        seed = trial.seed if trial is not None and trial.seed is not None else int(self.cfg.seed)
        evaluation = self.estimator.evaluate(arch, seed)
        if evaluation.weights is None:
            raise NasrunError(f"trial {trial_id} has no checkpoint and the run's estimator does not train "
                              f"networks, so there are no weights to benchmark")
        model.load_state_dict(evaluation.weights)
        return model.to(self.hardware.device), "retrained"

    def benchmark(self, trial_id: int, arch: Any, sigmas, epsilons, latency_batch: int) -> dict:
        model, source = self.model_for(trial_id, arch)
        splits = {f"{split}_accuracy": accuracy(model, self.data, split, self.hardware)
                  for split in ("train", "val", "test")}
        measure = ArchitectureMetrics(self.space, tuple(self.data.input_shape), self.data.num_classes,
                                      self.hardware.device, MetricsConfig(latency_batch=latency_batch),
                                      measures={"params", "flops", "latency", "memory"})
        costs = measure.measure(self.space.from_json(arch))
        return {"trial": trial_id, "arch": arch, "weights": source, **splits, **costs,
                "robustness": robustness(model, self.data, self.hardware.device, sigmas, epsilons)}


def results_tables(results: list[dict]) -> list[Table]:
    """Accuracy per split, cost, then accuracy under noise and FGSM: one table each, so each fits 80 columns."""
    accuracy_table = new_table("nasrun-benchmark: accuracy")
    for column in ("trial", "weights", "train", "val", "test"):
        number_column(accuracy_table, column)
    cost = new_table("cost (latency in milliseconds at batch 1 and at --latency-batch, peak forward memory)")
    for column in ("trial", "params", "MFLOPs", "ms@1", "ms@batch", "MiB"):
        number_column(cost, column)
    for r in results:
        add_row(accuracy_table, r["trial"], r["weights"], *(f"{r[f'{split}_accuracy']:.4f}" for split in ("train", "val", "test")))
        add_row(cost, r["trial"], f"{r['params']:,}", f"{r['flops'] / 1e6:.3f}", f"{r['latency_ms']:.3f}",
                f"{r['latency_ms_batch']:.3f}", f"{r['memory_mb']:.2f}")
    first = results[0]["robustness"]
    robust = new_table(f"robustness ({first['split']} accuracy)")
    number_column(robust, "trial")
    for sigma in first["gaussian_noise"]:
        number_column(robust, f"σ={sigma}")
    for epsilon in first["fgsm"]:
        number_column(robust, f"FGSM ε={epsilon}")
    for r in results:
        values = [*r["robustness"]["gaussian_noise"].values(), *r["robustness"]["fgsm"].values()]
        add_row(robust, r["trial"], *(f"{v:.4f}" for v in values))
    return [accuracy_table, cost, robust]
