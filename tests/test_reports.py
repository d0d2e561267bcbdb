"""Run reports: PNG plots with real content, TensorBoard scalars, and the environment in summary.json."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from nasrun.experiment import run_experiment
from nasrun.rundir import RunDir
from nasrun.nets.nb201 import format_arch
from nasrun.reports.drawing import draw_architecture
from nasrun.reports.run_report import write_run_report
from nasrun.run.tensorboard import tensorboard_available

from conftest import SMALL_DIGITS, compose_config, run_cli, write_run_config

SEARCH = ["budget.trials=3", "estimator.epochs=2", "search_space.min_layers=2", "search_space.max_layers=3",
          "progress=false", *SMALL_DIGITS]
GENOTYPE = {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["dil_conv_3x3", 2],
                       ["sep_conv_5x5", 1], ["skip_connect", 0], ["max_pool_3x3", 3], ["skip_connect", 2]],
            "normal_concat": [2, 3, 4, 5],
            "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 0],
                       ["avg_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["avg_pool_3x3", 0]],
            "reduce_concat": [2, 3, 4, 5]}


def assert_real_png(path: Path, min_colours: int = 8) -> None:
    """A readable PNG that is not blank: several colours, and ink in more than a sliver of it."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    image = Image.open(path).convert("RGB")
    image.load()
    assert image.width > 200 and image.height > 150
    assert len(image.getcolors(maxcolors=1 << 20)) >= min_colours, path
    grey = image.convert("L")
    inked = sum(count for value, count in enumerate(grey.histogram()) if value < 200)
    assert inked > 0.002 * image.width * image.height, path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    cfg = compose_config(SEARCH)
    run_dir = tmp_path_factory.mktemp("report") / "run"
    write_run_config(run_dir, cfg)
    run_experiment(cfg, run_dir, show_progress=False)
    return run_dir


def test_each_run_writes_its_plots(finished_run):
    plots = RunDir(finished_run).plots
    assert sorted(p.name for p in plots.glob("*.png")) == ["best_architecture.png", "best_so_far_time.png",
                                                           "best_so_far_trials.png"]
    for path in plots.glob("*.png"):
        assert_real_png(path)


