"""Strategy interfaces.

Multi-trial strategies are ask/tell: the runner asks for as many architectures as it has free workers
and tells results back in whatever order they finish. One-shot strategies train a supernet inside
`search()` and return one derived architecture, which the runner then scores like any trial.
Every strategy owns a `random.Random` seeded from the run seed, and its whole state is plain JSON data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nasrun.records import Trial
from nasrun.rundir import RunDir, load_checkpoint, save_checkpoint
from nasrun.spaces import SearchSpace


class Strategy:
    one_shot = False

    def bind(self, space: SearchSpace, seed: int, budget: int) -> None:
        """Attach to the run's space; `budget` is the number of trials the run will ask for."""
        self.space, self.seed, self.budget = space, int(seed), int(budget)
        self.rng = random.Random(self.seed)

    def ask(self, n: int) -> list[Any]:
        """Up to `n` architectures to evaluate next (fewer while waiting for results)."""
        raise NotImplementedError

    def tell(self, trials: list[Trial]) -> None:
        """Results of earlier asks, in completion order. Failed trials have status "failed"."""

    def state_dict(self) -> dict:
        """JSON-able state for resuming the search exactly where it was."""
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        self.rng.setstate(rng_from_state(state["rng"]))


@dataclass
class SearchContext:
    """What a one-shot strategy needs to train its supernet.

    Long searches call `save_state(state)` at the end of every epoch (model, optimiser, scheduler, α,
    RNG states, epoch) and `load_state()` when they start: a resumed run continues from there.
    Per-epoch records go to `<run_dir>/alphas.jsonl`, one JSON line per epoch:
    {"epoch": int, "ops": [op names], "alphas": {"<cell>": [[softmax weight per op] per edge]}, ...}.
    """

    space: SearchSpace
    data: Any
    hardware: Any
    run_dir: Path | None
    seed: int
    report: Callable[[int, int, dict], None] | None = None

    @property
    def records_path(self) -> Path | None:
        """`alphas.jsonl`: one line per search epoch."""
        return RunDir(self.run_dir).alphas if self.run_dir else None

    @property
    def state_path(self) -> Path | None:
        return RunDir(self.run_dir).search_state if self.run_dir else None

    def save_state(self, state: dict) -> None:
        """Atomically write the search state (tensors, numbers, strings, lists, dicts only)."""
        if self.state_path is not None:
            save_checkpoint(state, self.state_path)

    def load_state(self) -> dict | None:
        """The last saved search state, or None when the search starts fresh."""
        if self.state_path is None or not self.state_path.exists():
            return None
        return load_checkpoint(self.state_path)


class OneShotStrategy(Strategy):
    one_shot = True

    def search(self, context: SearchContext) -> Any:
        """Train a supernet and return the derived architecture."""
        raise NotImplementedError

    def ask(self, n: int) -> list[Any]:
        raise TypeError("one-shot strategies are run through search(), not ask/tell")


def rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_state(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
