"""Differentiable search: the supernet, DARTS / PC-DARTS / GDAS, the order-2 hypergradient, resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from conftest import SMALL_DIGITS, read_jsonl, run_cli, run_dirs
from fake_data import write_cifar10
from nasrun.datasets.base import DataBundle, TensorSplit
from nasrun.rundir import RunDir
from nasrun.errors import ConfigError
from nasrun.hardware import Hardware
from nasrun.nets.nb201 import parse_arch
from nasrun.supernets.bilevel import unrolled_arch_gradients
from nasrun.supernets.darts import DartsWeightedSupernet as DartsSupernet
from nasrun.supernets.darts import darts_search_op
from nasrun.supernets.nb201 import NB201WeightedSupernet as NB201Supernet
from nasrun.supernets.mixed import MixedOp
from nasrun.supernets.weighted import GumbelWeighting, PartialChannelWeighting, Weighting
from nasrun.spaces.darts import SEARCH_OPS, DartsSpace
from nasrun.spaces.macro import MacroSpace
from nasrun.spaces.nb201 import NB201Space
from nasrun.strategies.base import SearchContext
from nasrun.strategies.darts import DartsSearch
from nasrun.strategies.gdas import GdasSearch
from nasrun.strategies.pcdarts import PCDartsSearch

TINY_SEARCH = dict(epochs=2, batch_size=16, C=4, layers=3, N=1, steps_per_epoch=2)


def tiny_data(n: int = 64) -> DataBundle:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (n,), generator=generator)
    images = torch.randn(n, 1, 8, 8, generator=generator) + labels[:, None, None, None].float()
    split = TensorSplit(images, labels)
    return DataBundle("tiny", split, split, split, num_classes=4, input_shape=(1, 8, 8))


def run_search(strategy, space, run_dir, seed=0, report=None, steps=None):
    strategy.bind(space, seed, 1)
    context = SearchContext(space, tiny_data(), Hardware(device="cpu"), run_dir, seed, report, steps)
    arch, seconds = strategy.search(context)
    assert seconds > 0
    return arch


# --- supernet pieces ----------------------------------------------------------------------------------------
def test_mixed_op_hard_sample_and_partial_channels():
    mixed = MixedOp(SEARCH_OPS, darts_search_op, 4, 1)
    x = torch.randn(2, 4, 8, 8)
    skip = SEARCH_OPS.index("skip_connect")
    one_hot = torch.nn.functional.one_hot(torch.tensor(skip), len(SEARCH_OPS)).float()
    assert torch.equal(mixed(x, one_hot, index=skip), x)  # a hard sample runs that one op
    partial = MixedOp(SEARCH_OPS, darts_search_op, 8, 2, partial=4)
    weights = torch.softmax(torch.randn(len(SEARCH_OPS)), 0)
    assert partial(torch.randn(2, 8, 7, 7), weights).shape == (2, 8, 4, 4)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_pcdarts_shuffle_is_the_papers_concatenate_then_shuffle(layout):
    from nasrun.supernets.mixed import shuffled

    mixed, rest = torch.randn(2, 3, 5, 5, dtype=torch.float64), torch.randn(2, 9, 5, 5, dtype=torch.float64)
    scale = torch.tensor(0.7, dtype=torch.float64)
    inputs = [*(t.contiguous(memory_format=layout).requires_grad_() for t in (mixed, rest)), scale.requires_grad_()]
    concatenated = torch.cat([inputs[0], inputs[1] * inputs[2]], dim=1)
    expected = concatenated.reshape(2, 4, 3, 5, 5).transpose(1, 2).reshape(2, 12, 5, 5)  # the PC-DARTS code's shuffle
    found = shuffled(inputs[0], inputs[1], 4, inputs[2])
    assert torch.equal(found, expected) and found.is_contiguous(memory_format=layout)
    upstream = torch.randn_like(found)
    for a, b in zip(torch.autograd.grad((found * upstream).sum(), inputs),
                    torch.autograd.grad((expected * upstream).sum(), inputs)):
        assert torch.allclose(a, b)


def test_gumbel_weighting_samples_one_op_with_gradient():
    alpha = torch.zeros(6, 5, requires_grad=True)
    weights, index = GumbelWeighting(tau=1.0).op_weights(alpha)
    assert torch.equal(weights.detach().sum(1), torch.ones(6))
    assert [int(row.argmax()) for row in weights.detach()] == index
    (weights * torch.arange(5.0)).sum().backward()
    assert alpha.grad.abs().sum() > 0


@pytest.mark.parametrize("weighting", [Weighting(), PartialChannelWeighting(2), GumbelWeighting()])
def test_supernets_run_on_both_spaces_and_derive_valid_architectures(weighting):
    darts = DartsSupernet((1, 8, 8), 4, weighting, C=4, layers=3, search_ops=SEARCH_OPS)
    assert darts(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    DartsSpace().validate(darts.derive())
    nb201 = NB201Supernet((1, 8, 8), 4, weighting, C=4, N=1)
    assert nb201(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    parse_arch(nb201.derive())


def test_darts_derivation_takes_top2_edges_without_none():
    net = DartsSupernet((1, 8, 8), 4, Weighting(), C=4, layers=3, search_ops=SEARCH_OPS)
    with torch.no_grad():
        alpha = net.alphas["normal"]
        alpha.zero_()
        alpha[:, 0] = 10.0                                # `none` strongest everywhere: ignored
        alpha[1, net.ops.index("sep_conv_5x5")] = 5.0      # node 2: edge from input 1
        alpha[0, net.ops.index("dil_conv_3x3")] = 3.0      # node 2: edge from input 0
        alpha[4, net.ops.index("skip_connect")] = 4.0      # node 3: edge from node 2
    normal = net.derive()["normal"]
    assert normal[:2] == [["sep_conv_5x5", 1], ["dil_conv_3x3", 0]]
    assert normal[2] == ["skip_connect", 2]


# --- the order-2 hypergradient -----------------------------------------------------------------------------
@pytest.mark.parametrize("checkpoint", ["none", "cells", "edges"])
def test_second_order_hypergradient_matches_finite_differences(checkpoint):
    torch.manual_seed(0)
    model = NB201Supernet((1, 4, 4), 3, Weighting(), C=2, N=1, checkpoint=checkpoint).double()
    x, y = torch.randn(6, 1, 4, 4, dtype=torch.float64), torch.randint(0, 3, (6,))
    x_val, y_val = torch.randn(6, 1, 4, 4, dtype=torch.float64), torch.randint(0, 3, (6,))
    eta, weight_decay = 0.1, 3e-4
    optimizer = torch.optim.SGD(model.weight_parameters(), eta, momentum=0.9, weight_decay=weight_decay)
    # r sets the finite-difference step ε = r / ‖∇w' L_val‖; DARTS uses 0.01 in float32. This tiny net
    # crosses ReLU kinks at that step, so the check takes a smaller one in float64.
    (grad,), _ = unrolled_arch_gradients(model, x, y, x_val, y_val, eta, optimizer, 0.9, weight_decay, r=1e-5)

    named = model.named_weight_parameters()
    alpha = model.alphas["cell"]
    model.checkpoint = "none"

    def unrolled_val_loss() -> float:
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        moved = {n: (p - eta * ((0 if g is None else g) + weight_decay * p)).detach()
                 for (n, p), g in zip(named, grads)}
        return F.cross_entropy(torch.func.functional_call(model, moved, (x_val,)), y_val).item()

    numeric = torch.zeros_like(alpha)
    h = 1e-5
    for index in range(alpha.numel()):
        with torch.no_grad():
            alpha.view(-1)[index] += h
        up = unrolled_val_loss()
        with torch.no_grad():
            alpha.view(-1)[index] -= 2 * h
        down = unrolled_val_loss()
        with torch.no_grad():
            alpha.view(-1)[index] += h
        numeric.view(-1)[index] = (up - down) / (2 * h)
    assert torch.allclose(grad, numeric, rtol=1e-3, atol=1e-6 * numeric.abs().max().item() + 1e-9), (grad, numeric)
    first_order = torch.autograd.grad(F.cross_entropy(model(x_val), y_val), alpha)[0]
    assert not torch.allclose(first_order, numeric, rtol=1e-3)  # the unrolled term really matters here


def tiny_step_setting(weighting):
    """A float64 DARTS-space supernet (C=4, 3 cells) and one batch of 4 images with labels, seeded."""
    torch.manual_seed(0)
    model = DartsSupernet((3, 8, 8), 10, weighting, C=4, layers=3, search_ops=SEARCH_OPS).double()
    return model, torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (4,))


@pytest.mark.parametrize("weighting", [Weighting(), PartialChannelWeighting(k=2)], ids=["darts", "pcdarts"])
@pytest.mark.parametrize("checkpoint", ["none", "edges"])
def test_first_order_arch_step_gives_alpha_the_plain_gradient_and_leaves_the_weights_trainable(weighting, checkpoint):
    """The α step holds the weights constant (less memory); α's gradient is the one of the plain network."""
    model, x, y = tiny_step_setting(weighting)
    expected = torch.autograd.grad(F.cross_entropy(model(x), y), model.arch_parameters())
    model.checkpoint = checkpoint
    weights, alphas = model.weight_parameters(), model.arch_parameters()
    DartsSearch(order=1, **TINY_SEARCH).trainer().arch_step(model, torch.optim.SGD(weights, 0.1),
                                                            torch.optim.SGD(alphas, 0.0), x, y, x, y, 0.1)
    for parameter, grad in zip(alphas, expected):
        assert torch.allclose(parameter.grad, grad)
    assert all(w.requires_grad and w.grad is None for w in weights)


