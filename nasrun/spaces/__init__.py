"""Search spaces: one file per space. Each exposes its architectures as plain JSON data and as a
fixed list of categorical decisions, so that every strategy works on every space."""

from nasrun.spaces.base import Decision, SearchSpace

__all__ = ["Decision", "SearchSpace"]
