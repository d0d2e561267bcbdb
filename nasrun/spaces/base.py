"""The search-space interface shared by all strategies and estimators."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from nasrun.errors import InvalidArchitecture
from nasrun.nets.size import NetworkLimits, check_network_size

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Decision:
    """One categorical choice of the space's encoding: a name and its options."""

    name: str
    choices: tuple


@dataclass
class Graph:
    """A small labelled DAG: nodes in drawing order, edges (source, target, label, dashed), and optional
    (x, y) positions for matplotlib (nodes without one are laid out on a row)."""

    title: str
    nodes: list[tuple[str, str]] = field(default_factory=list)
    edges: list[tuple[str, str, str, bool]] = field(default_factory=list)
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)


class SearchSpace:
    """A set of architectures. An architecture is plain JSON data (dicts, lists, strings, numbers).

    Subclasses define `decisions()`, `decode(indices)`, `encode(arch)` and `build(...)`.
    Sampling, mutation, crossover and neighbourhoods have generic defaults on the categorical
    encoding; a space overrides them where its structure knows better.
    """

    name = "space"

    # --- the encoding every strategy works on -------------------------------------------------
    def decisions(self) -> list[Decision]:
        raise NotImplementedError

    def encode(self, arch: Any) -> list[int]:
        """The index of the chosen option for each decision."""
        raise NotImplementedError

    def decode(self, indices: Sequence[int]) -> Any:
        """The architecture for one index per decision."""
        raise NotImplementedError

    def build(self, arch: Any, input_shape: Sequence[int], num_classes: int) -> nn.Module:
        """A freshly initialised network for `arch`."""
        raise NotImplementedError

    # --- generic operations --------------------------------------------------------------------
    def validate(self, arch: Any) -> Any:
        """Return the canonical form of `arch`, or raise InvalidArchitecture."""
        return self.decode(self.encode(arch))

    def key(self, arch: Any) -> str:
        """A hashable identity: two architectures with the same key are the same network."""
        return json.dumps(self.encode(arch))

    def allows(self, arch: Any) -> bool:
        """Whether the search may propose `arch` (a space restricted to a subset answers False outside it)."""
        return True

    def size(self) -> int:
        """How many distinct encodings the space has (an upper bound where encodings alias)."""
        return math.prod(len(d.choices) for d in self.decisions())

    def sample(self, rng: random.Random) -> Any:
        return self.decode([rng.randrange(len(d.choices)) for d in self.decisions()])

    def mutate(self, arch: Any, rng: random.Random) -> Any:
        """Change one decision to another option, retrying until the network really differs."""
        decisions = self.decisions()
        mutable = [i for i, d in enumerate(decisions) if len(d.choices) > 1]
        original = self.key(arch)
        for _ in range(100):
            indices = self.encode(arch)
            position = rng.choice(mutable)
            options = [o for o in range(len(decisions[position].choices)) if o != indices[position]]
            indices[position] = rng.choice(options)
            child = self.decode(indices)
            if self.key(child) != original:
                return child
        return child

    def crossover(self, first: Any, second: Any, rng: random.Random) -> Any:
        """Uniform crossover of the two parents' decisions."""
        a, b = self.encode(first), self.encode(second)
        return self.decode([x if rng.random() < 0.5 else y for x, y in zip(a, b)])

    def neighbours(self, arch: Any) -> list[Any]:
        """Every distinct architecture that differs from `arch` in exactly one decision."""
        indices = self.encode(arch)
        seen = {self.key(arch)}
        result = []
        for position, decision in enumerate(self.decisions()):
            for option in range(len(decision.choices)):
                changed = list(indices)
                changed[position] = option
                neighbour = self.decode(changed)
                key = self.key(neighbour)
                if key not in seen:
                    seen.add(key)
                    result.append(neighbour)
        return result

    def decision_values(self, arch: Any) -> dict[str, Any]:
        """{decision name: chosen option} of an architecture in JSON form (what trackers record as parameters)."""
        return {d.name: d.choices[i] for d, i in zip(self.decisions(), self.encode(self.from_json(arch)))}

    def network_options(self) -> dict:
        """Keyword arguments besides (arch, input_shape, num_classes) that rebuild the network."""
        return {}

    def check_network_sizes(self, input_shape: Sequence[int], num_classes: int, limits: NetworkLimits | None,
                            samples: int = 3) -> None:
        """Refuse (NetworkTooLarge naming `search_space`) a space whose networks are over `limits`, before any
        is built: the networks of `samples` architectures drawn with a seed of their own, built on meta."""
        rng = random.Random(0)
        for _ in range(samples):
            arch = self.sample(rng)
            check_network_size(lambda: self.build(arch, input_shape, num_classes), tuple(input_shape),
                               "search_space", limits)

    # --- JSON ------------------------------------------------------------------------------------
    def to_json(self, arch: Any) -> Any:
        return arch

    def from_json(self, obj: Any) -> Any:
        return self.validate(obj)

    # --- latency lookup tables (`nasrun-latency-table`, metrics.latency: table) ---------------------------
    def latency_parts(self, input_shape: Sequence[int], num_classes: int):
        """(key, module, input shape at batch 1) for every part a network can hold, when a network's
        latency is the sum of its parts' (independent layers); None: the space does not decompose."""
        return None

    def latency_keys(self, arch: Any, input_shape: Sequence[int]) -> list[str]:
        """The keys of `latency_parts` that make up the network of `arch`."""
        raise NotImplementedError(f"{self.name}: no latency-table parts")

    @staticmethod
    def graphs(arch: Any) -> list[Graph] | None:
        """`arch` as labelled DAGs for `nasrun.reports.drawing` (best_architecture.png); None: not drawn.
        A static method, so a saved architecture is drawn knowing only its space's name."""
        return None

    @staticmethod
    def edge_names(edges: int) -> list[str] | None:
        """Names ("node ← input") of a cell's `edges` edges in a supernet's α order, for the α plots;
        None: the space has no such cell. Labels may hold matplotlib mathtext ($c_{k-2}$)."""
        return None

    def describe(self, arch: Any) -> str:
        """A short human-readable line for progress displays and tables."""
        return json.dumps(self.to_json(arch), separators=(",", ":"))[:80]

    def check_index(self, decision: Decision, value: Any) -> int:
        """The index of `value` among `decision`'s choices, or a clear InvalidArchitecture."""
        try:
            return decision.choices.index(value)
        except ValueError:
            raise InvalidArchitecture(
                f"{self.name}: {decision.name}={value!r} is not one of {list(decision.choices)}"
            ) from None