@pytest.mark.parametrize("weighting", [Weighting(), PartialChannelWeighting(k=2)], ids=["darts", "pcdarts"])
@pytest.mark.parametrize("checkpoint", ["none", "edges"])
def test_weight_step_gives_the_weights_the_plain_gradient_and_leaves_alpha_trainable(weighting, checkpoint):
    model, x, y = tiny_step_setting(weighting)
    weights, alphas = model.weight_parameters(), model.arch_parameters()
    expected = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    model.checkpoint = checkpoint
    DartsSearch(order=1, grad_clip=None, **TINY_SEARCH).trainer().weight_step(model, torch.optim.SGD(weights, 0.0), x, y)
    for parameter, grad in zip(weights, expected):  # the step's loss is float32 (logits.float())
        assert torch.allclose(parameter.grad, grad, rtol=1e-5, atol=1e-6)
    assert all(a.requires_grad and a.grad is None for a in alphas)


@pytest.mark.parametrize("mode", ["cells", "edges"])
def test_recomputation_changes_no_value_batch_norm_statistics_included(mode):
    """A step with recomputation gives the gradients of one without, and leaves every batch norm's
    running statistics and batch count as one pass sets them: `checkpoint: auto` may pick either mode."""
    import copy

    plain, x, y = tiny_step_setting(Weighting())
    recomputing = copy.deepcopy(plain)
    recomputing.checkpoint = mode
    for model in (plain, recomputing):
        F.cross_entropy(model(x), y).backward()
    for (name, expected), (_, kept) in zip(plain.state_dict().items(), recomputing.state_dict().items()):
        assert torch.equal(kept, expected), name
    for (name, expected), (_, found) in zip(plain.named_parameters(), recomputing.named_parameters()):
        assert torch.allclose(found.grad, expected.grad), name


