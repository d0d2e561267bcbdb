"""Search spaces: one file per space. Each exposes its architectures as plain JSON data and as a
fixed list of categorical decisions, so that every strategy works on every space."""

from nasrun.plugins import import_submodules
from nasrun.spaces.base import Decision, Graph, SearchSpace

__all__ = ["Decision", "Graph", "SearchSpace", "space_class"]


def space_class(name: str) -> type[SearchSpace] | None:
    """The space class whose `name` is `name` (every module of this package is imported first)."""
    import_submodules(__name__)
    found = {}
    pending = list(SearchSpace.__subclasses__())
    while pending:
        cls = pending.pop()
        found.setdefault(cls.name, cls)
        pending += cls.__subclasses__()
    return found.get(name)
