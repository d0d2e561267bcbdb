"""The macro (layer-by-layer) search space: depth, and per layer an op, a width and skip connections."""

from __future__ import annotations

from itertools import product
from typing import Any, Iterator, Sequence

from torch import nn

from nasrun.errors import ConfigError, InvalidArchitecture
from nasrun.nets.macro import MACRO_OPS, MacroNet, conv_bn_relu, make_op, projection
from nasrun.spaces.base import Decision, Graph, SearchSpace


class MacroSpace(SearchSpace):
    """A stack of `min_layers`..`max_layers` layers. Layer i may add skips from up to `skip_window`-1
    earlier nodes (besides its input). Layers at the `reduce_at` fractions of depth use stride 2."""

    name = "macro"

    def __init__(
        self,
        min_layers: int = 8,
        max_layers: int = 12,
        ops: Sequence[str] = MACRO_OPS,
        widths: Sequence[int] = (16, 32, 64),
        stem_width: int = 16,
        skip_window: int = 3,
        reduce_at: Sequence[float] = (1 / 3, 2 / 3),
    ):
        for label, value in (("ops", ops), ("widths", widths), ("reduce_at", reduce_at)):
            if isinstance(value, (str, int, float)):
                raise ConfigError(f"macro: {label} must be a list, got {value!r}")
        if not 1 <= min_layers <= max_layers:
            raise ConfigError(f"macro: need 1 <= min_layers <= max_layers, got {min_layers}..{max_layers}")
        unknown = [op for op in ops if op not in MACRO_OPS]
        if unknown or not ops:
            raise ConfigError(f"macro: unknown ops {unknown} (known: {list(MACRO_OPS)})")
        if not widths or any(int(w) <= 0 for w in widths):
            raise ConfigError(f"macro: widths must be positive integers, got {list(widths)}")
        self.min_layers, self.max_layers = int(min_layers), int(max_layers)
        self.ops, self.widths = tuple(ops), tuple(int(w) for w in widths)
        self.stem_width, self.skip_window = int(stem_width), int(skip_window)
        self.reduce_at = tuple(float(f) for f in reduce_at)
        self._decisions = self._make_decisions()

    def _make_decisions(self) -> list[Decision]:
        decisions = [Decision("depth", tuple(range(self.min_layers, self.max_layers + 1)))]
        for slot in range(1, self.max_layers + 1):
            decisions.append(Decision(f"layer{slot}.op", self.ops))
            decisions.append(Decision(f"layer{slot}.width", self.widths))
            for back in range(2, self.skip_window + 1):
                decisions.append(Decision(f"layer{slot}.skip{back}", (False, True)))
        return decisions

    def decisions(self) -> list[Decision]:
        return self._decisions

    def reduction_layers(self, depth: int) -> set[int]:
        """1-based indices of the layers that halve the resolution."""
        return {min(depth, max(1, int(depth * f) + 1)) for f in self.reduce_at}

    def decode(self, indices: Sequence[int]) -> dict:
        values = iter(d.choices[i] for d, i in zip(self._decisions, indices))
        depth = next(values)
        reductions = self.reduction_layers(depth)
        layers = []
        for slot in range(1, self.max_layers + 1):
            op, width = next(values), next(values)
            skip_bits = [next(values) for _ in range(2, self.skip_window + 1)]
            if slot <= depth:
                skips = sorted(slot - back for back, bit in zip(range(2, self.skip_window + 1), skip_bits)
                               if bit and slot - back >= 0)
                layers.append({"op": op, "width": width, "stride": 2 if slot in reductions else 1, "skips": skips})
        return {"stem": self.stem_width, "layers": layers}

    def encode(self, arch: Any) -> list[int]:
        layers = self._layers_of(arch)
        depth_decision = self._decisions[0]
        indices = [self.check_index(depth_decision, len(layers))]
        position = 1
        for slot in range(1, self.max_layers + 1):
            layer = layers[slot - 1] if slot <= len(layers) else None
            op_decision, width_decision = self._decisions[position], self._decisions[position + 1]
            indices.append(self.check_index(op_decision, layer["op"]) if layer else 0)
            indices.append(self.check_index(width_decision, layer["width"]) if layer else 0)
            skips = set(layer.get("skips", [])) if layer else set()
            if layer and not all(isinstance(s, int) and s >= 0 and 0 <= slot - s - 2 < self.skip_window - 1 for s in skips):
                raise InvalidArchitecture(
                    f"macro: layer {slot} skips from {sorted(skips)}; allowed nodes are "
                    f"{list(range(max(0, slot - self.skip_window), slot - 1))}")
            indices.extend(int(slot - back in skips) for back in range(2, self.skip_window + 1))
            position += 2 + self.skip_window - 1
        return indices

    def _layers_of(self, arch: Any) -> list[dict]:
        if not isinstance(arch, dict) or not isinstance(arch.get("layers"), list):
            raise InvalidArchitecture("macro: an architecture is {'stem': int, 'layers': [{'op', 'width', 'skips'}, ...]}")
        for i, layer in enumerate(arch["layers"], start=1):
            if not isinstance(layer, dict) or "op" not in layer or "width" not in layer:
                raise InvalidArchitecture(f"macro: layer {i} needs 'op' and 'width', got {layer!r}")
        return arch["layers"]

    def build(self, arch: Any, input_shape: Sequence[int], num_classes: int) -> MacroNet:
        return MacroNet(self.validate(arch), input_shape, num_classes)

    def design_facts(self) -> dict:
        """What the space-design check reads (nasrun.assessment.space_check)."""
        return {"ops": list(self.ops), "skip_ops": [op for op in self.ops if op == "identity"],
                "has_skip_connections": self.skip_window >= 2,
                "channels": [self.stem_width, *self.widths], "reductions": list(self.reduce_at)}

    def describe(self, arch: Any) -> str:
        parts = []
        for layer in arch["layers"]:
            mark = "↓" if layer["stride"] == 2 else ""
            skip = "+" * len(layer["skips"])
            parts.append(f"{layer['op']}{mark}:{layer['width']}{skip}")
        return " ".join(parts)

    def latency_parts(self, input_shape: Sequence[int], num_classes: int):
        return macro_parts(self, input_shape, num_classes)

    def latency_keys(self, arch: dict, input_shape: Sequence[int]) -> list[str]:
        return macro_keys(arch, input_shape)

    @staticmethod
    def graphs(arch: dict) -> list[Graph]:
        """The layers as a chain from the stem to the head, skips as dashed edges."""
        graph = Graph("macro network: layers (solid) and skip connections (dashed)")
        graph.nodes = [("in", "input"), ("n0", f"stem {arch['stem']}")]
        for index, layer in enumerate(arch["layers"], start=1):
            down = " ↓2" if int(layer.get("stride", 1)) == 2 else ""
            graph.nodes.append((f"n{index}", f"{layer['op']}\n{layer['width']}{down}"))
            graph.edges.append((f"n{index - 1}", f"n{index}", "", False))
            graph.edges += [(f"n{skip}", f"n{index}", "", True) for skip in layer.get("skips", [])]
        graph.nodes.append(("out", "pool + linear"))
        graph.edges = [("in", "n0", "", False), *graph.edges, (f"n{len(arch['layers'])}", "out", "", False)]
        return [graph]


