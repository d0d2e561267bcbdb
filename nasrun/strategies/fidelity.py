"""What the multi-fidelity strategies share: rung schedules, proposals with a fidelity, and the record of
every result by fidelity.

A configuration (architecture) is first trained for a few epochs; the best ones are promoted and their
training *continues* from the saved state (`Proposal.continues`) up to the next rung's epochs, instead of
starting over. Each evaluation is one trial of `budget.trials`, recorded with its `fidelity` (epochs in
total); the run's best trial is the best at the highest fidelity reached (nasrun.records.best_trial).
`min_epochs` .. `max_epochs` (null: the estimator's epochs, which its learning-rate schedule spans) and
`eta` (promote the top 1/eta) set the rungs: max_epochs / eta^k, rounded, at least min_epochs.
"""

from __future__ import annotations

import math
from typing import Any

from nasrun.errors import ConfigError
from nasrun.records import Trial
from nasrun.strategies.base import Proposal, RandomStart, Strategy
from nasrun.strategies.novelty import Novelty


# A schedule of one rung never promotes: every evaluation is a fresh random configuration.
SINGLE_RUNG = RandomStart(math.inf, "a single rung: max_epochs < eta * min_epochs",
                          "raise strategy.max_epochs or lower strategy.min_epochs or strategy.eta")


def rung_epochs(min_epochs: int, max_epochs: int, eta: int, rungs: int) -> list[int]:
    """The epochs of the `rungs` top rungs, ending at max_epochs: max_epochs / eta^k rounded, distinct."""
    epochs = [max(min_epochs, round(max_epochs / eta ** k)) for k in reversed(range(rungs))]
    return sorted(set(epochs))


def most_rungs(min_epochs: int, max_epochs: int, eta: int) -> int:
    """How many rungs fit between min and max epochs: 1 + floor(log_eta(max / min))."""
    return 1 + int(math.floor(math.log(max_epochs / min_epochs, eta) + 1e-9))


def top(results: list[list], count: int) -> list[list]:
    """The `count` best [trial id, arch, score] entries with a finite score, best first (earliest on ties)."""
    ranked = sorted((r for r in results if r[2] is not None and math.isfinite(r[2])), key=lambda r: (-r[2], r[0]))
    return ranked[:count]


class MultiFidelity(Strategy):
    """Base of successive halving, Hyperband, BOHB and ASHA: settings, the fidelity check, fresh
    configurations (through Novelty, so warm starts apply), and `observations`: every told result as
    [trial id, arch JSON, score] by fidelity."""

    multi_fidelity = True

    def __init__(self, min_epochs: int = 1, max_epochs: int | None = None, eta: int = 3):
        for key, value in (("min_epochs", min_epochs), ("eta", eta)) + ((("max_epochs", max_epochs),) if max_epochs is not None else ()):
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if key == "eta" else 1):
                raise ConfigError(f"{type(self).__name__.lower()}: {key} must be an integer >= "
                                  f"{2 if key == 'eta' else 1}, got {value!r}")
        if max_epochs is not None and min_epochs > max_epochs:
            raise ConfigError(f"min_epochs ({min_epochs}) cannot exceed max_epochs ({max_epochs})")
        self.min_epochs, self.max_epochs, self.eta = min_epochs, max_epochs, eta

    def fit_fidelity(self, estimator_epochs: int | None, estimator: str) -> None:
        """Take the estimator's maximum fidelity; a max_epochs above it is a ConfigError (called before bind)."""
        if estimator_epochs is None:
            raise ConfigError(f"strategy {type(self).__name__} trains to several fidelities, but estimator "
                              f"{estimator} has none (use full_training or early_stopping)")
        if self.max_epochs is None:
            self.max_epochs = estimator_epochs
        if self.max_epochs > estimator_epochs:
            raise ConfigError(f"strategy.max_epochs ({self.max_epochs}) exceeds the estimator's epochs "
                              f"({estimator_epochs}), which its learning-rate schedule spans")
        if self.min_epochs > self.max_epochs:
            raise ConfigError(f"strategy.min_epochs ({self.min_epochs}) exceeds max_epochs ({self.max_epochs})")

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        if self.max_epochs is None:
            raise ConfigError(f"{type(self).__name__}: max_epochs is unknown (fit_fidelity was not called)")
        self.novelty = Novelty(space, self.rng, self.preferred)
        self.observations: dict[str, list[list]] = {}   # str(epochs) -> [[trial id, arch JSON, score]]

    def new_config(self) -> Any:
        """A configuration never proposed before (BOHB overrides this with its model)."""
        return self.novelty.sample()

    def propose(self, arch: Any, epochs: int, continues: int | None = None) -> Proposal:
        return Proposal(arch, fidelity=int(epochs), continues=continues)

    def observe(self, trial: Trial) -> list:
        """Record a told trial; returns its [id, arch JSON, score] (score None when it failed)."""
        score = trial.score() if math.isfinite(trial.score()) else None
        entry = [trial.id, trial.arch, score]
        self.observations.setdefault(str(trial.fidelity), []).append(entry)
        return entry

    def state_dict(self) -> dict:
        return {**super().state_dict(), "novelty": self.novelty.state(), "observations": self.observations,
                "max_epochs": self.max_epochs}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.novelty.load(state["novelty"])
        self.observations = {k: [list(e) for e in v] for k, v in state["observations"].items()}
        self.max_epochs = int(state["max_epochs"])
