"""CPU training runs channels-last (nasrun/training.py): the same maths as NCHW, to float rounding."""

from __future__ import annotations

import copy
import random

import torch
from torch import nn

from nasrun.datasets.digits import Digits
from nasrun.hardware import Hardware
from nasrun.spaces.macro import MacroSpace
from nasrun.training import Recipe, accuracy, train_one_epoch
from conftest import DIGITS_SUBSETS


def nchw_epoch(model: nn.Module, data, recipe: Recipe, optimizer, seed: int) -> float:
    """train_one_epoch's loop written out on NCHW tensors, for comparison."""
    model.train()
    total, count = 0.0, 0
    for x, y in data.loader("train", recipe.batch_size, shuffle=True, seed=seed):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        total, count = total + loss.item() * len(y), count + len(y)
    return total / count


def test_cpu_training_is_channels_last_and_computes_what_nchw_computes():
    data = Digits(**DIGITS_SUBSETS).load()
    space = MacroSpace()
    arch = next(a for a in (space.sample(random.Random(s)) for s in range(50))
                if "maxpool3x3" not in {layer["op"] for layer in a["layers"]} and len({layer["op"] for layer in a["layers"]}) > 3)
    # no max pool: rounding can flip its choice between near-equal values, and training then drifts apart
    torch.manual_seed(0)
    model = space.build(arch, data.input_shape, data.num_classes)
    reference = copy.deepcopy(model)
    recipe = Recipe(epochs=1, scheduler="constant")
    optimizer, reference_optimizer = recipe.make_optimizer(model.parameters()), recipe.make_optimizer(reference.parameters())
    loss = train_one_epoch(model, data, recipe, optimizer, recipe.make_scheduler(optimizer, 4), Hardware(device="cpu"), 0)
    expected = nchw_epoch(reference, data, recipe, reference_optimizer, 0)
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert abs(loss - expected) < 1e-5 * abs(expected)
    for ours, theirs in zip(model.state_dict().values(), reference.state_dict().values()):
        assert torch.allclose(ours.float(), theirs.float(), rtol=1e-3, atol=1e-4)
    assert abs(accuracy(model, data, "val", Hardware(device="cpu")) - accuracy(reference, data, "val", Hardware(device="cpu"))) <= 1 / 128
