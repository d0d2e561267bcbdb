"""Weight sharing: supernets compute what their extracted subnets compute, the training strategies train
what they promise, evaluations are cheap and never retrain, the supernet cache resumes, the CLI runs."""

from __future__ import annotations

import json
import pickle
import random

import pytest
import torch

import nasrun.supernets.training as supernet_training
from conftest import SMALL_DIGITS, TINY, run_cli, run_dirs
from nasrun.datasets.base import DataBundle, TensorSplit
from nasrun.rundir import RunDir
from nasrun.errors import CheckpointError, ConfigError, InvalidArchitecture
from nasrun.estimators.weight_sharing import WeightSharing
from nasrun.hardware import Hardware
from nasrun.nets import load_network
from nasrun.spaces.darts import DartsSpace
from nasrun.spaces.macro import MacroSpace
from nasrun.spaces.nb201 import NB201Space
from nasrun.supernets import Supernet, build_supernet
from nasrun.supernets.macro import op_kind

CPU = Hardware("cpu")


def tiny_data(train: int = 96, val: int = 32, classes: int = 4, size: int = 8) -> DataBundle:
    generator = torch.Generator().manual_seed(0)

    def split(n):
        labels = torch.randint(0, classes, (n,), generator=generator)
        images = torch.randn(n, 1, size, size, generator=generator) + labels[:, None, None, None].float()
        return TensorSplit(images, labels)

    return DataBundle("tiny", split(train), split(val), split(val), classes, (1, size, size))


def macro_space(**options) -> MacroSpace:
    return MacroSpace(**{"min_layers": 2, "max_layers": 4, "widths": (4, 8, 12), **options})


def estimator(space, data=None, run_dir=None, steps=None, **options) -> WeightSharing:
    torch.manual_seed(0)
    options = {"epochs": 1, "batch_size": 32, "calibration_batches": 1, "calibration_batch_size": 16,
               "retrain": {"enabled": False}, **options}
    ws = WeightSharing(**options)
    ws.bind(space, data or tiny_data(), CPU, run_dir, steps=steps)
    return ws


def randomise_batch_norm(net: torch.nn.Module) -> None:
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 2)
            module.bias.data.uniform_(-1, 1)


@pytest.mark.parametrize("space, size", [(macro_space(skip_window=3), 9), (NB201Space(C=4, N=1), 8),
                                         (DartsSpace(C=4, layers=3), 8),
                                         (DartsSpace(C=4, layers=2, auxiliary=True, drop_path_prob=0.2,
                                                     stem="imagenet"), 8)],
                         ids=["macro", "nb201", "darts", "darts-imagenet-aux"])
def test_extracted_subnet_computes_exactly_what_the_supernet_path_computes(space, size):
    torch.manual_seed(0)
    supernet = build_supernet(space, (1, size, size), 5)
    randomise_batch_norm(supernet)
    supernet.eval()
    x = torch.randn(4, 1, size, size)
    rng = random.Random(0)
    for arch in [supernet.largest(), supernet.smallest()] + [space.sample(rng) for _ in range(25)]:
        supernet.set_active(arch)
        subnet = supernet.extract(arch).eval()
        assert type(subnet) is type(space.build(arch, (1, size, size), 5))
        torch.testing.assert_close(subnet(x), supernet(x), rtol=1e-5, atol=1e-6)


