import random

import pytest
import torch

from nasrun.errors import InvalidArchitecture
from nasrun.nets import build_network
from nasrun.spaces.macro import MacroSpace


@pytest.fixture
def space():
    return MacroSpace(min_layers=3, max_layers=6, widths=(8, 16))


def test_every_sampled_architecture_builds_and_runs(space):
    rng = random.Random(0)
    for _ in range(30):
        arch = space.sample(rng)
        assert space.validate(arch) == arch
        assert 3 <= len(arch["layers"]) <= 6
        out = space.build(arch, (1, 8, 8), 10)(torch.randn(2, 1, 8, 8))
        assert out.shape == (2, 10)


def test_all_ops_and_skips_reconcile_shapes():
    space = MacroSpace(min_layers=6, max_layers=6, widths=(4, 12), skip_window=4)
    for op in space.ops:
        indices = space.encode(space.sample(random.Random(1)))
        arch = space.decode(indices)
        for layer in arch["layers"]:
            layer["op"] = op
        arch["layers"][-1]["skips"] = [2, 3]
        net = space.build(arch, (3, 15, 15), 5)
        assert net(torch.randn(2, 3, 15, 15)).shape == (2, 5)


def test_downsampling_at_configured_depth_fractions(space):
    arch = space.decode([space.decisions()[0].choices.index(6)] + [0] * (len(space.decisions()) - 1))
    assert [layer["stride"] for layer in arch["layers"]].count(2) == 2


def test_encode_decode_round_trip_and_json_is_plain(space):
    import json

    rng = random.Random(3)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.decode(space.encode(arch)) == arch
        assert json.loads(json.dumps(arch)) == arch


def test_mutation_always_changes_the_network(space):
    rng = random.Random(4)
    arch = space.sample(rng)
    for _ in range(50):
        child = space.mutate(arch, rng)
        assert space.key(child) != space.key(arch)
        arch = child


def test_neighbours_are_distinct_single_changes(space):
    arch = space.sample(random.Random(5))
    neighbours = space.neighbours(arch)
    keys = {space.key(n) for n in neighbours}
    assert len(keys) == len(neighbours) and space.key(arch) not in keys
    def chosen(layer):  # what a decision sets (strides follow from the depth)
        return layer["op"], layer["width"], tuple(layer["skips"])

    for n in neighbours:
        if len(n["layers"]) == len(arch["layers"]):  # one op, width or skip decision changed
            assert sum(a != b for a, b in zip(space.encode(arch), space.encode(n))) == 1
        else:  # the depth decision changed: the layers both keep are as they were
            shared = min(len(n["layers"]), len(arch["layers"]))
            assert [chosen(layer) for layer in n["layers"][:shared]] == [chosen(layer) for layer in arch["layers"][:shared]]


def test_network_rebuilds_from_json_without_the_space(space):
    arch = space.sample(random.Random(6))
    net = build_network("macro", arch, (1, 8, 8), 10)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in space.build(arch, (1, 8, 8), 10).parameters())


@pytest.mark.parametrize("bad, message", [
    ({"layers": [{"op": "conv9x9", "width": 8}] * 3}, "conv9x9"),
    ({"layers": [{"op": "conv3x3", "width": 7}] * 3}, "width=7"),
    ({"layers": [{"op": "conv3x3", "width": 8}]}, "depth=1"),
    ({"layers": [{"op": "conv3x3", "width": 8, "skips": [5]}] * 3}, "skips"),
    ({"nodes": []}, "an architecture is"),
])
def test_bad_architectures_are_clear_errors(space, bad, message):
    with pytest.raises(InvalidArchitecture, match=message):
        space.validate(bad)
