"""Search spaces: one file per space. Each exposes its architectures as plain JSON data and as a
fixed list of categorical decisions, so that every strategy works on every space."""

import importlib
import importlib.util

from nasrun.plugins import import_submodules
from nasrun.spaces.base import Decision, Graph, SearchSpace

__all__ = ["Decision", "Graph", "SearchSpace", "space_class"]


def space_class(name: str) -> type[SearchSpace] | None:
    """The space class whose `name` is `name`: looked for in this package's module of that name first
    (drawing an NB201 cell then loads no other space's network code), else in every module of it."""
    if isinstance(name, str) and name.isidentifier() and importlib.util.find_spec(f"{__name__}.{name}"):
        importlib.import_module(f"{__name__}.{name}")
        found = known_spaces()
        if name in found:
            return found[name]
    import_submodules(__name__)
    return known_spaces().get(name)


def known_spaces() -> dict[str, type[SearchSpace]]:
    """Every space class imported so far, by its `name`."""
    found = {}
    pending = list(SearchSpace.__subclasses__())
    while pending:
        cls = pending.pop()
        found.setdefault(cls.name, cls)
        pending += cls.__subclasses__()
    return found