def test_auto_checkpoint_recomputes_only_where_a_step_would_not_fit(monkeypatch, caplog):
    from nasrun.supernets import memory

    strategy = GdasSearch(**TINY_SEARCH)  # Gumbel draws: the memory probe must not consume torch's random numbers
    strategy.bind(DartsSpace(C=4, layers=3), 0, 1)
    model = strategy.build_supernet(DartsSpace(C=4, layers=3), (3, 8, 8), 10)
    assert strategy.checkpoint == "auto" and model.checkpoint == "none"
    before, random_state = copy_state(model), torch.get_rng_state()
    per_sample = memory.activation_bytes(model, (3, 8, 8), "cpu") / memory.PROBE_BATCH
    assert memory.activation_bytes(model, (3, 8, 8), "cpu", batch=8) == pytest.approx(8 * per_sample, rel=0.1)
    assert all(torch.equal(a, b) for a, b in zip(before, copy_state(model)))  # the probe ran on a copy
    assert torch.equal(torch.get_rng_state(), random_state)
    need = per_sample * strategy.settings.batch_size * memory.STEP_MARGIN
    hardware = Hardware(device="cpu")
    for free, mode in ((4 * need, "none"), (need, "edges")):
        monkeypatch.setattr(Hardware, "free_memory", lambda self, free=free: (int(free), "a test's RAM"))
        with caplog.at_level("INFO", logger="nasrun"):
            assert strategy.choose_checkpoint(model, (3, 8, 8), hardware) == mode == model.checkpoint
        assert f"strategy.checkpoint=auto: {mode} (a step at batch 16 without recomputation" in caplog.text
    model.checkpoint = "none"
    assert DartsSearch(checkpoint="cells").choose_checkpoint(model, (3, 8, 8), hardware) == "none"  # set: kept