# --- latency-table parts: a macro network is a chain of independent modules ------------------------------
def resolutions(height: int, reductions: int) -> list[int]:
    """The feature-map sizes a macro network can have: the input's, then halved (rounding up) per reduction."""
    sizes = [int(height)]
    for _ in range(reductions):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def macro_parts(space, input_shape: Sequence[int], num_classes: int) -> Iterator[tuple[str, nn.Module, tuple]]:
    """(key, module, input shape at batch 1) for every part a network of the macro space can contain."""
    channels, height = int(input_shape[0]), int(input_shape[1])
    sizes = resolutions(height, len(space.reduce_at))
    c_ins = sorted({space.stem_width, *space.widths})
    yield stem_key(channels, space.stem_width, height), conv_bn_relu(channels, space.stem_width, 3), \
        (channels, height, height)
    for op, c_in, c_out, stride, size in product(space.ops, c_ins, space.widths, (1, 2), sizes):
        if stride == 1 or size != sizes[-1]:
            yield op_key(op, c_in, c_out, stride, size), make_op(op, c_in, c_out, stride), (c_in, size, size)
    for c_in, c_out, size_in, size_out in product(c_ins, space.widths, sizes, sizes):
        if size_out <= size_in and (c_in != c_out or size_in != size_out):
            yield skip_key(c_in, c_out, size_in, size_out), projection(c_in, c_out, size_in, size_out), \
                (c_in, size_in, size_in)
    for width, size in product(c_ins, sizes):
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))
        yield head_key(width, size), head, (width, size, size)


def stem_key(c_in, c_out, size) -> str:
    return f"stem|{c_in}|{c_out}|{size}"


def op_key(op, c_in, c_out, stride, size) -> str:
    return f"op|{op}|{c_in}|{c_out}|{stride}|{size}"


def skip_key(c_in, c_out, size_in, size_out) -> str:
    return f"skip|{c_in}|{c_out}|{size_in}|{size_out}"


def head_key(c_in, size) -> str:
    return f"head|{c_in}|{size}"


def macro_keys(arch: dict, input_shape: Sequence[int]) -> list[str]:
    """The table keys whose latencies add up to the network of `arch` (the walk MacroNet makes)."""
    channels, height = int(input_shape[0]), int(input_shape[1])
    widths, sizes = [arch["stem"]], [height]
    keys = [stem_key(channels, arch["stem"], height)]
    for index, layer in enumerate(arch["layers"], start=1):
        stride = int(layer.get("stride", 1))
        size = (sizes[-1] + stride - 1) // stride
        keys.append(op_key(layer["op"], widths[-1], layer["width"], stride, sizes[-1]))
        for node in layer.get("skips", []):
            if widths[node] != layer["width"] or sizes[node] != size:
                keys.append(skip_key(widths[node], layer["width"], sizes[node], size))
        widths.append(layer["width"])
        sizes.append(size)
    keys.append(head_key(widths[-1], sizes[-1]))
    return keys
