"""ASHA, asynchronous successive halving (Li et al., 2020): no rung ever waits. Whenever a worker is
free, the best configuration in the top 1/eta of some rung that has not been promoted yet is promoted
(highest rung first) and its training continues to the next rung's epochs; when none qualifies, a new
configuration starts at the lowest rung. With `executor=processes|ray` every worker stays busy.
"""

from __future__ import annotations

from typing import Any

from nasrun.strategies.base import Proposal, RandomStart
from nasrun.strategies.fidelity import SINGLE_RUNG, MultiFidelity, most_rungs, rung_epochs, top


class ASHA(MultiFidelity):
    def all_rungs(self) -> list[int]:
        rungs = most_rungs(self.min_epochs, self.max_epochs, self.eta)
        return rung_epochs(self.min_epochs, self.max_epochs, self.eta, rungs)

    def random_start(self, space) -> RandomStart:
        """A promotion needs eta results at the lowest rung (never with a single rung)."""
        return RandomStart(self.eta, "strategy.eta") if len(self.all_rungs()) > 1 else SINGLE_RUNG

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        self.rungs = self.all_rungs()
        self.promoted: dict[str, list[int]] = {}   # str(rung epochs) -> trial ids promoted from that rung

    def ask(self, n: int) -> list[Any]:
        return [self._promotion() or self.propose(self.new_config(), self.rungs[0]) for _ in range(n)]

    def _promotion(self) -> Proposal | None:
        for lower, upper in reversed(list(zip(self.rungs, self.rungs[1:]))):
            done = self.observations.get(str(lower), [])
            promoted = self.promoted.setdefault(str(lower), [])
            for trial_id, arch, _ in top(done, len(done) // self.eta):
                if trial_id not in promoted:
                    promoted.append(trial_id)
                    return self.propose(self.space.from_json(arch), upper, continues=trial_id)
        return None

    def tell(self, trials) -> None:
        for trial in trials:
            self.observe(trial)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "promoted": self.promoted}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.promoted = {k: list(v) for k, v in state["promoted"].items()}
