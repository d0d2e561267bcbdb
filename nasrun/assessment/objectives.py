"""Objectives and constraints of a run: scalarised fitness, feasibility, dominance and Pareto fronts.

Config (top level):
  objectives:   [{metric: val_accuracy, direction: max}, {metric: latency_ms, direction: min, weight: 0.5}]
                (null: maximise the estimator's own score, `Estimator.score_metric`: val_accuracy, or
                zc_score for the zero-cost estimator)
  constraints:  {latency_ms: {max: 5}, params: {max: 1e6}}
  scalarization: weighted_sum      # or mnasnet

With constraints, every trial gets `feasible` (1/0) and `constraint_violation` (sum of relative excesses,
0 when feasible); when the run has constraints or anything beyond "maximise val_accuracy" it also gets `fitness`, the
scalar that `Trial.score()` ranks by:
  weighted_sum  Σ weight · (+1 for max, -1 for min) · value / scale
  mnasnet       primary · Π (value / target)^(-weight) over the other objectives (MnasNet's soft reward,
                weight 0.07 by default); the primary (first) objective must be maximised.
`scale` (and `target`) default to the metric's constraint bound, else to DEFAULT_SCALES. Infeasible
trials get fitness -inf, so they are never the best trial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from nasrun.errors import ConfigError
from nasrun.records import Trial

DEFAULT_SCALES = {"val_accuracy": 1.0, "test_accuracy": 1.0, "params": 1e6, "flops": 1e8, "macs": 5e7,
                  "latency_ms": 10.0, "latency_ms_batch": 100.0, "memory_mb": 100.0}
SCALARIZATIONS = ("weighted_sum", "mnasnet")


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str = "max"
    weight: float | None = None
    scale: float | None = None

    @property
    def sign(self) -> int:
        """+1 when larger is better, -1 when smaller is better."""
        return 1 if self.direction == "max" else -1


@dataclass(frozen=True)
class Constraint:
    metric: str
    min: float | None = None
    max: float | None = None

    def violation(self, value: float | None) -> float:
        """0 when satisfied; else the excess relative to the bound (a missing value violates by 1)."""
        if value is None or not math.isfinite(value):
            return 1.0
        excess = 0.0
        if self.max is not None and value > self.max:
            excess += (value - self.max) / max(abs(self.max), 1e-12)
        if self.min is not None and value < self.min:
            excess += (self.min - value) / max(abs(self.min), 1e-12)
        return excess


class Objectives:
    """What a run optimises. Built from the `objectives`, `constraints` and `scalarization` config."""

    def __init__(self, objectives: Sequence[dict] | None = None, constraints: dict | None = None,
                 scalarization: str = "weighted_sum", primary: str = "val_accuracy"):
        if objectives is not None and not isinstance(objectives, (list, tuple)):
            raise ConfigError(f"objectives must be a list of {{metric: NAME, direction: max|min}} entries, "
                              f"got {objectives!r}")
        if constraints is not None and not isinstance(constraints, dict):
            raise ConfigError(f"constraints must be a mapping {{METRIC: {{max: X}} | {{min: Y}}}}, got {constraints!r}")
        self.objectives = [parse_objective(o) for o in (objectives or [{"metric": primary}])]
        self.constraints = [parse_constraint(m, b) for m, b in (constraints or {}).items()]
        if scalarization not in SCALARIZATIONS:
            raise ConfigError(f"scalarization must be one of {list(SCALARIZATIONS)}, got {scalarization!r}")
        if scalarization == "mnasnet" and self.objectives[0].direction != "max":
            raise ConfigError("scalarization=mnasnet needs a maximised first objective (e.g. val_accuracy)")
        self.scalarization = scalarization

    @property
    def multi(self) -> bool:
        return len(self.objectives) >= 2

    @property
    def trivial(self) -> bool:
        """Just "maximise val_accuracy", no constraints: no fitness needed."""
        return not self.constraints and [(o.metric, o.direction) for o in self.objectives] == [("val_accuracy", "max")]

    def metrics(self) -> list[str]:
        """Every metric the objectives and constraints read."""
        names = [o.metric for o in self.objectives] + [c.metric for c in self.constraints]
        return list(dict.fromkeys(names))

    def names(self) -> list[str]:
        return [o.metric for o in self.objectives]

    def check_metrics(self, known: Iterable[str], where: str) -> None:
        """ConfigError naming the first objective or constraint metric that no part of the run records."""
        known = sorted(set(known))
        for key, metric in [("objectives", o.metric) for o in self.objectives] + \
                           [(f"constraints.{c.metric}", c.metric) for c in self.constraints]:
            if metric not in known:
                raise ConfigError(f"{key}: unknown metric {metric!r}: {where} records {known}")

    # --- one trial -------------------------------------------------------------------------------
    def violation(self, metrics: dict) -> float:
        return sum(c.violation(metrics.get(c.metric)) for c in self.constraints)

    def assess(self, trial: Trial) -> None:
        """Mark the trial's feasibility and (unless trivial) set its scalar fitness."""
        if not trial.ok:
            return
        violation = self.violation(trial.metrics)
        if self.constraints:
            trial.metrics["feasible"] = int(violation == 0)
            trial.metrics["constraint_violation"] = round(violation, 6)
        if not self.trivial:
            trial.metrics["fitness"] = self.fitness(trial.metrics) if violation == 0 else -math.inf

    def fitness(self, metrics: dict) -> float:
        values = [metrics.get(o.metric) for o in self.objectives]
        if any(v is None or not math.isfinite(v) for v in values):
            return -math.inf
        if self.scalarization == "mnasnet":
            reward = values[0]
            for objective, value in zip(self.objectives[1:], values[1:]):
                weight = 0.07 if objective.weight is None else objective.weight
                reward *= (max(value, 1e-12) / self.scale(objective)) ** (objective.sign * weight)
            return reward
        return sum((1.0 if o.weight is None else o.weight) * o.sign * v / self.scale(o)
                   for o, v in zip(self.objectives, values))

    def describe_fitness(self) -> str:
        """What `fitness` is, as a formula: e.g. `fitness = val_accuracy - 0.5·latency_ms/10`."""
        if self.scalarization == "mnasnet":
            factors = [f"({o.metric}/{self.scale(o):g})^{o.sign * (0.07 if o.weight is None else o.weight):g}"
                       for o in self.objectives[1:]]
            formula = " · ".join([self.objectives[0].metric, *factors]) + " (MnasNet)"
        else:
            terms = []
            for o in self.objectives:
                coefficient = o.sign * (1.0 if o.weight is None else o.weight)
                scaled = o.metric if self.scale(o) == 1 else f"{o.metric}/{self.scale(o):g}"
                term = scaled if abs(coefficient) == 1 else f"{abs(coefficient):g}·{scaled}"
                terms.append(("- " if coefficient < 0 else "+ ") + term)
            formula = " ".join(terms).removeprefix("+ ")
        violated = "; -inf where a constraint is violated" if self.constraints else ""
        return f"fitness = {formula}{violated}"

    def scale(self, objective: Objective) -> float:
        if objective.scale is not None:
            return objective.scale
        bound = next((c.max if c.max is not None else c.min for c in self.constraints
                      if c.metric == objective.metric and (c.max or c.min)), None)
        return float(bound) if bound else DEFAULT_SCALES.get(objective.metric, 1.0)

    # --- Pareto ----------------------------------------------------------------------------------
    def point(self, trial: Trial) -> tuple[float, ...] | None:
        """The trial's objective values oriented for maximisation, or None if one is missing."""
        values = [trial.metrics.get(o.metric) for o in self.objectives]
        if not trial.ok or any(v is None or not math.isfinite(v) for v in values):
            return None
        return tuple(o.sign * float(v) for o, v in zip(self.objectives, values))

    def pareto_front(self, trials: Iterable[Trial]) -> list[Trial]:
        """The feasible successful trials no other feasible trial dominates (duplicates of a point kept once)."""
        scored = [(t, self.point(t)) for t in trials]
        scored = [(t, p) for t, p in scored if p is not None and self.violation(t.metrics) == 0]
        front, seen = [], set()
        for trial, point in scored:
            if point in seen or any(dominates(other, point) for _, other in scored):
                continue
            seen.add(point)
            front.append(trial)
        return front

    def pareto_record(self, trials: Sequence[Trial]) -> dict:
        """What `pareto.json` holds."""
        front = self.pareto_front(trials)
        return {
            "objectives": [{"metric": o.metric, "direction": o.direction} for o in self.objectives],
            "constraints": {c.metric: {k: v for k, v in (("min", c.min), ("max", c.max)) if v is not None}
                            for c in self.constraints},
            "trials": len(trials),
            "feasible_trials": sum(t.ok and self.violation(t.metrics) == 0 for t in trials),
            "front": [{"trial": t.id, "arch": t.arch, **{o.metric: t.metrics.get(o.metric) for o in self.objectives},
                       "metrics": t.metrics} for t in sorted(front, key=lambda t: t.id)],
        }


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b (both maximised): no worse everywhere, strictly better somewhere."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def non_dominated_sort(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Indices of `points` (maximised) grouped into fronts: front 0 is non-dominated, and so on."""
    n = len(points)
    dominated_by = [[j for j in range(n) if dominates(points[i], points[j])] for i in range(n)]
    count = [sum(dominates(points[j], points[i]) for j in range(n)) for i in range(n)]
    fronts, current = [], [i for i in range(n) if count[i] == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def crowding_distance(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II crowding distance of each point within one front (boundary points get infinity)."""
    n = len(points)
    distance = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for before, here, after in zip(order, order[1:], order[2:]):
            distance[here] += (points[after][m] - points[before][m]) / (high - low)
    return distance


def parse_objective(obj: Any) -> Objective:
    if isinstance(obj, str):
        obj = {"metric": obj}
    if not isinstance(obj, dict) or "metric" not in obj:
        raise ConfigError(f"objectives: each entry is {{metric: NAME, direction: max|min, weight: W}}, got {obj!r}")
    unknown = set(obj) - {"metric", "direction", "weight", "scale", "target"}
    if unknown:
        raise ConfigError(f"objectives: unknown keys {sorted(unknown)} in {obj!r}")
    direction = obj.get("direction", "max")
    if direction not in ("max", "min"):
        raise ConfigError(f"objectives: direction of {obj['metric']} must be max or min, got {direction!r}")
    if not isinstance(obj["metric"], str):
        raise ConfigError(f"objectives: metric must be a name, got {obj['metric']!r}")
    scale = number(obj.get("scale", obj.get("target")), f"objectives: scale/target of {obj['metric']}")
    if scale is not None and scale <= 0:
        raise ConfigError(f"objectives: scale/target of {obj['metric']} must be positive, got {scale}")
    weight = number(obj.get("weight"), f"objectives: weight of {obj['metric']}")
    return Objective(obj["metric"], direction, weight, scale)


def number(value: Any, what: str) -> float | None:
    """`value` as a finite float (None stays None), else a ConfigError saying `what` it is."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def parse_constraint(metric: str, bounds: Any) -> Constraint:
    if not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"}:
        raise ConfigError(f"constraints.{metric}: expected {{max: X}} and/or {{min: Y}}, got {bounds!r}")
    bound = {k: number(v, f"constraints.{metric}.{k}") for k, v in bounds.items()}
    return Constraint(str(metric), bound.get("min"), bound.get("max"))
