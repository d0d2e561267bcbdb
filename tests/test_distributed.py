"""Data-parallel supernet training (gloo, 2 CPU processes) agrees with a single process."""

from __future__ import annotations

import json
import random

import pytest
import torch
from test_weight_sharing import estimator, macro_space, tiny_data
from torch import nn

from nasrun.rundir import RunDir
from nasrun import distributed
from nasrun.distributed import Distributed
from nasrun.run import spawn
from nasrun.run.spawn import FollowerContext
from nasrun.errors import ConfigError
from nasrun.experiment import run_experiment
from nasrun.hardware import Hardware

pytestmark = pytest.mark.slow  # several gloo processes per test: `make test-slow`

ALPHA_TOLERANCE = 1e-5  # float rounding of the sum over shards vs one mean over the global batch
GLOBAL_BATCH = 15       # odd on purpose: the two ranks get 8 and 7 samples


class ToySupernet(nn.Module):
    """Two edges, each a softmax(α)-weighted mix of three candidate ops, a BatchNorm, a linear classifier."""

    def __init__(self, width=6, classes=3):
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList([nn.Linear(width, width), nn.Sequential(nn.Linear(width, width), nn.Tanh()), nn.Identity()])
            for _ in range(2))
        self.alpha = nn.Parameter(1e-3 * torch.randn(2, 3))
        self.norm = nn.BatchNorm1d(width)
        self.head = nn.Linear(width, classes)

    def weights(self):
        return [p for name, p in self.named_parameters() if name != "alpha"]

    def forward(self, x):
        for edge, alpha in zip(self.edges, self.alpha.softmax(-1)):
            x = sum(w * op(x) for w, op in zip(alpha, edge))
        return self.head(self.norm(x))


def toy_search(group: Distributed, steps=12):
    """First-order DARTS on fixed random data: a weight step on a train batch, an α step on a val batch."""
    torch.manual_seed(0)
    model = group.prepare_model(ToySupernet())
    data = torch.randn(2, 60, 6, generator=torch.Generator().manual_seed(1))
    labels = (data[..., 0] > 0).long() + (data[..., 1] > 0.5).long()
    w_opt = torch.optim.SGD(model.weights(), lr=0.1, momentum=0.9)
    a_opt = torch.optim.Adam([model.alpha], lr=0.05)
    order = torch.randperm(60, generator=torch.Generator().manual_seed(2))
    for step in range(steps):
        index = order[(step * GLOBAL_BATCH) % 45:][:GLOBAL_BATCH]
        for split, optimizer, params in ((0, w_opt, model.weights()), (1, a_opt, [model.alpha])):
            x, y = group.shard(data[split][index], labels[split][index])
            optimizer.zero_grad()
            group.rescale(nn.functional.cross_entropy(model(x), y), GLOBAL_BATCH).backward()
            group.average_gradients(params)
            optimizer.step()
    alpha = model.alpha.detach().clone()
    return group.agree(alpha.argmax(-1).tolist()), alpha, model.norm.running_mean.clone()


def _search_on_rank(out_dir: str) -> None:
    group = distributed.init(Hardware("cpu"))
    try:
        arch, alpha, running_mean = toy_search(group)
        mean = group.mean_over_ranks({"rank": group.rank})
        torch.save({"arch": arch, "alpha": alpha, "running_mean": running_mean, "mean_rank": mean["rank"]},
                   f"{out_dir}/rank{group.rank}.pt")
    finally:
        distributed.finish()


def test_two_gloo_processes_derive_what_one_process_derives(tmp_path):
    single_arch, single_alpha, single_running_mean = toy_search(Distributed())
    spawn.launch(_search_on_rank, 2, str(tmp_path))
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["arch"] == single_arch
        assert torch.allclose(result["alpha"], single_alpha, atol=ALPHA_TOLERANCE, rtol=0)
        assert torch.allclose(result["running_mean"], single_running_mean, atol=1e-5)  # BatchNorm saw the global batch
        assert result["mean_rank"] == 0.5
    assert (single_alpha - ToySupernet().alpha.detach()).abs().max() > 1e-2  # α really was trained


def test_shards_cover_the_global_batch_and_weights_sum_to_one():
    batch = torch.arange(15)
    parts = [Distributed(rank, 2).shard(batch) for rank in (0, 1)]
    assert torch.equal(torch.cat(parts), batch) and [len(p) for p in parts] == [8, 7]
    assert sum(Distributed(rank, 4).share(15) for rank in range(4)) == pytest.approx(1.0)
    single = Distributed()
    assert single.shard(batch) is batch and single.agree([1, 2]) == [1, 2]


def test_follower_ranks_read_the_saved_search_state_but_write_nothing(tmp_path):
    RunDir(tmp_path).search_state.parent.mkdir()
    torch.save({"epoch": 3}, RunDir(tmp_path).search_state)
    context = FollowerContext(None, None, Hardware("cpu"), tmp_path, 0)
    assert context.load_state() == {"epoch": 3}
    context.save_state({"epoch": 4})
    assert context.run_dir is None and torch.load(RunDir(tmp_path).search_state) == {"epoch": 3}


