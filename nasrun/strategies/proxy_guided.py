"""Proxy-guided search: decide which architectures to train from cheap signals, and learn from the
results how far to trust them.

1. A candidate pool is scored with several zero-cost proxies: on NAS-Bench-201 (C=16, N=5) the whole space,
   looked up in the packaged table; elsewhere `pool` architectures sampled from the seed, plus mutants of
   each new best result, scored on the run's data by the runner's zero-cost scorer (as the warm start is).
2. The first `initial` queries are the pool's best by the proxies' vote (mean quantile rank).
3. Then a Gaussian process over the proxy ranks and the architecture's encoding (proxy_model.py) is fit
   to every result so far; its fitted weight on the proxy kernel is the trust in the proxies (0..1).
   Among the `focus` fraction of the pool the vote ranks best (at least 10), the unproposed candidate of
   highest expected improvement is queried: the proxies say where to look, the model what to train.
4. After `patience` results without improvement the proxies have stopped helping: the search narrows to
   the neighbours (within `radius` decisions) of the best trained architecture, still ranked by the
   model, i.e. local search whose steps are ordered by everything learned so far; a new best widens it
   again.

Every trial records what was predicted for it (`proxy_<name>` raw scores, `proxy_vote`, `predicted_score`,
`predicted_std`, `proxy_trust`, `guide_phase`, `proxy_source`); summary.json counts the zero-cost lookups
and computations apart from the queries. Nothing depends on the budget, so the first b queries of a long
search are those of a b-query search. The state is plain JSON (results, computed scores, counters).
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from nasrun.errors import ConfigError
from nasrun.strategies.base import ProxySettings, Strategy, rng_from_state, rng_state
from nasrun.strategies.novelty import Novelty
from nasrun.strategies.proxy_model import PoolGP, expected_improvement, first_best, quantile_ranks

DEFAULT_PROXIES = ("synflow",)   # why: conf/strategy/proxy_guided.yaml


def finite_or_none(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class Pool:
    """The candidates with their proxy scores: quantile ranks, vote, encodings, the model over them, which
    of them were never proposed (`open`), and the `focus` fraction (at least `min_focus`) best by the vote."""

    def __init__(self, space, archs: list, raw: np.ndarray, sources: list[str], proposed: set[str], focus: float,
                 min_focus: int = 10):
        self.archs, self.raw, self.sources = archs, raw, sources
        keys = [space.key(arch) for arch in archs]
        self.positions = {key: position for position, key in enumerate(keys)}
        self.z = quantile_ranks(raw)
        self.vote = self.z.mean(axis=1)
        self.codes = np.array([space.encode(arch) for arch in archs])
        self.model = PoolGP(self.z, self.codes)
        top = max(min_focus, math.ceil(focus * len(archs)))
        self.focused = np.zeros(len(archs), dtype=bool)
        self.focused[np.argsort(-self.vote, kind="stable")[:top]] = True
        self.open = np.array([key not in proposed for key in keys], dtype=bool)


class ProxyGuided(Strategy):
    warm_startable = False   # its first proposals are the proxies' own choice

    def __init__(self, proxies: list[str] | tuple[str, ...] = DEFAULT_PROXIES, initial: int = 1, focus: float = 0.01,
                 patience: int = 3, radius: int = 1, pool: int = 200, mutations: int = 20, batch_size: int = 64,
                 batches: int = 1, table: bool | str = "auto"):
        names = [proxies] if isinstance(proxies, str) else list(proxies or [])
        if not names or len(set(names)) < len(names):
            raise ConfigError(f"proxy_guided: proxies must be a non-empty list of distinct names, got {proxies!r}")
        for key, value, least in (("initial", initial, 1), ("patience", patience, 1), ("radius", radius, 1),
                                  ("pool", pool, 2), ("mutations", mutations, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"proxy_guided: {key} must be an integer >= {least}, got {value!r}")
        if isinstance(focus, bool) or not isinstance(focus, (int, float)) or not 0 < focus <= 1:
            raise ConfigError(f"proxy_guided: focus must be a fraction in (0, 1], got {focus!r}")
        self.proxies, self.focus = tuple(names), float(focus)
        self.initial, self.patience, self.radius = initial, patience, radius
        self.pool_size, self.mutations = pool, mutations
        self.proxy_settings = ProxySettings(self.proxies, batch_size, batches, table)

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        if getattr(self, "proxy_scorer", None) is None:
            raise ConfigError("proxy_guided: no zero-cost scorer was attached (the runner attaches one)")
        self.novelty = Novelty(space, self.rng, self.preferred)
        self.pool_rng = random.Random(self.seed * 7_919 + 11)   # the candidates, apart from the proposals
        self.results: list[list] = []        # [arch JSON, score] of every successful trial
        self.scored: list[list] = []         # computed pools: [arch JSON, raw scores, source] of every member
        self.notes: dict[str, dict] = {}     # key -> what was predicted, for proposals not recorded yet
        self.best, self.stale = -math.inf, 0
        self.table_pool: tuple | None = None  # (architectures, scores) of the NB201 table, when it answers
        self.cache: Pool | None = None

    # --- the pool ---------------------------------------------------------------------------------------
    def _pool(self) -> Pool:
        """The scored candidates (built once, rebuilt when a computed pool grows)."""
        if self.cache is not None:
            return self.cache
        if self.table_pool is None and not self.scored:
            self.table_pool = self.proxy_scorer.table_pool()
            if self.table_pool is None:
                self._score_into_pool(self._fresh_samples(self.pool_size))
        if self.table_pool is not None:
            archs, raw = self.table_pool
            sources = [self.proxy_scorer.last_source] * len(archs)
        else:
            archs = [self.space.from_json(arch) for arch, _, _ in self.scored]
            raw = np.array([[np.nan if v is None else v for v in values] for _, values, _ in self.scored])
            sources = [source for _, _, source in self.scored]
        self.cache = Pool(self.space, archs, raw, sources, self.novelty.seen, self.focus)
        return self.cache

    def _fresh_samples(self, count: int) -> list:
        keys, found = {self.space.key(arch) for arch, _, _ in self.scored}, []
        for _ in range(count * 20):
            if len(found) == count or len(keys) >= self.space.size():
                break
            arch = self.space.sample(self.pool_rng)
            if self.space.key(arch) not in keys:
                keys.add(self.space.key(arch))
                found.append(arch)
        return found

    def _score_into_pool(self, archs: list) -> None:
        known = {self.space.key(arch) for arch, _, _ in self.scored}
        for arch in archs:
            if self.space.key(arch) in known:
                continue
            values = self.proxy_scorer.proxy_scores(arch)
            self.scored.append([self.space.to_json(arch), [finite_or_none(values[n]) for n in self.proxies],
                                self.proxy_scorer.last_source])
            known.add(self.space.key(arch))
        self.cache = None   # the ranks changed

    def _grow_pool(self, around: Any) -> None:
        """Computed pools: add neighbours and mutants of a new best architecture."""
        self._pool()   # a resumed search learns here, before any ask, whether its pool is the table's
        if self.table_pool is not None or not self.mutations:
            return
        arch = self.space.from_json(around)
        neighbours = self.space.neighbours(arch)
        self.pool_rng.shuffle(neighbours)
        mutants = [self.space.mutate(arch, self.pool_rng) for _ in range(self.mutations)]
        self._score_into_pool([*neighbours[:self.mutations], *mutants])

    # --- ask / tell -------------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Any]:
        proposals = []
        for _ in range(n):
            pool = self._pool()
            choice, note = self._choose(pool)
            if choice is None:
                arch, note = self.novelty.sample(), {"guide_phase": "random"}
            else:
                pool.open[choice] = False
                arch = self.novelty.add(pool.archs[choice])
            self.notes[self.space.key(arch)] = note
            proposals.append(arch)
        return proposals

    def _choose(self, pool: Pool) -> tuple[int | None, dict]:
        """The pool position to query next and what was predicted for it (None: the pool is used up)."""
        candidates = np.flatnonzero(pool.open)
        if not len(candidates):
            return None, {}
        results = [(pool.positions[key], score) for key, score in
                   ((self.space.key(arch), score) for arch, score in self.results) if key in pool.positions]
        phase, prediction = "proxies", {}
        if len(results) < self.initial:
            choice = int(candidates[first_best(pool.vote[candidates])])
        else:
            positions, y = [p for p, _ in results], np.array([s for _, s in results])
            if self.stale >= self.patience:
                best = positions[int(np.argmax(y))]
                near = candidates[(pool.codes[candidates] != pool.codes[best]).sum(axis=1) <= self.radius]
                if len(near):
                    candidates, phase = near, "local"
            if phase == "proxies":
                focused = candidates[pool.focused[candidates]]
                candidates = focused if len(focused) else candidates
            pool.model.fit(positions, y)
            mean, std = pool.model.predict(candidates)
            index = first_best(expected_improvement(mean, std, float(y.max())))
            choice = int(candidates[index])
            prediction = {"predicted_score": float(mean[index]), "predicted_std": float(std[index]),
                          "proxy_trust": pool.model.hyper.weight}
        return choice, {"guide_phase": phase, "proxy_vote": float(pool.vote[choice]), **prediction,
                        **{f"proxy_{n}": finite_or_none(float(v)) for n, v in zip(self.proxies, pool.raw[choice])},
                        "proxy_source": pool.sources[choice]}

    def tell(self, trials) -> None:
        for trial in trials:
            self.notes.pop(self.space.key(trial.arch), None)
            if not (trial.ok and math.isfinite(trial.score())):
                continue
            self.results.append([trial.arch, trial.score()])
            if trial.score() > self.best:
                self.best, self.stale = trial.score(), 0
                self._grow_pool(trial.arch)
            else:
                self.stale += 1

    def trial_notes(self, arch: Any) -> dict:
        return dict(self.notes.get(self.space.key(arch), {}))

    def report(self) -> dict:
        if self.table_pool is not None:
            looked_up, computed = len(self.table_pool[0]), 0
        else:
            computed = sum(source == "computed" for _, _, source in self.scored)
            looked_up = len(self.scored) - computed
        return {"zero_cost": {"proxies": list(self.proxies), "looked_up": looked_up, "computed": computed,
                              "results": len(self.results)}}

    # --- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "seen": self.novelty.state(), "pool_rng": rng_state(self.pool_rng),
                "results": self.results, "scored": self.scored, "notes": self.notes, "best": finite_or_none(self.best),
                "stale": self.stale}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.novelty.load(state["seen"])
        self.pool_rng.setstate(rng_from_state(state["pool_rng"]))
        self.results = [list(r) for r in state["results"]]
        self.scored = [list(s) for s in state["scored"]]
        self.notes = dict(state["notes"])
        self.best = -math.inf if state["best"] is None else float(state["best"])
        self.stale, self.cache = int(state["stale"]), None
