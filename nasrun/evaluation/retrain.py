"""`nasrun-train ARCH_JSON_OR_RUN_DIR [key=value ...]`: retrain an architecture from scratch with a
final-training recipe (`conf/train.yaml`) for `repeats` seeds and report mean ± std test accuracy.

Given a run directory it trains that run's `best_architecture.json` on the run's dataset (its saved
`.hydra/config.yaml`); given an architecture JSON it uses the default dataset unless told otherwise.
Writes `<out>/retrain.json` (every repeat, mean ± std), `train_config.yaml`, `weights/seed_<s>.pt` and,
with `export=true`, the final model (the repeat with the best validation accuracy, else the first) in
`<out>/export/` (see nasrun/evaluation/export.py).
"""

from __future__ import annotations

import logging
import statistics
import time
from datetime import datetime
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from torch import nn

from nasrun.build import build_components
from nasrun.rundir import RunDir, atomic_write, atomic_write_json, guard_output, save_checkpoint
from nasrun.datasets import DataBundle, TensorSplit
from nasrun.datasets.base import Augment
from nasrun.config import compose_config, load_saved_config
from nasrun.errors import ConfigError
from nasrun.experiment import environment
from nasrun.evaluation.export import export_model, read_spec
from nasrun.hardware import seed_everything
from nasrun.nets import build_network, check_spec_size, network_accepts
from nasrun.nets.size import NetworkLimits
from nasrun.console import add_row, console, new_table, number_column
from nasrun.training import Recipe, accuracy, count_parameters, train_one_epoch

log = logging.getLogger("nasrun")
RECIPE_KEYS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "optimizer", "scheduler", "grad_clip",
               "label_smoothing")


# --- configuration -----------------------------------------------------------------------------------------
def train_config(source: Path, overrides: list[str]) -> tuple[DictConfig, dict]:
    """The recipe (conf/train.yaml composed through Hydra with `overrides`; given a run directory, the run's
    saved dataset and hardware stand in for the defaults) and the architecture spec."""
    saved = {}
    if source.is_dir():
        run_cfg = load_saved_config(source)
        saved = {group: run_cfg[group] for group in ("dataset", "hardware")}
        spec = read_spec(RunDir(source).best)
    else:
        spec = read_spec(source)
    cfg = compose_config("train", overrides, saved)
    check(cfg)
    return cfg, spec


def check(cfg: DictConfig) -> None:
    for key in ("repeats", "epochs", "batch_size"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]!r}")
    if cfg.train_on not in ("train", "train+val"):
        raise ConfigError(f"train_on must be train or train+val, got {cfg.train_on!r}")
    if not 0 <= float(cfg.drop_path_prob) < 1:
        raise ConfigError(f"drop_path_prob must be in [0, 1), got {cfg.drop_path_prob}")


# --- training ------------------------------------------------------------------------------------------------
def prepare_data(cfg: DictConfig) -> DataBundle:
    data = build_components(cfg, ["dataset"]).dataset.load()
    data.augment = Augment(**OmegaConf.to_container(cfg.augment))
    if cfg.train_on == "train+val":
        data.train = merge_splits(data.train, data.val)
    return data


def merge_splits(first, second):
    if isinstance(first, TensorSplit) and isinstance(second, TensorSplit):
        return TensorSplit(torch.cat([first.images, second.images]), torch.cat([first.labels, second.labels]))
    return torch.utils.data.ConcatDataset([first, second])


def network_options(spec: dict, cfg: DictConfig) -> dict:
    """The architecture's network options with the recipe's `network` overrides."""
    return {**spec["network"].get("options", {}), **OmegaConf.to_container(cfg.network)}


def wants_auxiliary(spec: dict, cfg: DictConfig, options: dict) -> bool:
    """Whether the network gets an auxiliary head: its builder offers one, and the recipe weighs it."""
    return network_accepts(spec["space"], "auxiliary") and "auxiliary" not in options and cfg.auxiliary_weight > 0


def build_model(spec: dict, cfg: DictConfig, data: DataBundle) -> tuple[nn.Module, dict]:
    """The network for `spec` on `data`, with an auxiliary head where its builder offers one."""
    options = network_options(spec, cfg)
    model = build_network(spec["space"], spec["arch"], data.input_shape, data.num_classes, **options)
    if wants_auxiliary(spec, cfg, options):
        options["auxiliary"] = True
        model = build_network(spec["space"], spec["arch"], data.input_shape, data.num_classes, **options)
    return model, options


def check_model_size(spec: dict, cfg: DictConfig, data: DataBundle, where: Path, limits: NetworkLimits | None) -> None:
    """Refuse (NetworkTooLarge) the network `build_model` would make, before anything is allocated."""
    options = network_options(spec, cfg)
    if wants_auxiliary(spec, cfg, options):
        options["auxiliary"] = True
    check_spec_size({**spec, "network": {**spec["network"], "options": options}}, where, limits,
                    data.input_shape, data.num_classes)


def loss_with_auxiliary(recipe: Recipe, weight: float):
    ce = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    def loss(output, y):
        if isinstance(output, tuple):
            return ce(output[0], y) + weight * ce(output[1], y)
        return ce(output, y)

    return loss


