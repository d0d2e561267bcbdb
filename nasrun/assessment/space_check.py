"""Search-space design checks: warn (never fail) when a space breaks the usual design principles.

Checked, from the facts a space reports through `design_facts()` and from `size()`:
- fewer than 3 candidate operations (little for a search to choose between);
- no identity / skip operation and no skip connections (depth cannot be bypassed, deep nets train worse);
- channel widths that shrink as the network goes deeper, or reductions not in increasing order;
- a budget that covers a silly fraction of the space: at least HALF_SPACE of it (exhaustive
  enumeration would settle the question) or below TINY_FRACTION of it (the search is a lottery).
"""

from __future__ import annotations

import logging
import math

from nasrun.console import console, escape

log = logging.getLogger("nasrun")

HALF_SPACE = 0.5
TINY_FRACTION = 1e-25
MIN_OPS = 3


def design_warnings(space, budget: int) -> list[str]:
    """One sentence per design problem of `space` for a run of `budget` trials."""
    facts = space.design_facts() if hasattr(space, "design_facts") else {}
    warnings = []
    ops = facts.get("ops")
    if ops is not None and len(ops) < MIN_OPS:
        warnings.append(f"only {len(ops)} operation(s) {ops}: a search needs at least {MIN_OPS} to choose between")
    if ops is not None and not facts.get("skip_ops") and not facts.get("has_skip_connections"):
        warnings.append("no identity/skip operation and no skip connections: layers can never be bypassed")
    channels = facts.get("channels")
    if channels and any(b < a for a, b in zip(channels, channels[1:])):
        warnings.append(f"channel widths {channels} shrink somewhere: widths usually grow with depth")
    reductions = facts.get("reductions")
    if reductions and list(reductions) != sorted(reductions):
        warnings.append(f"reductions at {list(reductions)} are not in increasing order")
    warnings.extend(budget_warnings(space.size(), budget))
    return warnings


def budget_warnings(size: int, budget: int) -> list[str]:
    log_fraction = math.log10(budget) - math.log10(size)
    if log_fraction >= math.log10(HALF_SPACE):
        return [f"the budget of {budget} trials covers {min(budget / size, 1):.0%} of the space's {size:,} "
                f"architectures: enumerate it, or search a larger space"]
    if log_fraction < math.log10(TINY_FRACTION):
        return [f"the budget of {budget} trials covers 1e{log_fraction:.0f} of the space's "
                f"~1e{math.log10(size):.0f} architectures: shrink the space or use a weight-sharing/one-shot search"]
    return []


def check_space(space, budget: int) -> list[str]:
    """Log and print every design warning of `space`; return them (nothing is raised)."""
    warnings = design_warnings(space, budget)
    for warning in warnings:
        log.warning("search space %s: %s", space.name, warning)
        console.print(f"[bold yellow]nasrun: search-space warning:[/] {escape(f'{space.name}: {warning}')}", highlight=False)
    return warnings