SUPERNET_TOLERANCE = 1e-5  # float rounding: sums over shards vs one mean over the global batch
SCORE_TOLERANCE = 0.01     # one-shot accuracy of a whole run: rounding differences grow over the steps
WS_OPTIONS = {"epochs": 2, "batch_size": 15, "sampling": "sandwich", "sandwich_random": 1, "lr": 0.05}


def train_macro_supernet(run_dir) -> tuple[dict, list[float]]:
    """A macro-space supernet (elastic widths: ElasticBN) trained two epochs on batches of 15 (shards of 8
    and 7), and the one-shot scores of three architectures."""
    space = macro_space()
    ws = estimator(space, tiny_data(), run_dir, **WS_OPTIONS)
    archs = [space.sample(random.Random(k)) for k in range(3)]
    return ws.supernet.state_dict(), [ws.evaluate(arch, 0).metrics["val_accuracy"] for arch in archs]


def _train_supernet_on_rank(out_dir: str) -> None:
    group = distributed.init(Hardware("cpu"))
    try:
        weights, scores = train_macro_supernet(f"{out_dir}/run{group.rank}")
        torch.save({"weights": weights, "scores": scores}, f"{out_dir}/rank{group.rank}.pt")
    finally:
        distributed.finish()


def test_weight_sharing_supernet_on_two_gloo_processes_matches_one_process(tmp_path):
    single_weights, single_scores = train_macro_supernet(tmp_path / "single")
    spawn.launch(_train_supernet_on_rank, 2, str(tmp_path))
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["scores"] == single_scores
        for name, value in single_weights.items():
            assert torch.allclose(result["weights"][name].float(), value.float(), atol=SUPERNET_TOLERANCE, rtol=0), name
    assert RunDir(tmp_path / "run0").supernet.is_file()
    assert not (tmp_path / "run1").exists()  # only rank 0 writes


def test_several_devices_need_a_supernet(compose_cfg, tmp_path):
    cfg = compose_cfg(["hardware=cpu", "hardware.devices=2", "budget.trials=1"])
    with pytest.raises(ConfigError, match="one-shot strategy"):
        run_experiment(cfg, tmp_path, show_progress=False)
    with pytest.raises(ConfigError, match="devices"):
        Hardware("cpu", devices=0)


DARTS_TINY = ["hardware=cpu", "hardware.threads=1", "search_space=darts", "strategy=darts", "search_space.C=4",
              "search_space.layers=3", "strategy.epochs=2", "strategy.C=8", "strategy.layers=3",
              "strategy.steps_per_epoch=1", "strategy.batch_size=15", "estimator.epochs=1", "final_test=false",
              "report=false", "progress=false"]


def test_darts_on_two_gloo_processes_derives_what_one_process_derives(compose_cfg, tmp_path):
    single = run_experiment(compose_cfg(DARTS_TINY), tmp_path / "single", show_progress=False)
    spawned = run_experiment(compose_cfg([*DARTS_TINY, "hardware.devices=2"]), tmp_path / "ddp", show_progress=False)
    assert spawned["best_arch"] == single["best_arch"]
    epochs = [[json.loads(line) for line in RunDir(tmp_path / run).alphas.read_text().splitlines()]
              for run in ("single", "ddp")]
    assert len(epochs[0]) == len(epochs[1]) == 2
    for one, two in zip(*epochs):
        for cell, weights in one["alphas"].items():
            assert torch.allclose(torch.tensor(two["alphas"][cell]), torch.tensor(weights), atol=ALPHA_TOLERANCE, rtol=0)
    assert len(RunDir(tmp_path / "ddp").trials.read_text().splitlines()) == 1  # rank 0 alone writes


WS_TINY = ["hardware=cpu", "hardware.threads=1", "estimator=weight_sharing", "estimator.retrain.enabled=false",
           "estimator.batch_size=63", "budget.trials=3", "estimator.epochs=1", "search_space.min_layers=2",
           "search_space.max_layers=3", "progress=false", "report=false"]


@pytest.mark.slow
def test_weight_sharing_run_on_two_gloo_processes_scores_what_one_process_scores(compose_cfg, tmp_path):
    run_experiment(compose_cfg(WS_TINY), tmp_path / "single", show_progress=False)
    run_experiment(compose_cfg([*WS_TINY, "hardware.devices=2"]), tmp_path / "ddp", show_progress=False)
    trials = [[json.loads(line) for line in RunDir(tmp_path / run).trials.read_text().splitlines()]
              for run in ("single", "ddp")]
    assert len(trials[1]) == 3  # rank 0 alone writes the run directory
    assert [t["arch"] for t in trials[1]] == [t["arch"] for t in trials[0]]
    for one, two in zip(*trials):  # rounding differences grow over the ~17 steps: allow 1% (3 of 359 images)
        assert two["metrics"]["val_accuracy"] == pytest.approx(one["metrics"]["val_accuracy"], abs=SCORE_TOLERANCE)
    assert RunDir(tmp_path / "ddp").supernet.is_file()
