"""Zero-cost warm start for any multi-trial strategy (`strategy.warmup.proxy=synflow
strategy.warmup.candidates=N`): before the first ask, score N distinct random architectures with the proxy
(a list of proxies votes by rank among the candidates) and hand the best `keep` of them to the strategy,
which proposes them first (its initial population, start points or startup trials).

The candidates are drawn from the run seed and every network is initialised from it, so the same seed
warms up the same way. The warm-up costs no trial; what it scored and kept goes to `warmup.json` and the
summary. A resumed run does not warm up again: the strategy's saved state holds what it has not proposed.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from typing import TYPE_CHECKING

from nasrun.rundir import RunDir, atomic_write_json
from nasrun.run.proxy_scoring import bind_scorer, proxies_need_data, scorer
from nasrun.state import read_json_object
from nasrun.strategies import Strategy
from nasrun.strategies.novelty import Novelty

if TYPE_CHECKING:
    from nasrun.estimators.zero_cost import ZeroCost

log = logging.getLogger("nasrun")


def warmup_scorer(strategy: Strategy) -> ZeroCost | None:
    """The warm start's proxy scorer (a ConfigError for an unknown proxy), None without a warm start."""
    settings = strategy.warmup
    if settings.proxy is None:
        return None
    return scorer(settings.proxy, settings.batch_size, settings.batches, "auto", "strategy.warmup")


def warmup_needs_data(strategy: Strategy, space) -> bool:
    settings = strategy.warmup
    return proxies_need_data(settings.proxy, space, settings.batch_size, settings.batches)


def warm_start(strategy: Strategy, space, data, hardware, seed: int, network_shape: dict, run_dir=None) -> dict | None:
    """Score the candidates, warm-start `strategy` (before its `bind`) and return what the summary records."""
    zero_cost = warmup_scorer(strategy)
    if zero_cost is None:
        return None
    start = time.perf_counter()
    bind_scorer(zero_cost, space, data, hardware, seed, network_shape, "strategy.warmup")
    settings = strategy.warmup
    novelty = Novelty(space, random.Random(seed * 104_729 + 3))
    candidates = [novelty.sample() for _ in range(min(settings.candidates, space.size()))]
    raw = [zero_cost.proxy_scores(arch) for arch in candidates]
    zero_cost.rank_against(raw)
    scores = [zero_cost.combined(r) if all(math.isfinite(v) for v in r.values()) else -math.inf for r in raw]
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))
    kept = [i for i in order[:settings.kept] if scores[i] > -math.inf]
    chosen = set(kept)
    strategy.warm_start([candidates[i] for i in kept])
    record = {"proxy": settings.proxy, "candidates": len(candidates), "kept": len(kept),
              "undefined": sum(s == -math.inf for s in scores), **zero_cost.counts,
              "seconds": round(time.perf_counter() - start, 3)}
    log.info("warm start: %s", json.dumps(record))
    if run_dir is not None:
        atomic_write_json(RunDir(run_dir).warmup, {**record, "architectures": [
            {"arch": space.to_json(candidates[i]), "score": scores[i], "kept": i in chosen,
             **{f"zc_{k}": v for k, v in raw[i].items()}} for i in order]})
    return record


def recorded_warm_start(run_dir) -> dict | None:
    """What a run's warm start recorded (for the summary of a resumed run), None without one."""
    path = RunDir(run_dir).warmup
    if run_dir is None or not path.is_file():
        return None
    return {k: v for k, v in read_json_object(path, "warm start record").items() if k != "architectures"}
