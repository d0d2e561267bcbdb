"""Zero-cost proxies a strategy reads during its search (`Strategy.proxy_settings`, e.g. proxy_guided) or
before it (the warm start, nasrun/run/warm_start.py): a ZeroCost scorer bound to the run, which looks
the scores up in the NB201 zero-cost table where that holds them (nasrun/estimators/nb201_zc.py) and
computes them on the run's data otherwise. Also the development-only restriction of the NB201 space to
the rows that table holds so far (`search_space.partial_table=true`).
"""

from __future__ import annotations

import logging
from typing import Sequence

from typing import TYPE_CHECKING

from nasrun.errors import ConfigError
from nasrun.strategies import Strategy

if TYPE_CHECKING:
    from nasrun.estimators.zero_cost import ZeroCost

# The proxies, their table and ZeroCost load torch and numpy: imported by the functions below, which a run
# calls only when a strategy or its warm start reads proxies (a plain table lookup never loads torch).

log = logging.getLogger("nasrun")


def restrict_to_scored(space) -> str | None:
    """With `search_space.partial_table` (true: every proxy; or a list of proxies): keep only the NB201
    architectures the zero-cost table has scored by them; returns the label every output carries
    ("partial table: ..."), None without the option."""
    wanted = getattr(space, "partial_table", False)
    if wanted is False:
        return None
    from nasrun.estimators.nb201_zc import load_zc_table

    table = load_zc_table()
    names = None if wanted is True else list(wanted)
    unknown = sorted(set(names or []) - set(table.proxies))
    if unknown or not table.done(names):
        raise ConfigError(f"search_space.partial_table: the NB201 zero-cost table has no rows scored by "
                          f"{names or 'every proxy'} yet (its proxies: {list(table.proxies)}); "
                          "`python scripts/nb201_zc_table.py` scores them")
    space.restrict(table.archs(names))
    label = f"partial table: the space is the {table.describe(names)} scored so far"
    log.warning("search space restricted (%s)", label)
    return label


def proxies_need_data(proxies: str | Sequence[str] | None, space, batch_size: int = 64, batches: int = 1) -> bool:
    """Whether scoring `proxies` needs training data: some need it and the zero-cost table cannot stand in."""
    names = [proxies] if isinstance(proxies, str) else list(proxies or [])
    if not names:
        return False
    from nasrun.estimators.nb201_zc import table_fits
    from nasrun.estimators.proxies import PROXIES

    wanted = [name for name in names if name in PROXIES and PROXIES[name].needs_data]
    return bool(wanted) and not table_fits(space, names, batch_size, batches)


def scorer(proxies, batch_size: int, batches: int, table, where: str) -> ZeroCost:
    """A ZeroCost scorer of these settings; a bad setting is a ConfigError naming `where` (e.g. strategy.warmup)."""
    from nasrun.estimators.zero_cost import ZeroCost

    try:
        return ZeroCost(proxy=proxies, batch_size=batch_size, batches=batches, table=table)
    except ConfigError as err:
        raise ConfigError(str(err).replace("estimator.", f"{where}.", 1)) from None


def bind_scorer(zero_cost: ZeroCost, space, data, hardware, seed: int, network_shape: dict, where: str) -> ZeroCost:
    """Bind `zero_cost` to the run (no data: networks of `network_shape`, looked up where possible)."""
    if data is None and proxies_need_data(zero_cost.proxies, space, zero_cost.batch_size, zero_cost.batches):
        raise ConfigError(f"{where}: a proxy needs training data but this run loads none (a tabular estimator); "
                          "use a data-free proxy (synflow, params, flops), or the NB201 space at C=16, N=5 where the "
                          "zero-cost table holds them")
    zero_cost.shape = None if data is not None else network_shape
    zero_cost.bind(space, data, hardware, None, seed)
    return zero_cost


def strategy_needs_data(strategy: Strategy, space) -> bool:
    settings = strategy.proxy_settings
    return settings is not None and proxies_need_data(settings.proxies, space, settings.batch_size, settings.batches)


def attach_proxies(strategy: Strategy, space, data, hardware, seed: int, network_shape: dict) -> None:
    """Hand a strategy that reads proxies its scorer (before its `bind`)."""
    settings = strategy.proxy_settings
    if settings is None:
        return
    zero_cost = scorer(list(settings.proxies), settings.batch_size, settings.batches, settings.table, "strategy")
    strategy.use_proxies(bind_scorer(zero_cost, space, data, hardware, seed, network_shape, "strategy"))


def check_proxy_settings(strategy: Strategy) -> None:
    """An unknown proxy or bad scorer setting of the strategy, as a ConfigError before anything trains."""
    settings = strategy.proxy_settings
    if settings is not None:
        scorer(list(settings.proxies), settings.batch_size, settings.batches, settings.table, "strategy")