def copy_state(model) -> list[torch.Tensor]:
    return [t.clone() for t in model.state_dict().values()]


# --- strategies ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, space", [
    (lambda: DartsSearch(order=1, **TINY_SEARCH), DartsSpace(C=4, layers=3)),
    (lambda: DartsSearch(order=2, **TINY_SEARCH), NB201Space(C=4, N=1)),
    (lambda: PCDartsSearch(k=2, warmup_epochs=1, **TINY_SEARCH), DartsSpace(C=4, layers=3)),
    (lambda: GdasSearch(**TINY_SEARCH), NB201Space(C=4, N=1)),
], ids=["darts1-darts", "darts2-nb201", "pcdarts-darts", "gdas-nb201"])
def test_strategies_change_alpha_and_log_every_epoch(make, space, tmp_path):
    strategy = make()
    arch = run_search(strategy, space, tmp_path)
    space.validate(arch)
    records = read_jsonl(RunDir(tmp_path).alphas)
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert set(record["alphas"]) == ({"normal", "reduce"} if isinstance(space, DartsSpace) else {"cell"})
        assert {"train_loss", "train_accuracy", "arch_val_accuracy", "param_free_ops", "skip_connects"} <= set(record)
        assert record["arch"] and record["ops"]
    torch.manual_seed(0)
    initial = strategy.build_supernet(space, (1, 8, 8), 4).op_probabilities()
    first, last = ({k: torch.tensor(v) for k, v in r["alphas"].items()} for r in (records[0], records[-1]))
    cell = "cell" if "cell" in first else "reduce"
    assert not torch.allclose(last[cell], first[cell], rtol=0, atol=1e-6)  # α moved in epoch 2
    frozen = isinstance(strategy, PCDartsSearch)  # epoch 1 is PC-DARTS's warm-up
    assert torch.allclose(first[cell], torch.tensor(initial[cell]), rtol=0, atol=1e-7) == frozen
    state = torch.load(RunDir(tmp_path).search_state, weights_only=True)
    assert state["epoch"] == 2
    if isinstance(strategy, PCDartsSearch):
        assert "arch_loss" not in records[0] and "arch_loss" in records[1]  # α frozen during warm-up
        assert "edge_weights" in records[-1]
    if isinstance(strategy, GdasSearch):
        assert records[0]["tau"] == 10.0 and records[1]["tau"] == pytest.approx(0.1)


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("make", [lambda: DartsSearch(order=2, **{**TINY_SEARCH, "epochs": 3}),
                                  lambda: GdasSearch(**{**TINY_SEARCH, "epochs": 3})], ids=["darts2", "gdas"])
