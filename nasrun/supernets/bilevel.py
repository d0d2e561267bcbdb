"""Bilevel training of an α-weighted supernet: what DARTS, PC-DARTS and GDAS share. The strategies
(nasrun/strategies/darts.py, pcdarts.py, gdas.py) choose the supernet and the per-epoch settings; this
module trains it and derives the architecture.

The training split is cut in two (seeded): network weights w train on one half, architecture
parameters α on the other; the validation split stays untouched for scoring the derived architecture.
Each step first updates α (first order: ∇α L_val(w, α); second order: through one unrolled SGD step of
w, with the finite-difference Hessian-vector product of the DARTS paper), then w (SGD, cosine schedule,
gradient clipping).

Every epoch: metrics and softmax(α) go to the store's `records_path` (`<run_dir>/alphas.jsonl`), the
training state through `save_state` (`checkpoints/search_state.pt`); a search whose store holds that
state continues where it stopped, its seconds counted on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from nasrun import distributed
from nasrun.datasets.base import TensorSplit, batches
from nasrun.errors import NasrunError
from nasrun.state import JsonLines, TrainingState
from nasrun.supernets.weighted import WeightedSupernet

log = logging.getLogger("nasrun")


@dataclass(frozen=True)
class BilevelSettings:
    """The published DARTS defaults (checked by the strategy that builds them, conf/strategy/darts.yaml)."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.025                  # w: SGD, cosine to lr_min over the epochs
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float | None = 5.0
    arch_lr: float = 3e-4              # α: Adam
    arch_betas: tuple = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    order: int = 1                     # 2: through one unrolled weight step
    warmup_epochs: int = 0             # epochs of w only, α frozen
    train_portion: float = 0.5         # of the training split for w; the rest for α
    steps_per_epoch: int | None = None  # None: the whole half
    stop_at_skip_connects: int | None = None  # stop once the derived normal cell holds that many


class SearchStore(Protocol):
    """Where a search keeps its state and records, and who hears of its progress (a SearchContext)."""

    records_path: Path | None
    report: Callable[[int, int, dict], None] | None
    steps: Callable[[int, int, int], None] | None

    def save_state(self, state: dict) -> None: ...

    def load_state(self) -> dict | None: ...