def test_darts_supernet_computes_only_the_chosen_edges_and_needs_every_node_concatenated():
    space = DartsSpace(C=4, layers=3)
    supernet = build_supernet(space, (1, 8, 8), 3)
    arch = space.sample(random.Random(1))
    supernet.set_active(arch)
    supernet(torch.randn(2, 1, 8, 8)).sum().backward()
    normal = supernet.cells[0]
    chosen = {(position // 2, source, op) for position, (op, source) in enumerate(arch["normal"])}
    for node, inputs in enumerate(normal.edges):
        for source, mixed in enumerate(inputs):
            for op, module in mixed.ops.items():
                grads = [p.grad is not None for p in module.parameters()]
                assert all(grads) if (node, source, op) in chosen else not any(grads)
    largest, smallest = supernet.largest(), supernet.smallest()
    assert {op for op, _ in largest["normal"] + largest["reduce"]} == {"sep_conv_5x5"}
    assert {op for op, _ in smallest["normal"] + smallest["reduce"]} == {"dil_conv_3x3"}
    with pytest.raises(InvalidArchitecture, match="every intermediate node"):
        supernet.set_active({**arch, "normal_concat": [2, 3]})


def test_macro_supernet_shares_one_weight_per_slot_across_kernels_and_widths():
    space = macro_space(ops=("conv3x3", "conv5x5", "conv7x7", "identity"))
    supernet = build_supernet(space, (1, 8, 8), 3)
    arch = space.sample(random.Random(0))
    arch["layers"][0].update(op="conv3x3", width=4)
    slot_weight = supernet.slots[0].candidates["conv"].block.conv.weight
    assert slot_weight.shape[-1] == 7 and slot_weight.shape[0] == 12
    subnet = supernet.extract(arch)
    torch.testing.assert_close(subnet.layers[0].op[0].weight, slot_weight[:4, :, 2:5, 2:5])


def record_training(monkeypatch) -> list[tuple[str, bool, dict]]:
    """Every supernet forward during training: (arch key, gradients on?, arch)."""
    calls = []
    original = Supernet.forward

    def spy(self, x):
        calls.append((self.space.key(self.active), torch.is_grad_enabled(), self.active))
        return original(self, x)

    monkeypatch.setattr(Supernet, "forward", spy)
    return calls


def test_uniform_sampling_trains_one_random_path_per_step(monkeypatch):
    calls = record_training(monkeypatch)
    estimator(macro_space(), epochs=2)
    assert len(calls) == 2 * 3                      # 96 images / 32 per batch, 2 epochs, one path each
    assert len({key for key, _, _ in calls}) > 1 and all(grad for _, grad, _ in calls)


def test_sandwich_trains_largest_smallest_and_random_paths_each_step(monkeypatch):
    calls = record_training(monkeypatch)
    ws = estimator(macro_space(), sampling="sandwich", sandwich_random=2)
    largest, smallest = (ws.space.key(a) for a in (ws.supernet.largest(), ws.supernet.smallest()))
    assert len(calls) == 3 * 4
    for step in range(3):
        keys = [key for key, _, _ in calls[4 * step:4 * step + 4]]
        assert keys[:2] == [largest, smallest] and largest not in keys[2:]
    largest_arch = calls[0][2]
    assert len(largest_arch["layers"]) == 4 and {layer["width"] for layer in largest_arch["layers"]} == {12}
    assert {layer["op"] for layer in largest_arch["layers"]} == {"conv7x7"}
    smallest_arch = calls[1][2]
    assert len(smallest_arch["layers"]) == 2 and {layer["width"] for layer in smallest_arch["layers"]} == {4}
    assert {layer["op"] for layer in smallest_arch["layers"]} == {"conv3x3"}


def test_sandwich_accumulates_gradients_of_all_its_paths(monkeypatch):
    """One optimizer step per batch, whatever the number of paths."""
    steps = []
    original = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: (steps.append(1), original(self, *a, **k))[1])
    estimator(macro_space(), sampling="sandwich", sandwich_random=3)
    assert len(steps) == 3


def test_progressive_shrinking_enables_kernel_then_depth_then_width(monkeypatch):
    calls = record_training(monkeypatch)
    estimator(macro_space(), data=tiny_data(train=32 * 40), epochs=1, sampling="progressive_shrinking")
    archs = [arch for _, _, arch in calls]
    stages = [archs[i * 10:(i + 1) * 10] for i in range(4)]     # 40 steps, 4 stages of 10

    def kernels(group):
        return {op_kind(layer["op"])[1] for a in group for layer in a["layers"] if op_kind(layer["op"])[0] == "conv"}

    def depths(group):
        return {len(a["layers"]) for a in group}

    def widths(group):
        return {layer["width"] for a in group for layer in a["layers"]}

    assert kernels(stages[0]) == {7} and depths(stages[0]) == {4} and widths(stages[0]) == {12}
    assert len(kernels(stages[1])) > 1 and depths(stages[1]) == {4} and widths(stages[1]) == {12}
    assert len(depths(stages[2])) > 1 and widths(stages[2]) == {12}
    assert len(widths(stages[3])) > 1


def test_progressive_shrinking_needs_elastic_dimensions():
    with pytest.raises(ConfigError, match="elastic"):
        estimator(NB201Space(C=4, N=1), sampling="progressive_shrinking")


def spy_distillation(monkeypatch) -> list[torch.Tensor]:
    """The teacher logits of every distillation loss computed."""
    teachers = []
    original = supernet_training.distillation_loss

    def spy(student, teacher, target, kd, ce):
        teachers.append(teacher)
        return original(student, teacher, target, kd, ce)

    monkeypatch.setattr(supernet_training, "distillation_loss", spy)
    return teachers


def test_distillation_trains_the_largest_subnet_and_teaches_the_sampled_one_with_it(monkeypatch):
    outputs = []
    original_forward = Supernet.forward
    monkeypatch.setattr(Supernet, "forward", lambda self, x: outputs.append(original_forward(self, x)) or outputs[-1])
    calls = record_training(monkeypatch)
    teachers = spy_distillation(monkeypatch)
    ws = estimator(macro_space(), kd={"teacher": "largest", "temperature": 4, "alpha": 0.7})
    largest = ws.space.key(ws.supernet.largest())
    assert len(calls) == 6 and len(teachers) == 3            # per step: the largest (CE), then the sample (KD)
    for step in range(3):
        (teacher_key, teacher_grad, _), (student_key, student_grad, _) = calls[2 * step:2 * step + 2]
        assert teacher_key == largest and teacher_grad and student_grad and student_key != largest
        assert not teachers[step].requires_grad
        torch.testing.assert_close(teachers[step], outputs[2 * step].detach())


def test_sandwich_distils_in_place_from_the_largest_path(monkeypatch):
    teachers = spy_distillation(monkeypatch)
    calls = record_training(monkeypatch)
    estimator(macro_space(), sampling="sandwich", sandwich_random=1, kd={"teacher": "largest"})
    assert len(calls) == 3 * 3 and len(teachers) == 3 * 2   # smallest and random distil; largest does not


def saved_teacher(tmp_path, space, data) -> tuple:
    """A trained-looking network saved as a run saves its best architecture."""
    arch = space.sample(random.Random(5))
    network = space.build(arch, data.input_shape, data.num_classes)
    RunDir(tmp_path).best_weights.parent.mkdir(parents=True)
    torch.save(network.state_dict(), RunDir(tmp_path).best_weights)
    spec = {"space": space.name, "arch": arch, "network": {"input_shape": list(data.input_shape),
                                                            "num_classes": data.num_classes, "options": {}}}
    RunDir(tmp_path).best.write_text(json.dumps(spec))
    return RunDir(tmp_path).best, network.eval()


def test_distillation_from_a_given_teacher_network(tmp_path, monkeypatch):
    data, space = tiny_data(), macro_space()
    spec, network = saved_teacher(tmp_path, space, data)
    calls, teachers = record_training(monkeypatch), spy_distillation(monkeypatch)
    estimator(space, data=data, kd={"teacher": str(spec)})
    assert len(calls) == 3 and len(teachers) == 3            # no extra path: every sampled subnet distils
    first_batch, _ = next(data.loader("train", 32, shuffle=True, seed=torch.initial_seed() * 1_000 + 1))
    with torch.no_grad():
        torch.testing.assert_close(teachers[0], network(first_batch))
    wrong = tiny_data(classes=3)
    with pytest.raises(ConfigError, match="classes"):
        estimator(space, data=wrong, kd={"teacher": str(spec)})
    with pytest.raises(ConfigError, match="not found"):
        estimator(space, data=data, kd={"teacher": str(tmp_path / "missing.json")})


def test_distillation_loss_weighs_soft_and_hard_targets():
    ce = torch.nn.CrossEntropyLoss()
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    only_soft = supernet_training.Distillation("largest", temperature=4.0, alpha=1.0)
    assert supernet_training.distillation_loss(logits, logits, y, only_soft, ce).item() == pytest.approx(0, abs=1e-6)
    only_hard = supernet_training.Distillation("largest", temperature=4.0, alpha=0.0)
    assert supernet_training.distillation_loss(logits, torch.randn(8, 5), y, only_hard, ce).item() == \
        pytest.approx(ce(logits, y).item())


@pytest.mark.slow  # 100 evaluations: `make test-slow`
def test_evaluating_100_architectures_costs_far_less_than_training_the_supernet():
    """Forward passes counted in images. Evaluation: calibration + validation, forward only. Training:
    epochs x train images, forward and backward (a backward costs about two forwards)."""
    data = tiny_data(train=2000, val=40)
    ws = estimator(macro_space(), data=data, epochs=10)
    training_cost = 3 * ws.supernet.forward_samples
    parameters = [p.detach().clone() for p in ws.supernet.parameters()]
    before = ws.supernet.forward_samples
    rng = random.Random(0)
    scores = [ws.evaluate(ws.space.sample(rng), seed=0).metrics["val_accuracy"] for _ in range(100)]
    evaluation_cost = ws.supernet.forward_samples - before
    assert evaluation_cost == 100 * (16 + 40)
    assert 10 * evaluation_cost < training_cost
    assert all(torch.equal(a, b) for a, b in zip(parameters, ws.supernet.parameters()))   # nothing trained
    assert len(set(scores)) > 1 and all(0 <= s <= 1 for s in scores)


def test_scores_do_not_depend_on_evaluation_order():
    ws = estimator(macro_space())
    first, second = (ws.space.sample(random.Random(i)) for i in (1, 2))
    a = ws.evaluate(first, 0).metrics["val_accuracy"]
    ws.evaluate(second, 0)
    assert ws.evaluate(first, 0).metrics["val_accuracy"] == a


def test_supernet_is_cached_in_the_run_dir_and_never_retrained(tmp_path):
    ws = estimator(macro_space(), run_dir=tmp_path, epochs=2)
    assert RunDir(tmp_path).supernet.is_file()
    again = estimator(macro_space(), run_dir=tmp_path, epochs=2)
    assert again.supernet.forward_samples == 0
    for a, b in zip(ws.supernet.state_dict().values(), again.supernet.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="another space"):
        estimator(macro_space(widths=(4, 8)), run_dir=tmp_path, epochs=2)


def test_interrupted_supernet_training_resumes_from_the_last_finished_epoch(tmp_path, monkeypatch):
    uninterrupted = estimator(macro_space(), run_dir=tmp_path / "a", epochs=3)
    original = supernet_training.train_supernet_epoch

    def crash_in_epoch_3(*args):
        if args[9] == 3:                                  # the epoch argument
            raise KeyboardInterrupt
        return original(*args)

    import nasrun.estimators.weight_sharing as module
    monkeypatch.setattr(module, "train_supernet_epoch", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        estimator(macro_space(), run_dir=tmp_path / "b", epochs=3)
    monkeypatch.setattr(module, "train_supernet_epoch", original)
    resumed = estimator(macro_space(), run_dir=tmp_path / "b", epochs=3)
    assert resumed.supernet.forward_samples == 96        # only epoch 3 ran
    for a, b in zip(uninterrupted.supernet.state_dict().values(), resumed.supernet.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_supernet_training_reports_every_step_and_keeps_no_reference_to_the_report(tmp_path):
    steps = []
    ws = estimator(macro_space(), run_dir=tmp_path, steps=lambda *step: steps.append(step), epochs=2)
    assert steps == [(done, 3, 2) for done in range(1, 7)]     # 96 images in batches of 32, 2 epochs
    pickle.dumps(ws)                                           # worker processes still get the estimator
    loaded = []
    estimator(macro_space(), run_dir=tmp_path, steps=lambda *step: loaded.append(step), epochs=2)
    assert loaded == []                                        # a trained supernet is loaded, not stepped


def test_estimator_pickles_with_its_trained_supernet():
    ws = estimator(NB201Space(C=4, N=1))
    arch = ws.space.sample(random.Random(0))
    copy = pickle.loads(pickle.dumps(ws))
    assert copy.evaluate(arch, 0).metrics["val_accuracy"] == ws.evaluate(arch, 0).metrics["val_accuracy"]


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="sampling"):
        WeightSharing(sampling="greedy")
    with pytest.raises(ConfigError, match="teacher"):
        WeightSharing(kd={"teacher": 3})
    with pytest.raises(ConfigError, match="temperature"):
        WeightSharing(kd={"teacher": "largest", "temperature": 0})
    with pytest.raises(ConfigError, match="retrain"):
        WeightSharing(retrain={"epochz": 3})
    unsupported = macro_space()
    unsupported.name = "resnet"
    with pytest.raises(ConfigError, match="no supernet for search_space 'resnet'"):
        build_supernet(unsupported, (1, 8, 8), 3)


def test_final_test_with_and_without_retraining(tmp_path):
    data = tiny_data()
    ws = estimator(macro_space(), data=data, run_dir=tmp_path, retrain={"epochs": 1})
    arch = ws.space.sample(random.Random(0))
    tested = ws.test(arch, ws.evaluate(arch, 0), seed=0)
    assert set(tested.metrics) >= {"oneshot_val_accuracy", "standalone_val_accuracy", "test_accuracy",
                                   "oneshot_test_accuracy"}
    assert tested.weights and all(torch.is_tensor(value) for value in tested.weights.values())
    assert not RunDir(tmp_path).retrained_weights.exists()  # the run directory's recorder writes them
    ws.retrain_enabled = False
    inherited = ws.test(arch, ws.evaluate(arch, 0), seed=0)
    assert "standalone_val_accuracy" not in inherited
    assert inherited["test_accuracy"] == inherited["oneshot_test_accuracy"]


@pytest.mark.slow
def test_cli_weight_sharing_writes_both_scores(tmp_path):
    result = run_cli(["estimator=weight_sharing", *TINY, "progress=true"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    summary = json.loads(RunDir(run).summary.read_text())
    steps = -(-256 // 64)                 # scale=tiny keeps 256 of digits' training images; estimator batches
    assert summary["cost"]["phase"] == "supernet training"
    assert summary["cost"]["factors"] == {"steps_per_epoch": steps, "epochs": 1}
    bar = next(line for line in result.stderr.splitlines() if line.startswith("supernet training"))
    assert f"{steps}/{steps}" in bar                            # the bar counted steps, not the one epoch
    assert summary["trials"] == 2 and summary["estimator"] == "weight_sharing"
    assert {"oneshot_val_accuracy", "standalone_val_accuracy", "test_accuracy"} <= set(summary["test"])
    assert RunDir(run).supernet.is_file() and RunDir(run).retrained_weights.is_file()
    best = json.loads(RunDir(run).best.read_text())
    assert best["metrics"]["oneshot_val_accuracy"] == best["metrics"]["val_accuracy"]
    network = load_network(RunDir(run).best)          # inherited weights fit the rebuilt net
    network.load_state_dict(torch.load(RunDir(run).best_weights, weights_only=True))
    network.load_state_dict(torch.load(RunDir(run).retrained_weights, weights_only=True))


@pytest.mark.slow
def test_cli_nb201_sandwich_with_distillation_and_inherited_test(tmp_path):
    result = run_cli(["estimator=weight_sharing", "search_space=nb201", "search_space.C=4", "search_space.N=1",
                      "estimator.sampling=sandwich", "estimator.sandwich_random=0", "estimator.kd.teacher=largest",
                      "estimator.retrain.enabled=false",
                      "budget.trials=2", "estimator.epochs=1", "progress=false", *SMALL_DIGITS], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    summary = json.loads(RunDir(run).summary.read_text())
    assert summary["trials"] == 2 and "standalone_val_accuracy" not in summary["test"]
    assert summary["test"]["test_accuracy"] == summary["test"]["oneshot_test_accuracy"]


@pytest.mark.slow
def test_cli_darts_weight_sharing_scores_one_shot_and_standalone(tmp_path):
    result = run_cli(["estimator=weight_sharing", "search_space=darts", "search_space.C=4", "search_space.layers=3",
                      "budget.trials=2", "estimator.epochs=1", "progress=false", *SMALL_DIGITS],
                     tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    summary = json.loads(RunDir(run).summary.read_text())
    assert summary["trials"] == 2 and summary["estimator"] == "weight_sharing"
    assert {"oneshot_val_accuracy", "standalone_val_accuracy", "test_accuracy"} <= set(summary["test"])
    network = load_network(RunDir(run).best)
    network.load_state_dict(torch.load(RunDir(run).best_weights, weights_only=True))
    network.load_state_dict(torch.load(RunDir(run).retrained_weights, weights_only=True))


def test_narrow_batch_norm_updates_only_its_leading_channels():
    from nasrun.supernets.macro import ElasticBN

    norm = ElasticBN(8)
    norm.reset_running_stats()
    norm.momentum = None                                   # cumulative average, as in recalibration
    norm(torch.randn(64, 4, 3, 3) + 5)
    norm(torch.randn(64, 4, 3, 3) + 3)
    assert torch.allclose(norm.running_mean[:4], torch.full((4,), 4.0), atol=0.2)
    assert torch.equal(norm.running_mean[4:], torch.zeros(4))


def test_diverging_supernet_training_is_a_one_line_error():
    with pytest.raises(ConfigError, match="diverged"):
        estimator(macro_space(), lr=1e30, grad_clip=None, momentum=0.0)