def test_resumed_search_continues_identically(make, tmp_path):
    space = NB201Space(C=4, N=1)
    straight = run_search(make(), space, tmp_path / "straight")

    def stop_after_first_epoch(epoch, total, metrics):
        if epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_search(make(), space, tmp_path / "resumed", report=stop_after_first_epoch)
    resumed = run_search(make(), space, tmp_path / "resumed")
    assert resumed == straight
    a = torch.load(RunDir(tmp_path / "straight").search_state, weights_only=True)
    b = torch.load(RunDir(tmp_path / "resumed").search_state, weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert read_jsonl(RunDir(tmp_path / "straight").alphas) == read_jsonl(RunDir(tmp_path / "resumed").alphas)


def test_search_reports_every_step_counted_over_all_epochs(tmp_path):
    steps, epochs = [], []
    run_search(GdasSearch(**{**TINY_SEARCH, "epochs": 3, "steps_per_epoch": None}), NB201Space(C=4, N=1), tmp_path,
               report=lambda epoch, total, metrics: epochs.append((epoch, len(steps))),
               steps=lambda *step: steps.append(step))
    assert steps == [(done, 2, 3) for done in range(1, 7)]     # halves of 32 images, batches of 16
    assert epochs == [(1, 2), (2, 4), (3, 6)]                  # every epoch ends after its own steps
    capped = []
    run_search(DartsSearch(**{**TINY_SEARCH, "steps_per_epoch": 1}), NB201Space(C=4, N=1), tmp_path / "capped",
               steps=lambda *step: capped.append(step))
    assert capped == [(1, 1, 2), (2, 1, 2)]


def test_skip_connect_guard_stops_early(tmp_path):
    strategy = DartsSearch(stop_at_skip_connects=0, **TINY_SEARCH)  # 0: stop at the first epoch's end
    run_search(strategy, DartsSpace(C=4, layers=3), tmp_path)
    records = read_jsonl(RunDir(tmp_path).alphas)
    assert len(records) == 1 and records[0]["stopped"] is True
    run_search(DartsSearch(stop_at_skip_connects=0, **TINY_SEARCH), DartsSpace(C=4, layers=3), tmp_path)
    assert len(read_jsonl(RunDir(tmp_path).alphas)) == 1  # a stopped search stays stopped on resume


def test_configuration_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="cell spaces"):
        run_search(DartsSearch(**TINY_SEARCH), MacroSpace(min_layers=2, max_layers=3), tmp_path)
    with pytest.raises(ConfigError, match="order"):
        DartsSearch(order=3)
    with pytest.raises(ConfigError, match="divisible by 2k"):
        PCDartsSearch(k=4, C=4)
    with pytest.raises(ConfigError, match="first order"):
        GdasSearch(order=2)