def test_report_command_draws_alpha_trajectories(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("trials.jsonl", "best_architecture.json"):
        (run_dir / name).write_text((finished_run / name).read_text())
    ops = ["none", "skip_connect", "sep_conv_3x3"]
    lines = []
    for epoch in range(1, 6):
        weights = torch.softmax(torch.arange(3.0) * epoch / 5 + torch.arange(5.0)[:, None] / 10, dim=1).tolist()
        lines.append(json.dumps({"epoch": epoch, "ops": ops, "alphas": {"normal": weights, "reduce": weights[:3]}}))
    RunDir(run_dir).alphas.write_text("\n".join(lines) + "\n" + '{"epoch": 6, "op')   # torn last line
    result = run_cli([str(run_dir)], tmp_path, command="nasrun-report")
    assert result.returncode == 0, result.stderr
    for name in ("alphas_normal.png", "alphas_reduce.png", "best_so_far_trials.png", "best_architecture.png"):
        assert_real_png(RunDir(run_dir).plots / name)
    page = RunDir(run_dir).report.read_text()
    assert "α over epochs: normal cell" in page and "α over epochs: reduce cell" in page
    assert run_cli([str(tmp_path / "nothing")], tmp_path, command="nasrun-report").returncode == 2


@pytest.mark.parametrize("space,arch", [("nb201", format_arch(["nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none",
                                                                "nor_conv_1x1", "skip_connect"])),
                                        ("darts", GENOTYPE)])
def test_cells_are_drawn_as_dags(space, arch, tmp_path):
    path = draw_architecture(space, arch, tmp_path / "cell.png", engine="matplotlib")
    assert_real_png(path)


def test_a_failing_plot_warns_and_the_rest_are_drawn(finished_run, tmp_path, caplog):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    RunDir(run_dir).trials.write_text(RunDir(finished_run).trials.read_text())
    RunDir(run_dir).best.write_text(json.dumps({"space": "nb201", "arch": "|garbage|"}))
    with caplog.at_level(logging.WARNING, logger="nasrun"):
        written = write_run_report(run_dir)
    assert {p.name for p in written} == {"best_so_far_trials.png", "best_so_far_time.png", "report.html"}
    assert "could not draw best architecture" in caplog.text


@pytest.mark.skipif(not tensorboard_available(), reason="tensorboard is not installed")
def test_tensorboard_scalars_per_trial_and_epoch(finished_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    search = EventAccumulator(str(RunDir(finished_run).tensorboard / "search"))
    search.Reload()
    trials = [json.loads(line) for line in RunDir(finished_run).trials.read_text().splitlines()]
    logged = [e.value for e in search.Scalars("trial/val_accuracy")]
    assert logged == pytest.approx([t["metrics"]["val_accuracy"] for t in trials])
    assert [e.value for e in search.Scalars("search/best_score")][-1] == pytest.approx(max(logged))
    first = EventAccumulator(str(RunDir(finished_run).tensorboard / "trial_0"))
    first.Reload()
    assert [e.step for e in first.Scalars("epoch/train_loss")] == [1, 2]


def test_summary_records_the_environment(finished_run):
    from importlib import metadata

    import hydra

    summary = json.loads(RunDir(finished_run).summary.read_text())
    versions = summary["versions"]
    assert versions["python"] == platform.python_version()
    assert versions["torch"] == torch.__version__ and versions["torchvision"] == metadata.version("torchvision")
    assert versions["hydra"] == hydra.__version__
    assert {"nasrun", "numpy", "omegaconf", "cuda", "cudnn"} <= set(versions)
    assert summary["seed"] == 0 and summary["device"] == "cpu" and summary["device_name"]
    assert summary["platform"] and "git_commit" in summary and "git_dirty" in summary
    assert summary["git_commit"] is None or len(summary["git_commit"]) == 40


def test_graphviz_source_when_dot_exists(tmp_path, monkeypatch):
    """With a `dot` binary the drawing goes through graphviz; here a stand-in records the DOT source."""
    import nasrun.reports.drawing as drawing

    sources = []

    def fake_dot(command, input, **kwargs):  # the PNG comes back on stdout (written whole by nasrun)
        assert command == ["dot", "-Tpng"]
        sources.append(input.decode())
        return subprocess.CompletedProcess(command, 0, stdout=b"\x89PNG\r\n\x1a\n", stderr=b"")

    monkeypatch.setattr(drawing.shutil, "which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr(drawing.subprocess, "run", fake_dot)
    macro = {"stem": 8, "layers": [{"op": "conv3x3", "width": 8, "stride": 2, "skips": []},
                                   {"op": "identity", "width": 8, "stride": 1, "skips": [0]}]}
    assert draw_architecture("macro", macro, tmp_path / "a.png") == tmp_path / "a.png"
    assert (tmp_path / "a.png").read_bytes() == b"\x89PNG\r\n\x1a\n"
    assert '"0_n1" [label="conv3x3\\n8 ↓2"];' in sources[0]
    assert '"0_n0" -> "0_n2" [label="", style=dashed];' in sources[0]
    draw_architecture("darts", GENOTYPE, tmp_path / "b.png")
    assert sources[1].count("subgraph cluster_") == 2 and '[label="dil_conv_3x3"]' in sources[1]


def test_report_false_leaves_the_plots_to_nasrun_report(compose_cfg, tmp_path):
    tabular = ["search_space=nb201", "estimator=nb201", "budget.trials=4", "progress=false", "report=false"]
    run_experiment(compose_cfg(tabular), tmp_path / "run", show_progress=False)
    assert not RunDir(tmp_path / "run").plots.exists()
    result = run_cli([str(tmp_path / "run")], tmp_path, command="nasrun-report")
    assert result.returncode == 0, result.stderr
    assert_real_png(RunDir(tmp_path / "run").plots / "best_so_far_trials.png")
