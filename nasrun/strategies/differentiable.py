"""Differentiable one-shot search: the bilevel loop that DARTS, PC-DARTS and GDAS share.

The training split is cut in two (seeded): network weights w train on one half, architecture
parameters α on the other; the validation split stays untouched for scoring the derived architecture.
Each step first updates α (first order: ∇α L_val(w, α); second order: through one unrolled SGD step of
w, with the finite-difference Hessian-vector product of the DARTS paper), then w (SGD, cosine schedule,
gradient clipping). Subclasses choose the edge weighting (`make_weighting`) and per-epoch settings.

Every epoch: metrics and softmax(α) go to `<run_dir>/alphas.jsonl`, the search state to
`checkpoints/search_state.pt`; a search started with that state continues where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nasrun import distributed
from nasrun.datasets.base import TensorSplit, batches
from nasrun.errors import ConfigError, NasrunError
from nasrun.nets.size import check_network_size
from nasrun.state import JsonLines, TrainingState
from nasrun.supernets.memory import choose_checkpoint
from nasrun.supernets.weighted import (SupernetSize, WeightedSupernet, Weighting, build_weighted_supernet,
                                       check_checkpoint_mode)
from nasrun.strategies.base import (AT_LEAST_0, FRACTION, POSITIVE, WHOLE, OneShotStrategy, SearchContext,
                                   check_number, pair, rng_from_state, rng_state)

log = logging.getLogger("nasrun")


class DifferentiableSearch(OneShotStrategy):
    """Shared settings (published DARTS defaults in conf/strategy/darts.yaml):

    epochs, batch_size; supernet size C, layers (DARTS space cells) and N (NB201 cells per stage);
    w: lr (cosine to lr_min per epoch), momentum, weight_decay, grad_clip; α: arch_lr, arch_betas,
    arch_weight_decay; order 1|2; warmup_epochs (w only, α frozen); train_portion of the training split
    used for w (the rest for α); steps_per_epoch caps the steps (null: the whole half);
    stop_at_skip_connects stops early once the derived normal cell holds that many skip-connects;
    checkpoint (none | cells | edges) recomputes activations in the backward pass: less memory for about
    one more forward pass, the same values (see `WeightedSupernet.checkpoint`); auto (the default) runs
    without recomputation where a step fits in the device's free memory, else with edges
    (nasrun.supernets.memory).
    """

    name = "differentiable"

    def __init__(self, epochs: int = 50, batch_size: int = 64, C: int = 16, layers: int = 8, N: int = 5,
                 lr: float = 0.025, lr_min: float = 0.001, momentum: float = 0.9, weight_decay: float = 3e-4,
                 grad_clip: float | None = 5.0, arch_lr: float = 3e-4, arch_betas=(0.5, 0.999),
                 arch_weight_decay: float = 1e-3, order: int = 1, warmup_epochs: int = 0,
                 train_portion: float = 0.5, steps_per_epoch: int | None = None,
                 stop_at_skip_connects: int | None = None, checkpoint: str = "auto"):
        for key, value in {"epochs": epochs, "batch_size": batch_size, "C": C, "layers": layers, "N": N}.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"strategy.{key} must be a positive integer, got {value!r}")
        if order not in (1, 2):
            raise ConfigError(f"strategy.order must be 1 or 2, got {order!r}")
        if not 0.0 < float(train_portion) < 1.0:
            raise ConfigError(f"strategy.train_portion must be in (0, 1), got {train_portion}")
        if steps_per_epoch is not None and int(steps_per_epoch) <= 0:
            raise ConfigError(f"strategy.steps_per_epoch must be positive or null, got {steps_per_epoch}")
        numbers = [("lr", lr, POSITIVE), ("lr_min", lr_min, AT_LEAST_0), ("momentum", momentum, FRACTION),
                   ("weight_decay", weight_decay, AT_LEAST_0), ("arch_lr", arch_lr, POSITIVE),
                   ("arch_weight_decay", arch_weight_decay, AT_LEAST_0), ("warmup_epochs", warmup_epochs, WHOLE)]
        numbers += [(f"arch_betas[{i}]", beta, FRACTION) for i, beta in enumerate(pair(arch_betas, "arch_betas"))]
        numbers += [("grad_clip", grad_clip, POSITIVE)] if grad_clip is not None else []
        numbers += [("stop_at_skip_connects", stop_at_skip_connects, WHOLE)] if stop_at_skip_connects is not None else []
        for key, value, rule in numbers:
            check_number(key, value, rule)
        self.epochs, self.batch_size, self.C, self.layers, self.N = epochs, batch_size, C, layers, N
        self.lr, self.lr_min, self.momentum = float(lr), float(lr_min), float(momentum)
        self.weight_decay, self.grad_clip = float(weight_decay), grad_clip
        self.arch_lr, self.arch_betas, self.arch_weight_decay = float(arch_lr), tuple(arch_betas), float(arch_weight_decay)
        self.order, self.warmup_epochs, self.train_portion = int(order), int(warmup_epochs), float(train_portion)
        self.steps_per_epoch = None if steps_per_epoch is None else int(steps_per_epoch)
        self.stop_at_skip_connects = stop_at_skip_connects
        self.checkpoint = checkpoint if checkpoint == "auto" else check_checkpoint_mode(checkpoint)
        self.autocast = contextlib.nullcontext  # search() takes the hardware's (amp: bfloat16 on CUDA)

    # --- what subclasses choose --------------------------------------------------------------------------
    def make_weighting(self) -> Weighting:
        return Weighting()

    def start_epoch(self, epoch: int) -> dict:
        """Per-epoch settings (e.g. GDAS's temperature); returns what to log."""
        return {}

    # --- setup -------------------------------------------------------------------------------------------
    def build_supernet(self, space, input_shape, num_classes: int) -> WeightedSupernet:
        """The supernet, without recomputation for `checkpoint: auto` until `choose_checkpoint` decides."""
        size = SupernetSize(self.C, self.layers, self.N, "none" if self.checkpoint == "auto" else self.checkpoint)
        return build_weighted_supernet(space, input_shape, num_classes, self.make_weighting(), size, self.name)

    def choose_checkpoint(self, model: WeightedSupernet, input_shape, hardware, ranks: int = 1) -> str:
        """Resolve `checkpoint: auto` for `model` on `hardware` (logged); other settings stay as they are."""
        if self.checkpoint == "auto":
            model.checkpoint, why = choose_checkpoint(model, input_shape, -(-self.batch_size // ranks), hardware)
            log.info("strategy.checkpoint=auto: %s (%s)", model.checkpoint, why)
        return model.checkpoint

    def split_training_data(self, data) -> tuple:
        """Two seeded halves of the training split: (for w, for α)."""
        n = len(data.train)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        cut = max(1, min(n - 1, round(n * self.train_portion)))
        halves = order[:cut], order[cut:]
        if isinstance(data.train, TensorSplit):
            return tuple(data.train.subset(h) for h in halves)
        return tuple(torch.utils.data.Subset(data.train, h.tolist()) for h in halves)

    # --- the search -----------------------------------------------------------------------------------
    def search(self, context: SearchContext):
        self.autocast = context.hardware.autocast  # hardware.amp: bfloat16 forward passes on CUDA
        device = context.hardware.device
        data = context.data
        check_network_size(lambda: self.build_supernet(context.space, data.input_shape, data.num_classes),
                           data.input_shape, f"strategy={self.name} (its supernet: strategy.C, layers, N)", context.limits)
        torch.manual_seed(self.seed)
        group = distributed.current()  # several processes: each trains on its shard of every batch
        model = self.build_supernet(context.space, data.input_shape, data.num_classes)
        model = model.to(device, memory_format=torch.channels_last)  # channels-last: ~1.5x faster on CPU
        self.choose_checkpoint(model, data.input_shape, context.hardware, group.world_size)
        model = group.prepare_model(model)
        w_optimizer = torch.optim.SGD(model.weight_parameters(), self.lr, momentum=self.momentum,
                                      weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(w_optimizer, self.epochs, eta_min=self.lr_min)
        arch_optimizer = torch.optim.Adam(model.arch_parameters(), self.arch_lr, betas=self.arch_betas,
                                          weight_decay=self.arch_weight_decay)
        train_half, arch_half = self.split_training_data(data)
        log_path = context.records_path
        start, stopped = self.restore(context, model, w_optimizer, arch_optimizer, scheduler, log_path)
        per_epoch = self.steps_in_epoch(train_half, arch_half)
        for epoch in range(start, self.epochs):
            if stopped:
                break
            settings = self.start_epoch(epoch)
            lr = scheduler.get_last_lr()[0]
            metrics = self.train_epoch(model, w_optimizer, arch_optimizer, train_half, arch_half, epoch, lr,
                                       context.data.augment, device, self.step_report(context, epoch, per_epoch))
            metrics.update(self.infer(model, arch_half, device))
            arch = model.derive()
            diagnostic = model.collapse(arch)
            stopped = self.stop_at_skip_connects is not None and diagnostic["skip_connects"] >= self.stop_at_skip_connects
            scheduler.step()
            self.save(context, model, w_optimizer, arch_optimizer, scheduler, epoch + 1, stopped)
            record = {"epoch": epoch + 1, "lr": lr, **settings, **metrics, **diagnostic, "stopped": stopped}
            self.append_record(log_path, model, arch, record)
            log.info("search epoch %d/%d: %s", epoch + 1, self.epochs,
                     " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
                              if k != "epoch"))
            if context.report:
                context.report(epoch + 1, self.epochs, {k: v for k, v in record.items() if isinstance(v, float)})
            if stopped:
                log.warning("search stopped after epoch %d: the derived normal cell has %d skip-connects "
                            "(stop_at_skip_connects=%s)", epoch + 1, diagnostic["skip_connects"],
                            self.stop_at_skip_connects)
        return group.agree(model.derive())

    def steps_in_epoch(self, train_half, arch_half) -> int:
        """Steps of one epoch: a batch of each half per step, up to steps_per_epoch."""
        steps = min(-(-len(train_half) // self.batch_size), -(-len(arch_half) // self.batch_size))
        return steps if self.steps_per_epoch is None else min(steps, self.steps_per_epoch)

    def step_report(self, context: SearchContext, epoch: int, per_epoch: int):
        """train_epoch's `on_step`: the context hears each step counted from the first epoch."""
        if context.steps is None:
            return None
        return lambda step: context.steps(epoch * per_epoch + step, per_epoch, self.epochs)

    def train_epoch(self, model: WeightedSupernet, w_optimizer, arch_optimizer, train_half, arch_half, epoch: int,
                    lr: float, augment, device, on_step=None) -> dict:
        """One epoch of bilevel steps; `on_step(steps done this epoch)` after each."""
        model.train()
        seed = self.seed * 1000 + epoch
        train_batches = batches(train_half, self.batch_size, True, seed, augment)
        arch_batches = batches(arch_half, self.batch_size, True, seed + 500, augment)
        totals = {"train_loss": 0.0, "train_accuracy": 0.0, "arch_loss": 0.0}
        steps = 0
        update_arch = epoch >= self.warmup_epochs
        group = distributed.current()
        for (x, y), (x_arch, y_arch) in zip(train_batches, arch_batches):
            if self.steps_per_epoch is not None and steps >= self.steps_per_epoch:
                break
            x, y, x_arch, y_arch = (to_device(t, device) for t in (x, y, x_arch, y_arch))
            batch, arch_batch = len(y), len(y_arch)  # the global batches; this rank trains on its shards
            (x, y), (x_arch, y_arch) = group.shard(x, y), group.shard(x_arch, y_arch)
            if update_arch:
                arch_loss = self.arch_step(model, w_optimizer, arch_optimizer, x, y, x_arch, y_arch, lr, arch_batch)
                check_finite(model, arch_loss, epoch, steps, "the architecture loss")
                totals["arch_loss"] += arch_loss
            loss, correct = self.weight_step(model, w_optimizer, x, y, batch)
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
        if self.order == 2:
            with self.autocast():
                grads, loss = unrolled_arch_gradients(model, x, y, x_arch, y_arch, lr, w_optimizer,
                                                      self.momentum, self.weight_decay)
            for parameter, grad in zip(model.arch_parameters(), grads):
                parameter.grad = grad
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
        if self.grad_clip:
            nn.utils.clip_grad_norm_(weights, self.grad_clip)
        w_optimizer.step()
        return loss.item(), (logits.argmax(1) == y).sum().item()

    @torch.no_grad()
    def infer(self, model: WeightedSupernet, split, device) -> dict:
        """Supernet loss and accuracy on the α half (eval mode)."""
        model.eval()
        loss, correct, count = 0.0, 0, 0
        for step, (x, y) in enumerate(batches(split, self.batch_size, False, 0)):
            if self.steps_per_epoch is not None and step >= self.steps_per_epoch:
                break
            x, y = to_device(x, device), y.to(device)
            logits = model(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
        model.train()
        return {"arch_val_loss": loss / max(count, 1), "arch_val_accuracy": correct / max(count, 1)}

    # --- state and records ------------------------------------------------------------------------------
    def training_state(self, model, w_optimizer, arch_optimizer, scheduler) -> TrainingState:
        return TrainingState(model=model, w_optimizer=w_optimizer, arch_optimizer=arch_optimizer, scheduler=scheduler)

    def save(self, context, model, w_optimizer, arch_optimizer, scheduler, epochs_done: int, stopped: bool) -> None:
        context.save_state(self.training_state(model, w_optimizer, arch_optimizer, scheduler).capture(
            epoch=epochs_done, stopped=stopped,
            alphas={name: alpha.detach().cpu().clone() for name, alpha in model.alphas.items()},
            rng=rng_state(self.rng), extra=self.extra_state()))

    def restore(self, context, model, w_optimizer, arch_optimizer, scheduler, log_path) -> tuple[int, bool]:
        """Load the saved search state, if any: (epochs already done, whether the guard stopped it)."""
        state = context.load_state()
        if state is None:
            if log_path is not None and log_path.exists():
                log_path.unlink()
            return 0, False
        self.training_state(model, w_optimizer, arch_optimizer, scheduler).restore(state)
        self.rng.setstate(rng_from_state(state["rng"]))
        self.load_extra_state(state["extra"])
        truncate_records(log_path, state["epoch"])
        log.info("search resumed after epoch %d", state["epoch"])
        return int(state["epoch"]), bool(state["stopped"])

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def append_record(self, path: Path | None, model: WeightedSupernet, arch, record: dict) -> None:
        if path is None:
            return
        line = {"epoch": record["epoch"], "ops": list(model.ops), "alphas": model.op_probabilities()}
        edges = model.edge_probabilities()
        if edges is not None:
            line["edge_weights"] = edges
        line.update({k: v for k, v in record.items() if k != "epoch"})
        line["arch"] = arch
        JsonLines(path, durable=True, what="α log").append(line)


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
