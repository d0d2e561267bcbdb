"""Proposals that avoid architectures already proposed, shared by the multi-trial strategies.

On a tabular benchmark every query counts, so re-proposing a known architecture wastes budget. Random
samples are drawn by rejection; when rejection keeps failing on a small space (most of it seen), the
unseen architectures are enumerated and one is picked uniformly, so nothing repeats until the space is
exhausted. A warm start (`Strategy.warm_start`) hands over preferred architectures, best first: fresh
samples take those first, so every strategy whose first proposals are fresh samples starts from them.
"""

from __future__ import annotations

import itertools
import random
from typing import Any, Callable, Sequence

from nasrun.spaces import SearchSpace

REJECTION_TRIES = 32
ENUMERATION_LIMIT = 200_000   # spaces up to this many encodings can be listed when rejection fails


class Novelty:
    """The keys of every architecture proposed so far, and fresh samples / children that avoid them."""

    def __init__(self, space: SearchSpace, rng: random.Random, preferred: Sequence[Any] = ()):
        self.space, self.rng = space, rng
        self.seen: set[str] = set()
        self.preferred = [space.to_json(arch) for arch in preferred]  # warm-start proposals not made yet
        self._all: list[tuple[str, Any]] | None = None

    def is_new(self, arch: Any) -> bool:
        return self.space.key(arch) not in self.seen

    def add(self, arch: Any) -> Any:
        self.seen.add(self.space.key(arch))
        return arch

    def take_preferred(self) -> Any | None:
        """The next warm-start architecture never proposed before, or None when none is left."""
        while self.preferred:
            arch = self.space.from_json(self.preferred.pop(0))
            if self.is_new(arch):
                return self.add(arch)
        return None

    def sample(self) -> Any:
        """A warm-start architecture while any is left; then a uniform sample never proposed before (a
        repeat only once the whole space was proposed)."""
        preferred = self.take_preferred()
        if preferred is not None:
            return preferred
        for _ in range(REJECTION_TRIES):
            arch = self.space.sample(self.rng)
            if self.is_new(arch):
                return self.add(arch)
        unseen = [arch for key, arch in self._enumerate() if key not in self.seen]
        return self.add(self.rng.choice(unseen) if unseen else arch)

    def child(self, make: Callable[[], Any]) -> Any:
        """`make()` (a mutation, a crossover) retried until it gives a new architecture; else a fresh sample."""
        for _ in range(REJECTION_TRIES):
            arch = make()
            if self.is_new(arch):
                return self.add(arch)
        return self.sample()

    def _enumerate(self) -> list[tuple[str, Any]]:
        """Every (key, architecture) of a small space, in encoding order; empty for large spaces."""
        if self._all is None:
            self._all = []
            if self.space.size() <= ENUMERATION_LIMIT:
                ranges = [range(len(d.choices)) for d in self.space.decisions()]
                by_key = {}
                for indices in itertools.product(*ranges):
                    arch = self.space.decode(indices)
                    if self.space.allows(arch):
                        by_key.setdefault(self.space.key(arch), arch)
                self._all = list(by_key.items())
        return self._all

    def state(self) -> dict:
        return {"keys": sorted(self.seen), "preferred": self.preferred}

    def load(self, state: dict | list) -> None:
        """Restore `state()`; a plain list of keys is the state of checkpoints written before warm starts."""
        state = {"keys": state, "preferred": []} if isinstance(state, list) else state
        self.seen, self.preferred = set(state["keys"]), list(state["preferred"])
