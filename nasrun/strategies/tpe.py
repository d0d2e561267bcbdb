"""Tree-structured Parzen Estimator (Bayesian optimisation) through optuna's ask/tell API, one
categorical parameter per decision of the space's encoding.

Determinism and resume: every ask uses a TPESampler seeded from (run seed, ask number), so the proposals
depend only on the history. The state is that history, a list of asks and tells; loading it replays the
events into a fresh optuna study (asks as enqueued trials with their recorded values), which leaves the
study exactly as it was. A proposal that was already evaluated is told its known score at no query cost
and TPE asks again; after `max_retries` repeats a fresh random architecture is proposed instead.
"""

from __future__ import annotations

import math
from typing import Any

from nasrun.errors import ConfigError
from nasrun.strategies.base import RandomStart, Strategy
from nasrun.strategies.novelty import Novelty


def load_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("strategy=tpe needs optuna: pip install 'nasrun[tpe]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class TPE(Strategy):
    def __init__(self, n_startup_trials: int = 10, n_ei_candidates: int = 24, max_retries: int = 10):
        if int(n_startup_trials) < 1 or int(n_ei_candidates) < 1 or int(max_retries) < 0:
            raise ConfigError(f"tpe: n_startup_trials, n_ei_candidates must be >= 1 and max_retries >= 0, "
                              f"got {n_startup_trials}, {n_ei_candidates}, {max_retries}")
        self.n_startup_trials, self.n_ei_candidates = int(n_startup_trials), int(n_ei_candidates)
        self.max_retries = int(max_retries)

    def random_start(self, space) -> RandomStart:
        """TPE's start-up trials are random samples (optuna's own), the model fits from then on."""
        return RandomStart(self.n_startup_trials, "strategy.n_startup_trials")

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        self.optuna = load_optuna()
        self.novelty = Novelty(space, self.rng, self.preferred)
        self.names = [f"d{i}" for i in range(len(space.decisions()))]
        self.distributions = {name: self.optuna.distributions.CategoricalDistribution(list(range(len(d.choices))))
                              for name, d in zip(self.names, space.decisions())}
        self.study = self.optuna.create_study(direction="maximize", sampler=self._sampler(0))
        self.events: list[list] = []           # ["ask", indices] | ["tell", trial_number, score or None]
        self.asks = 0
        self.numbers: dict[str, list[int]] = {}  # key -> optuna trial numbers proposed and not yet told
        self.scores: dict[str, float | None] = {}

    def _sampler(self, ask_number: int):
        seed = (self.seed * 1_000_003 + ask_number) % (2**32)
        return self.optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                               n_ei_candidates=self.n_ei_candidates)

    # --- optuna calls, each recorded as an event ------------------------------------------------------
    def _ask_study(self, indices: list[int] | None = None):
        if indices is not None:
            self.study.enqueue_trial(dict(zip(self.names, indices)))
        else:
            self.study.sampler = self._sampler(self.asks)
        self.asks += 1
        trial = self.study.ask(self.distributions)
        indices = [trial.params[name] for name in self.names]
        self.events.append(["ask", indices])
        return trial.number, indices

    def _tell_study(self, number: int, score: float | None) -> None:
        if score is None:
            self.study.tell(number, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(number, score)
        self.events.append(["tell", number, score])

    # --- ask / tell -------------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Any]:
        return [self._propose() for _ in range(n)]

    def _propose(self) -> Any:
        arch = self.novelty.take_preferred()  # warm start: the preferred architectures are the first asks
        if arch is not None:
            return self._enqueued(arch)
        for _ in range(self.max_retries + 1):
            number, indices = self._ask_study()
            arch = self.space.decode(indices)
            key = self.space.key(arch)
            if self.novelty.is_new(arch):
                break
            # A repeat: tell TPE what is known (a pending or failed one counts as failed) and ask again.
            self._tell_study(number, self.scores.get(key))
        else:
            return self._enqueued(self.novelty.sample())
        self.novelty.add(arch)
        self.numbers.setdefault(key, []).append(number)
        return arch

    def _enqueued(self, arch: Any) -> Any:
        """Propose `arch` (not TPE's choice) through the study, so TPE learns from its result."""
        number, _ = self._ask_study(self.space.encode(arch))
        self.novelty.add(arch)
        self.numbers.setdefault(self.space.key(arch), []).append(number)
        return arch

    def tell(self, trials) -> None:
        for trial in trials:
            key = self.space.key(trial.arch)
            score = trial.score() if math.isfinite(trial.score()) else None
            self.scores[key] = score
            self._tell_study(self.numbers[key].pop(0), score)
            if not self.numbers[key]:
                del self.numbers[key]

    # --- state: the event history, replayed on load -----------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "seen": self.novelty.state(), "events": self.events, "asks": self.asks,
                "numbers": self.numbers, "scores": self.scores}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.novelty.load(state["seen"])
        self.study = self.optuna.create_study(direction="maximize", sampler=self._sampler(0))
        self.events = []
        for event in state["events"]:
            if event[0] == "ask":
                self._ask_study(event[1])
            else:
                self._tell_study(event[1], event[2])
        self.asks = int(state["asks"])
        self.numbers = {key: list(numbers) for key, numbers in state["numbers"].items()}
        self.scores = dict(state["scores"])
