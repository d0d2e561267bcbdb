"""The estimator interface: score an architecture on the validation split; test the final one once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from nasrun.hardware import Hardware
from nasrun.nets.size import NetworkLimits
from nasrun.spaces import SearchSpace

if TYPE_CHECKING:
    from nasrun.datasets import DataBundle

# report(epoch, total_epochs, metrics) lets the progress display follow a trial epoch by epoch.
Report = Optional[Callable[[int, int, dict], None]]


@dataclass
class Evaluation:
    """What an estimator found: metrics (always its `score_metric`, e.g. `val_accuracy` 0..1) and, where it trained a
    network, that network's weights on the CPU so the final test needs no retraining."""

    metrics: dict[str, float]
    weights: dict | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Fidelity:
    """One multi-fidelity evaluation: train to `epochs` in total, continuing the training state that
    trial `continues` saved (None: from scratch); this evaluation's own state is saved as trial `trial`'s."""

    epochs: int
    trial: int
    continues: int | None = None


class Estimator:
    """Scores architectures. `bind` is called once per run before any evaluation."""

    reports: tuple[str, ...] = ("val_accuracy",)  # the metrics evaluate() records (objectives may name them)
    score_metric = "val_accuracy"  # the metric a trial must have (finite) and the default objective maximises
    needs_data = True   # False for estimators (a tabular benchmark) that never touch a dataset
    trains_supernet = False  # True when `bind` trains a supernet: several processes then train it together,
    #                          and the Runner passes bind a `steps` report (nasrun.training.StepReport)
    max_fidelity: int | None = None  # epochs an evaluation can train to with `fidelity=` (None: no fidelity)
    network_limits: NetworkLimits | None = None  # size limits of a supernet `bind` builds (the runner's; None: defaults)

    def bind(self, space: SearchSpace, data: DataBundle | None, hardware: Hardware, run_dir: Path | None = None,
             seed: int = 0) -> None:
        """The run's context: its space, data, hardware, run directory (None: write nothing) and seed (what
        a `bind` that trains, e.g. a supernet, draws its randomness from)."""
        self.space, self.data, self.hardware, self.run_dir, self.seed = space, data, hardware, run_dir, int(seed)

    def evaluate(self, arch: Any, seed: int, report: Report = None, fidelity: Fidelity | None = None) -> Evaluation:
        """Score `arch`; estimators with a `max_fidelity` also accept a Fidelity (multi-fidelity search)."""
        raise NotImplementedError

    def test(self, arch: Any, evaluation: Evaluation, seed: int) -> dict[str, float] | Evaluation:
        """Final scores of the chosen architecture on the test split; called once per run. An estimator that
        trains a network of its own for them returns an Evaluation with its weights (the run directory
        keeps them as checkpoints/retrained_model.pt)."""
        raise NotImplementedError

    def network_spec(self) -> dict | None:
        """{"input_shape", "num_classes"} of the networks scored, for estimators that load no data."""
        return None
