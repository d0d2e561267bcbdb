"""Ranking agreement of two estimators on the same architectures: Kendall τ (tau-b), Spearman ρ, top-k
overlap and precision@k, and a scatter plot. Used by `nasrun-correlate`."""

from __future__ import annotations

import math
from pathlib import Path

from nasrun.reports.figures import new_figure, save_figure


def average_ranks(values: list[float]) -> list[float]:
    """Ranks 1..n, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def pearson(a: list[float], b: list[float]) -> float:
    n = len(a)
    mean_a, mean_b = sum(a) / n, sum(b) / n
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b))
    var_a, var_b = sum((x - mean_a) ** 2 for x in a), sum((y - mean_b) ** 2 for y in b)
    return cov / math.sqrt(var_a * var_b) if var_a > 0 and var_b > 0 else math.nan


def spearman(a: list[float], b: list[float]) -> float:
    return pearson(average_ranks(a), average_ranks(b))


def kendall_tau_b(a: list[float], b: list[float]) -> float:
    """Kendall's τ-b (ties in either list corrected for), by counting every pair."""
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denominator if denominator else math.nan


def top(values: list[float], k: int) -> set[int]:
    return set(sorted(range(len(values)), key=lambda i: -values[i])[:k])


def agreement(a: list[float], b: list[float], ks=(5, 10, 20), good_fraction: float = 0.1) -> dict:
    """How well scores `a` rank the architectures as scores `b` do (b: the reference).
    top-k overlap: |top-k by a ∩ top-k by b| / k; precision@k: the share of a's top k that are among b's
    best `good_fraction` (at least one architecture)."""
    n = len(a)
    good = top(b, max(1, round(good_fraction * n)))
    result = {"n": n, "kendall_tau": kendall_tau_b(a, b), "spearman_rho": spearman(a, b), "top_k": {}}
    for k in (k for k in ks if k <= n):
        chosen = top(a, k)
        result["top_k"][str(k)] = {"overlap": len(chosen & top(b, k)) / k, "precision": len(chosen & good) / k}
    return result


def plot_agreement(a: list[float], b: list[float], labels: tuple[str, str], title: str, path: str | Path) -> Path:
    fig = new_figure(5.5, 4.5)
    ax = fig.add_subplot()
    ax.scatter(b, a, s=12, alpha=0.7)
    ax.set_xlabel(labels[1])
    ax.set_ylabel(labels[0])
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