@dataclass
class Optimisers:
    """SGD with a cosine schedule for w, Adam for α."""

    weights: torch.optim.Optimizer
    arch: torch.optim.Optimizer
    scheduler: Any

    @classmethod
    def for_model(cls, model: WeightedSupernet, settings: BilevelSettings) -> Optimisers:
        weights = torch.optim.SGD(model.weight_parameters(), settings.lr, momentum=settings.momentum,
                                  weight_decay=settings.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(weights, settings.epochs, eta_min=settings.lr_min)
        arch = torch.optim.Adam(model.arch_parameters(), settings.arch_lr, betas=tuple(settings.arch_betas),
                                weight_decay=settings.arch_weight_decay)
        return cls(weights, arch, scheduler)

    def training_state(self, model: WeightedSupernet) -> TrainingState:
        return TrainingState(model=model, w_optimizer=self.weights, arch_optimizer=self.arch, scheduler=self.scheduler)


class Bilevel:
    """The bilevel steps and epochs under `settings`; `seed` orders the batches, `autocast` wraps the forward
    passes (the hardware's: bfloat16 on CUDA with hardware.amp)."""

    def __init__(self, settings: BilevelSettings, seed: int = 0, autocast=contextlib.nullcontext):
        self.settings, self.seed, self.autocast = settings, int(seed), autocast

    # --- the search -----------------------------------------------------------------------------------
    def search(self, model: WeightedSupernet, data, device, store: SearchStore,
               start_epoch: Callable[[int], dict] = lambda epoch: {}) -> tuple[Any, float]:
        """Train `model` (on `device`, built by the strategy) on `data`; returns the derived architecture
        (the same on every rank of a distributed run) and the search's seconds, over every resumed part.
        `start_epoch(epoch)` applies per-epoch settings (GDAS's temperature) and returns what to log."""
        started, settings = time.perf_counter(), self.settings
        group = distributed.current()  # several processes: each trains on its shard of every batch
        model = group.prepare_model(model)
        optimisers = Optimisers.for_model(model, settings)
        halves = self.split(data.train)
        epoch, stopped, earlier = self.restore(store, model, optimisers)
        per_epoch = self.steps_in_epoch(*halves)
        while epoch < settings.epochs and not stopped:
            record = {"epoch": epoch + 1, "lr": optimisers.scheduler.get_last_lr()[0], **start_epoch(epoch)}
            record.update(self.train_epoch(model, optimisers, halves, epoch, record["lr"], data.augment, device,
                                           self.step_report(store, epoch, per_epoch)))
            record.update(self.infer(model, halves[1], device))
            arch = model.derive()
            record.update(model.collapse(arch))
            stopped = settings.stop_at_skip_connects is not None and record["skip_connects"] >= settings.stop_at_skip_connects
            record["stopped"] = stopped
            optimisers.scheduler.step()
            epoch += 1
            seconds = earlier + time.perf_counter() - started
            store.save_state(optimisers.training_state(model).capture(
                epoch=epoch, stopped=stopped, seconds=seconds,
                alphas={name: alpha.detach().cpu().clone() for name, alpha in model.alphas.items()}))
            append_record(store.records_path, model, arch, record)
            self.announce(store, record, stopped)
        return group.agree(model.derive()), earlier + time.perf_counter() - started

    def announce(self, store: SearchStore, record: dict, stopped: bool) -> None:
        epochs = self.settings.epochs
        log.info("search epoch %d/%d: %s", record["epoch"], epochs,
                 " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
                          if k != "epoch"))
        if store.report:
            store.report(record["epoch"], epochs, {k: v for k, v in record.items() if isinstance(v, float)})
        if stopped:
            log.warning("search stopped after epoch %d: the derived normal cell has %d skip-connects "
                        "(stop_at_skip_connects=%s)", record["epoch"], record["skip_connects"],
                        self.settings.stop_at_skip_connects)

    def restore(self, store: SearchStore, model: WeightedSupernet, optimisers: Optimisers) -> tuple[int, bool, float]:
        """Load the saved search state, if any: (epochs done, whether the guard stopped it, seconds spent)."""
        state = store.load_state()
        path = store.records_path
        if state is None:
            if path is not None and path.exists():
                path.unlink()
            return 0, False, 0.0
        optimisers.training_state(model).restore(state)
        truncate_records(path, state["epoch"])
        log.info("search resumed after epoch %d", state["epoch"])
        return int(state["epoch"]), bool(state["stopped"]), float(state.get("seconds", 0.0))

    def split(self, train) -> tuple:
        """Two seeded halves of the training split: (for w, for α)."""
        n = len(train)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        cut = max(1, min(n - 1, round(n * self.settings.train_portion)))
        halves = order[:cut], order[cut:]
        if isinstance(train, TensorSplit):
            return tuple(train.subset(h) for h in halves)
        return tuple(torch.utils.data.Subset(train, h.tolist()) for h in halves)

    def steps_in_epoch(self, train_half, arch_half) -> int:
        """Steps of one epoch: a batch of each half per step, up to steps_per_epoch."""
        size, cap = self.settings.batch_size, self.settings.steps_per_epoch
        steps = min(-(-len(train_half) // size), -(-len(arch_half) // size))
        return steps if cap is None else min(steps, cap)

    def step_report(self, store: SearchStore, epoch: int, per_epoch: int):
        """train_epoch's `on_step`: the store hears each step counted from the first epoch."""
        if store.steps is None:
            return None
        return lambda step: store.steps(epoch * per_epoch + step, per_epoch, self.settings.epochs)

    # --- one epoch, one step --------------------------------------------------------------------------
    def train_epoch(self, model: WeightedSupernet, optimisers: Optimisers, halves: tuple, epoch: int, lr: float,
                    augment, device, on_step=None) -> dict:
        """One epoch of bilevel steps; `on_step(steps done this epoch)` after each."""
        settings = self.settings
        model.train()
        seed = self.seed * 1000 + epoch
        train_batches = batches(halves[0], settings.batch_size, True, seed, augment)
        arch_batches = batches(halves[1], settings.batch_size, True, seed + 500, augment)
        totals = {"train_loss": 0.0, "train_accuracy": 0.0, "arch_loss": 0.0}
        steps = 0
        update_arch = epoch >= settings.warmup_epochs
        group = distributed.current()
        for (x, y), (x_arch, y_arch) in zip(train_batches, arch_batches):
            if settings.steps_per_epoch is not None and steps >= settings.steps_per_epoch:
                break
            x, y, x_arch, y_arch = (to_device(t, device) for t in (x, y, x_arch, y_arch))
            batch, arch_batch = len(y), len(y_arch)  # the global batches; this rank trains on its shards
            (x, y), (x_arch, y_arch) = group.shard(x, y), group.shard(x_arch, y_arch)
            if update_arch:
                arch_loss = self.arch_step(model, optimisers.weights, optimisers.arch, x, y, x_arch, y_arch, lr,
                                           arch_batch)
                check_finite(model, arch_loss, epoch, steps, "the architecture loss")
                totals["arch_loss"] += arch_loss
            loss, correct = self.weight_step(model, optimisers.weights, x, y, batch)
            check_finite(model, loss, epoch, steps, "the training loss")
            totals["train_loss"] += loss
            totals["train_accuracy"] += correct / len(y)
            steps += 1
            if on_step is not None:
                on_step(steps)
        metrics = group.mean_over_ranks({k: v / max(steps, 1) for k, v in totals.items()})
        if not update_arch:
            metrics.pop("arch_loss")
        return metrics

    def arch_step(self, model, w_optimizer, arch_optimizer, x, y, x_arch, y_arch, lr: float,
                  global_batch: int | None = None) -> float:
        """One α step. Under nasrun.distributed, (x_arch, y_arch) is this rank's shard of a global batch of
        `global_batch` and α's gradients are averaged over the ranks (second order: each rank unrolls the
        weight step on its own shard, an approximation of the single-process step)."""
        group = distributed.current()
        arch_optimizer.zero_grad(set_to_none=True)
        if self.settings.order == 2:
            with self.autocast():
                grads, loss = unrolled_arch_gradients(model, x, y, x_arch, y_arch, lr, w_optimizer,
                                                      self.settings.momentum, self.settings.weight_decay)
        else:
            with frozen(model.weight_parameters()), self.autocast():
                loss = F.cross_entropy(model(x_arch).float(), y_arch)
                grads = torch.autograd.grad(group.rescale(loss, global_batch or len(y_arch)),
                                            model.arch_parameters(), allow_unused=True)
        for parameter, grad in zip(model.arch_parameters(), grads):
            parameter.grad = grad  # None for a cell type the supernet does not use (e.g. 2 cells)
        group.average_gradients(model.arch_parameters())
        arch_optimizer.step()
        return loss.item()

    def weight_step(self, model, w_optimizer, x, y, global_batch: int | None = None) -> tuple[float, int]:
        """One SGD step of the weights. α is held constant through the forward and the backward pass (a
        recomputed edge must see the same requires_grad as its first forward)."""
        group = distributed.current()
        w_optimizer.zero_grad(set_to_none=True)
        weights = model.weight_parameters()
        with frozen(model.arch_parameters()):
            with self.autocast():
                logits = model(x).float()
            loss = F.cross_entropy(logits, y)
            grads = torch.autograd.grad(group.rescale(loss, global_batch or len(y)), weights, allow_unused=True)
        for parameter, grad in zip(weights, grads):
            parameter.grad = grad
        group.average_gradients(weights)
        if self.settings.grad_clip:
            nn.utils.clip_grad_norm_(weights, self.settings.grad_clip)
        w_optimizer.step()
        return loss.item(), (logits.argmax(1) == y).sum().item()

    @torch.no_grad()
    def infer(self, model: WeightedSupernet, split, device) -> dict:
        """Supernet loss and accuracy on the α half (eval mode)."""
        model.eval()
        loss, correct, count = 0.0, 0, 0
        for step, (x, y) in enumerate(batches(split, self.settings.batch_size, False, 0)):
            if self.settings.steps_per_epoch is not None and step >= self.settings.steps_per_epoch:
                break
            x, y = to_device(x, device), y.to(device)
            logits = model(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
        model.train()
        return {"arch_val_loss": loss / max(count, 1), "arch_val_accuracy": correct / max(count, 1)}


# --- records ----------------------------------------------------------------------------------------------
def append_record(path: Path | None, model: WeightedSupernet, arch, record: dict) -> None:
    """One alphas.jsonl line: the epoch, the ops, softmax(α) (and edge weights), the metrics, the derived arch."""
    if path is None:
        return
    line = {"epoch": record["epoch"], "ops": list(model.ops), "alphas": model.op_probabilities()}
    edges = model.edge_probabilities()
    if edges is not None:
        line["edge_weights"] = edges
    line.update({k: v for k, v in record.items() if k != "epoch"})
    line["arch"] = arch
    JsonLines(path, durable=True, what="α log").append(line)


def truncate_records(path: Path | None, epochs_done: int) -> None:
    """Keep the alphas.jsonl lines of the epochs the saved state covers (a crash may have left more)."""
    if path is None or not path.exists():
        return
    JsonLines(path, durable=True, what="α log").keep(lambda line: covered(line, epochs_done))


def covered(line: str, epochs_done: int) -> bool:
    """Whether an alphas.jsonl line is a record of one of the first `epochs_done` epochs."""
    try:
        return int(json.loads(line)["epoch"]) <= epochs_done
    except (ValueError, KeyError, TypeError):
        return False


# --- the pieces of a step ----------------------------------------------------------------------------------
def check_finite(model: WeightedSupernet, loss: float, epoch: int, step: int, loss_name: str) -> None:
    """Stop the search with one line when a loss or α stops being finite: what it would derive from
    NaN α is an arbitrary genotype that looks valid."""
    alpha_ok = all(torch.isfinite(a).all() for a in model.arch_parameters())
    if math.isfinite(loss) and alpha_ok:
        return
    what = loss_name if not math.isfinite(loss) else "the architecture weights α"
    raise NasrunError(f"search diverged: {what} became non-finite in epoch {epoch + 1} (step {step + 1}); "
                      "lower strategy.lr or strategy.arch_lr, or keep strategy.grad_clip on")


def to_device(batch: torch.Tensor, device) -> torch.Tensor:
    """Images go channels-last, like the supernet."""
    batch = batch.to(device)
    return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch


def unrolled_arch_gradients(model: WeightedSupernet, x, y, x_arch, y_arch, eta: float, w_optimizer, momentum: float,
                            weight_decay: float, r: float = 0.01) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Second-order DARTS: ∇α L_val(w', α) with w' = w - η (momentum buffer + ∇w L_train(w, α) + λw),
    i.e. ∇α L_val(w', α) - η ∇²α,w L_train(w, α) ∇w' L_val(w', α), the Hessian-vector product taken by
    central finite differences at w ± ε ∇w' L_val, ε = r / ‖∇w' L_val‖. Returns (gradients for
    model.arch_parameters(), L_val(w', α)). The weights are swapped in place for each evaluation and
    restored bit for bit from a copy, so the model's weights are unchanged afterwards."""
    weights, alphas = model.weight_parameters(), model.arch_parameters()
    original = [w.detach().clone() for w in weights]
    with frozen(alphas):
        grads = _grads(F.cross_entropy(model(x), y), weights)
    with torch.no_grad():
        for w, g in zip(weights, grads):
            buffer = w_optimizer.state.get(w, {}).get("momentum_buffer")
            w.sub_(eta * (g + weight_decay * w + (0 if buffer is None else momentum * buffer)))
    try:
        val_loss = F.cross_entropy(model(x_arch), y_arch)
        found = _grads(val_loss, alphas + weights)
        d_alpha, d_w = found[:len(alphas)], found[len(alphas):]
        epsilon = r / torch.cat([g.flatten() for g in d_w]).norm().clamp_min(1e-12)
        alpha_grads = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w0, v in zip(weights, original, d_w):
                    w.copy_(w0 + sign * epsilon * v)
            with frozen(weights):
                alpha_grads.append(_grads(F.cross_entropy(model(x), y), alphas))
    finally:
        with torch.no_grad():
            for w, w0 in zip(weights, original):
                w.copy_(w0)
    plus, minus = alpha_grads
    return [da - eta * (gp - gm) / (2 * epsilon) for da, gp, gm in zip(d_alpha, plus, minus)], val_loss.detach()


@contextlib.contextmanager
def frozen(parameters: list[torch.Tensor]):
    """`parameters` as constants (requires_grad off) for a forward and backward pass that needs no gradient
    for them: the weights in an α step, α in a weight step. Autograd then keeps nothing that only their
    gradients would read: no op output kept for α's gradient (`w_i * op_i(x)`) in a weight step; no
    weight graph, and with recomputation on no edge whose input does not depend on α (the first cells'
    edges from the stem) recomputed only to keep activations until the pass ends, in an α step."""
    changed = [p for p in parameters if p.requires_grad]
    for p in changed:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in changed:
            p.requires_grad_(True)


def _grads(loss: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """d loss / d tensors, zeros for tensors the loss does not use."""
    found = torch.autograd.grad(loss, tensors, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, found)]
