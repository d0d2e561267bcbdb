"""The DARTS cell space: ops, the evaluation network, genotypes and their published notation."""

from __future__ import annotations

import math
import random

import pytest
import torch

from nasrun.errors import ConfigError, InvalidArchitecture
from nasrun.nets import build_network
from nasrun.nets.darts import DartsNetwork, check_genotype
from nasrun.nets.darts_ops import BUILDABLE_OPS, darts_op
from nasrun.spaces.darts import DartsSpace, format_genotype, parse_genotype
from nasrun.spaces.darts_genotypes import PUBLISHED, published_genotype


@pytest.mark.parametrize("op", BUILDABLE_OPS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7])
def test_every_op_keeps_channels_and_halves_space_when_strided(op, stride, size):
    module = darts_op(op, 4, stride)
    out = module(torch.randn(2, 4, size, size))
    expected = math.ceil(size / stride)
    assert out.shape == (2, 4, expected, expected)


def test_every_sampled_genotype_builds_and_runs_forward():
    space = DartsSpace(C=4, layers=3, auxiliary=True, drop_path_prob=0.2)
    rng = random.Random(0)
    for _ in range(5):
        arch = space.sample(rng)
        net = space.build(arch, (1, 8, 8), 10)
        logits, aux = net(torch.randn(2, 1, 8, 8))  # training mode: (logits, aux)
        assert logits.shape == aux.shape == (2, 10)
        net.eval()
        assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_network_shapes_follow_the_paper():
    net = DartsNetwork(published_genotype("DARTS_V2"), (3, 32, 32), 10, C=36, layers=20, auxiliary=True)
    reductions = [i for i, cell in enumerate(net.cells) if cell.reduction]
    assert reductions == [6, 13]
    main = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("auxiliary"))
    assert 3.2e6 < main < 3.45e6  # the paper reports 3.3M parameters for DARTS (2nd order) on CIFAR-10
    imagenet = DartsNetwork(published_genotype("DARTS_V2"), (3, 64, 64), 100, C=8, layers=5, stem="imagenet")
    assert imagenet(torch.randn(2, 3, 64, 64)).shape == (2, 100)


def test_genotype_text_round_trips_and_json_round_trips():
    space = DartsSpace()
    arch = space.sample(random.Random(3))
    text = format_genotype(arch)
    assert text.startswith("Genotype(normal=[('")
    assert parse_genotype(text) == arch
    assert space.from_json(space.to_json(arch)) == arch
    assert space.from_json(text) == arch
    assert space.decode(space.encode(arch)) == arch


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_genotypes_in_darts_notation_build(name):
    genotype = published_genotype(name)
    net = build_network("darts", genotype, (3, 16, 16), 10, C=4, layers=3, auxiliary=True)
    net.eval()
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert parse_genotype(format_genotype(genotype)) == genotype


def test_published_names_and_range_notation_load():
    darts_v2 = DartsSpace().from_json("DARTS_V2")
    assert darts_v2["normal"][-1] == ["dil_conv_3x3", 2]
    assert published_genotype("PC_DARTS")["normal_concat"] == [2, 3, 4, 5]  # written as range(2, 6)
    nasnet = DartsSpace(nodes=5, ops=BUILDABLE_OPS).from_json("NASNet")
    assert nasnet["reduce_concat"] == [4, 5, 6]


@pytest.mark.parametrize("mutation, message", [
    (lambda g: g["normal"].__setitem__(0, ["conv_9x9", 0]), "unknown op 'conv_9x9'"),
    (lambda g: g["normal"].__setitem__(1, ["sep_conv_3x3", 2]), "inputs must be in 0..1"),
    (lambda g: g["reduce"].__setitem__(7, ["sep_conv_3x3", -1]), "inputs must be in 0..4"),
    (lambda g: g.__setitem__("normal", g["normal"][:6]), "has 3 nodes"),
    (lambda g: g.__setitem__("reduce", g["reduce"][:7]), "two (op, input) pairs per node"),
    (lambda g: g.__setitem__("normal_concat", [2, 9]), "normal_concat"),
    (lambda g: g.pop("reduce_concat"), "keys"),
])
def test_bad_genotypes_are_clear_errors(mutation, message):
    genotype = published_genotype("DARTS_V2")
    mutation(genotype)
    with pytest.raises(InvalidArchitecture, match=message.replace("(", r"\(").replace(")", r"\)")):
        DartsSpace().from_json(genotype)


@pytest.mark.parametrize("text", [
    "__import__('os').system('echo hacked')",
    "Genotype(normal=__import__('os').getcwd(), normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=[('sep_conv_3x3', 0)",
    "Genotype(normal=[], colour=[2])",
    "NOT_A_PUBLISHED_NAME",
])
def test_genotype_text_is_parsed_never_evaluated(text):
    with pytest.raises(InvalidArchitecture):
        DartsSpace().from_json(text)


def test_space_encoding_neighbours_and_key():
    space = DartsSpace()
    assert len(space.decisions()) == 2 * 4 * 2 * 2
    arch = published_genotype("DARTS_V2")
    swapped = {**arch, "normal": [arch["normal"][1], arch["normal"][0], *arch["normal"][2:]]}
    assert space.key(swapped) == space.key(arch)  # the two pairs of a node are unordered
    neighbours = space.neighbours(arch)
    assert len({space.key(n) for n in neighbours}) == len(neighbours) > 50
    assert space.key(space.mutate(arch, random.Random(0))) != space.key(arch)


def test_space_config_errors():
    with pytest.raises(ConfigError):
        DartsSpace(ops=["sep_conv_3x3", "conv_9x9"])
    with pytest.raises(ConfigError):
        DartsSpace(C=5)
    with pytest.raises(ConfigError):
        DartsSpace(stem="mobile")


def test_check_genotype_accepts_tuples_and_returns_lists():
    genotype = check_genotype({"normal": [("skip_connect", 0), ("skip_connect", 1)], "normal_concat": range(2, 3),
                               "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1)], "reduce_concat": (2,)})
    assert genotype["normal"] == [["skip_connect", 0], ["skip_connect", 1]]
    assert genotype["reduce_concat"] == [2]
