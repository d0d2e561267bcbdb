"""BOHB (Falkner et al., 2018): Hyperband's brackets, with new configurations proposed by a TPE model
of the results at the highest fidelity that has enough of them (at least decisions + 2), and a fraction
`random_fraction` of them random as in the paper. The model is optuna's TPESampler (the TPE the `tpe`
strategy uses: categorical decisions, well tested) fitted afresh on each proposal to the recorded
results, and seeded from (run seed, proposal number): the state stays plain JSON and a resumed search
proposes exactly what it would have.
"""

from __future__ import annotations

import math
from typing import Any

from nasrun.errors import ConfigError
from nasrun.strategies.base import RandomStart
from nasrun.strategies.hyperband import Hyperband
from nasrun.strategies.tpe import load_optuna


class BOHB(Hyperband):
    def __init__(self, min_epochs: int = 1, max_epochs: int | None = None, eta: int = 3,
                 random_fraction: float = 1 / 3, n_ei_candidates: int = 24):
        super().__init__(min_epochs, max_epochs, eta)
        if not 0 <= float(random_fraction) <= 1 or int(n_ei_candidates) < 1:
            raise ConfigError(f"bohb: need 0 <= random_fraction <= 1 and n_ei_candidates >= 1, "
                              f"got {random_fraction}, {n_ei_candidates}")
        self.random_fraction, self.n_ei_candidates = float(random_fraction), int(n_ei_candidates)

    def random_start(self, space) -> RandomStart:
        """Random until the model has decisions + 2 results or the first rung promotes, whichever comes first."""
        model = RandomStart(len(space.decisions()) + 2, "the space's decisions + 2")
        return min(super().random_start(space), model, key=lambda start: start.trials)

    def bind(self, space, seed, budget):
        self.optuna = load_optuna()
        self.model_proposals = 0
        super().bind(space, seed, budget)

    def new_config(self) -> Any:
        results = self._model_results()
        if results is None or self.rng.random() < self.random_fraction:
            return super().new_config()
        arch = self._tpe_proposal(results)
        return self.novelty.add(arch) if self.novelty.is_new(arch) else super().new_config()

    def _model_results(self) -> list[list] | None:
        """The results at the highest fidelity with at least decisions + 2 finite scores, or None."""
        needed = len(self.space.decisions()) + 2
        for epochs in sorted(self.observations, key=int, reverse=True):
            finite = [r for r in self.observations[epochs] if r[2] is not None and math.isfinite(r[2])]
            if len(finite) >= needed:
                return finite
        return None

    def _tpe_proposal(self, results: list[list]) -> Any:
        optuna, decisions = self.optuna, self.space.decisions()
        distributions = {f"d{i}": optuna.distributions.CategoricalDistribution(list(range(len(d.choices))))
                         for i, d in enumerate(decisions)}
        seed = (self.seed * 1_000_003 + self.model_proposals) % 2**32
        self.model_proposals += 1
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=0, n_ei_candidates=self.n_ei_candidates)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for _, arch, score in results:
            params = dict(zip(distributions, self.space.encode(self.space.from_json(arch))))
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=score))
        trial = study.ask(distributions)
        return self.space.decode([trial.params[name] for name in distributions])

    def state_dict(self) -> dict:
        return {**super().state_dict(), "model_proposals": self.model_proposals}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.model_proposals = int(state["model_proposals"])
