"""Search strategies: one file per strategy, all on the interface in `base.py`."""

from nasrun.strategies.base import OneShotStrategy, Proposal, RandomStart, SearchContext, Strategy

__all__ = ["OneShotStrategy", "Proposal", "RandomStart", "SearchContext", "Strategy"]