def train_repeat(spec: dict, cfg: DictConfig, data: DataBundle, hardware, seed: int, progress, task) -> tuple[dict, nn.Module, dict]:
    """One training from scratch; returns its scores, the model and the network options used."""
    start = time.perf_counter()
    seed_everything(seed)
    model, options = build_model(spec, cfg, data)
    model.to(hardware.device)
    recipe = Recipe(**{k: cfg[k] for k in RECIPE_KEYS})
    optimizer = recipe.make_optimizer(model.parameters())
    scheduler = recipe.make_scheduler(optimizer, -(-len(data.train) // recipe.batch_size))
    loss_fn = loss_with_auxiliary(recipe, float(cfg.auxiliary_weight))
    for epoch in range(1, recipe.epochs + 1):
        if hasattr(model, "drop_path_prob"):
            model.drop_path_prob = float(cfg.drop_path_prob) * (epoch - 1) / recipe.epochs
        train_loss = train_one_epoch(model, data, recipe, optimizer, scheduler, hardware, seed * 1000 + epoch, loss_fn)
        progress.update(task, advance=1, info=f"seed {seed}  train_loss={train_loss:.4f}")
    scores = {"seed": seed, "train_loss": train_loss, "params": count_parameters(model),
              "test_accuracy": accuracy(model, data, "test", hardware)}
    if cfg.train_on == "train":
        scores["val_accuracy"] = accuracy(model, data, "val", hardware)
    scores["seconds"] = round(time.perf_counter() - start, 3)
    return scores, model, options


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def retrain(source: Path, overrides: list[str], limits: NetworkLimits | None = None) -> tuple[Path, dict]:
    """Retrain `source`'s architecture into `out` (held with its lock: nasrun.rundir.guard_output); its
    network is checked against `limits` before `out` is made."""
    cfg, spec = train_config(source, overrides)
    out = Path(cfg.out) if cfg.out else Path("outputs") / "train" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    hardware = build_components(cfg, ["hardware"]).hardware
    data = prepare_data(cfg)
    hardware.apply(data.input_shape)
    check_model_size(spec, cfg, data, RunDir(source).best if source.is_dir() else source, limits)
    with guard_output(source, out, own_folder=True):
        return out, retrain_into(out, cfg, spec, source, hardware, data)


def retrain_into(out: Path, cfg: DictConfig, spec: dict, source: Path, hardware, data: DataBundle) -> dict:
    atomic_write(out / "train_config.yaml", OmegaConf.to_yaml(cfg))
    repeats, models = [], []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not cfg.progress) as progress:
        task = progress.add_task("retraining (epochs)", total=cfg.repeats * cfg.epochs, info="")
        for repeat in range(cfg.repeats):
            scores, model, options = train_repeat(spec, cfg, data, hardware, int(cfg.seed) + repeat, progress, task)
            save_checkpoint({k: v.detach().cpu() for k, v in model.state_dict().items()},
                            out / "weights" / f"seed_{scores['seed']}.pt")
            log.info("retrain seed %d: %s", scores["seed"], scores)
            repeats.append(scores)
            models.append(model)
    final = max(range(len(repeats)), key=lambda i: (repeats[i].get("val_accuracy", 0.0), -i))
    final_spec = {"space": spec["space"], "arch": spec["arch"],
                  "network": {"input_shape": list(data.input_shape), "num_classes": data.num_classes, "options": options},
                  **data.describe_input()}
    result = {
        "architecture": final_spec, "source": str(source), "dataset": data.name, "train_on": cfg.train_on,
        "recipe": OmegaConf.to_container(cfg, resolve=True), "repeats": repeats,
        "test_accuracy": mean_std([r["test_accuracy"] for r in repeats]),
        "val_accuracy": mean_std([r["val_accuracy"] for r in repeats]) if cfg.train_on == "train" else None,
        "final_model_seed": repeats[final]["seed"], "environment": environment(hardware),
    }
    if cfg.export:
        result["export"] = {k: str(out / "export" / v) for k, v in
                            export_model(models[final], final_spec, out / "export").items()}
    atomic_write_json(RunDir(out).retrain, result)
    return result


def results_table(result: dict, out: Path) -> Table:
    table = new_table(f"nasrun-train: {result['dataset']}, {len(result['repeats'])} seeds  ·  {out}")
    for column in ("seed", "val_accuracy", "test_accuracy", "params", "seconds"):
        number_column(table, column)
    for r in result["repeats"]:
        val = f"{r['val_accuracy']:.4f}" if "val_accuracy" in r else "-"
        add_row(table, r["seed"], val, f"{r['test_accuracy']:.4f}", f"{r['params']:,}", f"{r['seconds']:.1f}")
    test, val = result["test_accuracy"], result["val_accuracy"]
    add_row(table, "mean ± std", f"{val['mean']:.4f} ± {val['std']:.4f}" if val else "-",
            f"{test['mean']:.4f} ± {test['std']:.4f}", "", "", style="bold")
    return table