# --- end to end ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_searches_then_retrains_and_tests_the_genotype(tmp_path):
    result = run_cli(["strategy=darts", "search_space=darts", "strategy.epochs=1", "strategy.C=4",
                      "strategy.layers=3", "strategy.steps_per_epoch=2", "strategy.batch_size=32",
                      "search_space.C=4", "search_space.layers=3", "search_space.auxiliary=true",
                      "search_space.drop_path_prob=0.2", "estimator.epochs=1", "progress=false", *SMALL_DIGITS], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = run_dirs(tmp_path)
    best = json.loads(RunDir(run_dir).best.read_text())
    DartsSpace().validate(best["arch"])
    assert best["network"]["options"]["auxiliary"] is True
    assert 0.0 <= best["metrics"]["test_accuracy"] <= 1.0 and "search_seconds" in best["metrics"]
    summary = json.loads(RunDir(run_dir).summary.read_text())
    assert summary["strategy"] == "darts" and summary["test"]["test_accuracy"] == best["metrics"]["test_accuracy"]
    assert len(read_jsonl(RunDir(run_dir).alphas)) == 1
    from nasrun.nets import load_network

    assert load_network(RunDir(run_dir).best).eval()(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.slow
def test_cli_gdas_on_nb201_with_cifar_format_data(tmp_path):
    write_cifar10(tmp_path / "data", per_batch=8)
    result = run_cli(["strategy=gdas", "search_space=nb201", "dataset=cifar10", f"dataset.root={tmp_path / 'data'}", "dataset.verify=false",
                      "strategy.epochs=1", "strategy.C=4", "strategy.N=1", "strategy.batch_size=8",
                      "search_space.C=4", "search_space.N=1", "estimator.epochs=1", "progress=false", *SMALL_DIGITS], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = run_dirs(tmp_path)
    best = json.loads(RunDir(run_dir).best.read_text())
    parse_arch(best["arch"])
    assert "test_accuracy" in best["metrics"]
    assert set(read_jsonl(RunDir(run_dir).alphas)[0]["alphas"]) == {"cell"}


@pytest.mark.slow
def test_cli_search_progress_counts_steps_and_the_cost_estimate_changes_nothing(tmp_path):
    """The supernet bar counts steps (6/6, not epochs 2/2); the expected cost is printed once, names real
    keys of the run's config and is kept in summary.json; without it (estimate=false) the run is the same."""
    args = ["strategy=darts", "scale=tiny", "strategy.epochs=2", "strategy.steps_per_epoch=3", "report=false"]
    result = run_cli([*args, "progress=true", "hydra.run.dir=estimated"], tmp_path)
    plain = run_cli([*args, "progress=false", "estimate=false", "hydra.run.dir=plain"], tmp_path)
    assert result.returncode == 0 and plain.returncode == 0, result.stderr[-2000:] + plain.stderr[-2000:]
    bar = next(line for line in result.stderr.splitlines() if line.startswith("supernet search"))
    assert "6/6" in bar and "epoch 2/2" in bar
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("expected: ")]
    assert "for the supernet search on this CPU" in line and "s/step x 3 steps/epoch x 2 epochs" in line
    assert "strategy.epochs (now 2)" in line and "strategy.steps_per_epoch (now 3)" in line
    assert line in RunDir(tmp_path / "estimated").log.read_text()
    config = OmegaConf.load(RunDir(tmp_path / "estimated").config)
    assert (config.strategy.epochs, config.strategy.steps_per_epoch) == (2, 3)
    cost = json.loads(RunDir(tmp_path / "estimated").summary.read_text())["cost"]
    assert cost["phase"] == "supernet search" and cost["factors"] == {"steps_per_epoch": 3, "epochs": 2}
    assert cost["expected_seconds"] == pytest.approx(cost["seconds_per_unit"] * 6, rel=1e-3)
    assert cost["actual_seconds"] > 0
    assert "expected: " not in plain.stderr and "cost" not in json.loads(RunDir(tmp_path / "plain").summary.read_text())

    def search(run):
        trials = read_jsonl(RunDir(run).trials)
        timeless = [{k: v for k, v in t.items() if k not in ("seconds", "metrics")} for t in trials]
        metrics = [{k: v for k, v in t["metrics"].items() if "seconds" not in k} for t in trials]
        return read_jsonl(RunDir(run).alphas), timeless, metrics

    assert search(tmp_path / "estimated") == search(tmp_path / "plain")


def test_strategy_options_select_a_cell_space_by_default(compose_cfg):
    assert compose_cfg(["strategy=darts"]).search_space._target_ == "nasrun.spaces.darts.DartsSpace"
    assert compose_cfg(["strategy=pcdarts", "search_space=nb201"]).search_space.name == "nb201"
    assert compose_cfg(["search_space=nb201", "strategy=gdas"]).search_space.name == "nb201"


@pytest.mark.parametrize("checkpoint", ["none", "cells", "edges"])
def test_the_benchmark_reference_network_computes_what_the_supernet_computes(checkpoint):
    """scripts/bench_darts.py compares nasrun's supernet with a plainly written one: same maths, same weights,
    the same output and the same gradients for every weight and α."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from darts_reference import PlainDartsNetwork

    torch.manual_seed(0)
    ours = DartsSupernet((3, 8, 8), 10, Weighting(), C=4, layers=3, search_ops=SEARCH_OPS,
                         checkpoint=checkpoint).double()
    plain = PlainDartsNetwork(C=4, num_classes=10, layers=3).double()
    state = {k: v for k, v in ours.state_dict().items() if not k.startswith("alphas")}
    state.update(alphas_normal=ours.alphas["normal"].detach(), alphas_reduce=ours.alphas["reduce"].detach())
    plain.load_state_dict(state)
    x, y = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (4,))
    assert torch.allclose(ours(x), plain(x))
    F.cross_entropy(ours(x), y).backward()
    F.cross_entropy(plain(x), y).backward()
    ours_grads = {name: p.grad for name, p in ours.named_weight_parameters()}
    ours_grads.update(alphas_normal=ours.alphas["normal"].grad, alphas_reduce=ours.alphas["reduce"].grad)
    plain_grads = {name: p.grad for name, p in plain.named_parameters()}
    assert ours_grads.keys() == plain_grads.keys()
    for name, grad in plain_grads.items():
        assert torch.allclose(ours_grads[name], grad), name
