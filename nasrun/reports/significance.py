"""How sure a sweep's comparison is: a t confidence interval of each strategy's mean over seeds, ranks that
tie equal means, and a two-sided Mann-Whitney U test per pair of strategies (scipy), exact by permutation
of the pooled values when that is at most EXACT_LIMIT splits (ties handled, as few seeds need), else the
normal approximation. Verdicts use Holm-adjusted p-values over all pairs, at ALPHA.
"""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
EXACT_LIMIT = 100_000       # splits of the pooled values enumerated for an exact p-value
TIE_TOLERANCE = 1e-12


def t_interval(values: list[float]) -> tuple[float, float] | None:
    """The CONFIDENCE t interval of the mean (None below two values)."""
    if len(values) < 2:
        return None
    mean, half = statistics.mean(values), 0.0
    sd = statistics.stdev(values)
    if sd > 0:
        half = stats.t.ppf((1 + CONFIDENCE) / 2, len(values) - 1) * sd / math.sqrt(len(values))
    return mean - float(half), mean + float(half)


def tied_ranks(means: list[float]) -> list[int]:
    """Competition ranks of `means` sorted best (largest) first: equal means share a rank (1, 1, 3)."""
    ranks = []
    for index, mean in enumerate(means):
        tied = index and abs(mean - means[index - 1]) <= TIE_TOLERANCE
        ranks.append(ranks[-1] if tied else index + 1)
    return ranks


def mann_whitney(x: list[float], y: list[float]) -> tuple[float, float, str]:
    """(U of x, two-sided p, method) of the Mann-Whitney U test of x against y."""
    u = float(stats.mannwhitneyu(x, y, alternative="two-sided").statistic)
    if math.comb(len(x) + len(y), len(x)) > EXACT_LIMIT:
        return u, float(stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic").pvalue), "asymptotic"
    return u, exact_p(x, y), "exact"


def exact_p(x: list[float], y: list[float]) -> float:
    """Two-sided p of U over every split of the pooled values into groups of len(x) and len(y) (ties in
    mid-ranks): twice the smaller tail, at most 1, as scipy's permutation tests count it."""
    ranks = stats.rankdata(np.array(x + y, dtype=float))
    n = len(x)
    observed = ranks[:n].sum()
    sums = ranks[np.array(list(itertools.combinations(range(len(ranks)), n)))].sum(axis=1)
    tolerance = 1e-9 * max(1.0, abs(observed))
    lower, upper = np.mean(sums <= observed + tolerance), np.mean(sums >= observed - tolerance)
    return float(min(1.0, 2 * min(lower, upper)))


def smallest_p(n_x: int, n_y: int) -> float:
    """The smallest two-sided p an exact test of groups this small can give (all of one above the other)."""
    return min(1.0, 2 / math.comb(n_x + n_y, n_x))


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted, running = [0.0] * len(p_values), 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - position) * p_values[index]))
        adjusted[index] = running
    return adjusted


def compare_pairs(groups: dict[str, list[float]]) -> list[dict]:
    """Every pair of groups with at least one value each: U, p, Holm-adjusted p and a verdict."""
    pairs = []
    for (a, x), (b, y) in itertools.combinations(groups.items(), 2):
        if not x or not y:
            continue
        u, p, method = mann_whitney(x, y)
        pairs.append({"a": a, "b": b, "n_a": len(x), "n_b": len(y),
                      "mean_difference": statistics.mean(x) - statistics.mean(y), "u": u, "p": p, "method": method,
                      "smallest_possible_p": smallest_p(len(x), len(y)), "identical": sorted(x) == sorted(y)})
    for pair, adjusted in zip(pairs, holm([pair["p"] for pair in pairs])):
        pair["p_holm"] = adjusted
        pair["verdict"] = "indistinguishable" if adjusted >= ALPHA else "different"
        pair["better"] = None if adjusted >= ALPHA else pair["a"] if pair["mean_difference"] > 0 else pair["b"]
    return pairs


def pair_line(pair: dict, several: bool) -> str:
    """E.g. "random and evolution: indistinguishable at n=3 seeds (p=1.00; identical results)"."""
    n = f"n={pair['n_a']}" if pair["n_a"] == pair["n_b"] else f"n={pair['n_a']} and {pair['n_b']}"
    p = f"p={pair['p']:.3g}" + (f", Holm-adjusted {pair['p_holm']:.3g}" if several else "")
    if pair["identical"]:
        p += "; identical results"
    elif pair["verdict"] == "indistinguishable" and pair["smallest_possible_p"] >= ALPHA:
        p += f"; {n} seeds can never reach p<{ALPHA:g}, run more seeds"
    if pair["better"] is None:
        return f"{pair['a']} and {pair['b']}: indistinguishable at {n} seeds ({p})"
    worse = pair["b"] if pair["better"] == pair["a"] else pair["a"]
    return f"{pair['better']} better than {worse} at {n} seeds ({p})"
