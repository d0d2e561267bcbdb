"""REINFORCE with an LSTM controller (Zoph & Le style): one categorical decision per step of the space's
encoding, the previous choice fed back as the next input.

Each told result updates the controller once: loss = -(reward - baseline) * log p(arch) - entropy_weight *
entropy, with reward = the trial's score, an exponential-moving-average baseline, gradient-norm
clipping and Adam. Choices are sampled with the strategy's own `random.Random`, so proposals follow from
the seed alone. With `dedupe`, an architecture proposed before is resampled (32 tries), then replaced by a
fresh random one (learned from through its log-probability all the same). The controller and Adam state
travel in the state dict (serialized by torch, base64).
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import torch
from torch import nn

from nasrun.errors import ConfigError
from nasrun.strategies.base import RandomStart, Strategy
from nasrun.strategies.novelty import Novelty


class Controller(nn.Module):
    """An LSTM cell stepping through the decisions; step i's input embeds the choice made at step i-1."""

    def __init__(self, choices: list[int], hidden: int):
        super().__init__()
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.cell = nn.LSTMCell(hidden, hidden)
        self.embeddings = nn.ModuleList(nn.Embedding(k, hidden) for k in choices)
        self.heads = nn.ModuleList(nn.Linear(hidden, k) for k in choices)

    def logits(self, indices: list[int], sample=None) -> list[torch.Tensor]:
        """Logits of every step for the choices `indices`; with `sample(step, logits) -> index` the
        choices are drawn step by step (and written into `indices`)."""
        x, state, result = self.start, None, []
        for step, head in enumerate(self.heads):
            state = self.cell(x, state)
            logits = head(state[0])[0]
            result.append(logits)
            if sample is not None:
                indices.append(sample(step, logits))
            x = self.embeddings[step](torch.tensor([indices[step]]))
        return result


class Reinforce(Strategy):
    warm_startable = False  # proposals come from the controller's policy, not from fresh samples

    def __init__(self, lr: float = 3.5e-4, baseline_decay: float = 0.99, entropy_weight: float = 1e-4,
                 grad_clip: float = 5.0, hidden_size: int = 64, dedupe: bool = True):
        if float(lr) <= 0 or not 0 <= float(baseline_decay) < 1 or float(grad_clip) <= 0 or int(hidden_size) < 1:
            raise ConfigError(f"reinforce: need lr > 0, 0 <= baseline_decay < 1, grad_clip > 0, hidden_size >= 1; "
                              f"got {lr}, {baseline_decay}, {grad_clip}, {hidden_size}")
        self.lr, self.baseline_decay, self.entropy_weight = float(lr), float(baseline_decay), float(entropy_weight)
        self.grad_clip, self.hidden_size, self.dedupe = float(grad_clip), int(hidden_size), bool(dedupe)

    def random_start(self, space) -> RandomStart:
        """The first proposal comes from the untrained controller; each result updates it."""
        return RandomStart(1)

    def bind(self, space, seed, budget):
        super().bind(space, seed, budget)
        self.novelty = Novelty(space, self.rng)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.controller = Controller([len(d.choices) for d in space.decisions()], self.hidden_size)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.lr)
        self.baseline: float | None = None
        self.pending: dict[str, list[list[int]]] = {}   # key -> sampled choices of archs asked, not told

    # --- ask ------------------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Any]:
        return [self._propose() for _ in range(n)]

    def _propose(self) -> Any:
        for _ in range(32 if self.dedupe else 1):
            indices = self._sample()
            arch = self.space.decode(indices)
            if self.novelty.is_new(arch):
                break
        else:
            if self.dedupe:   # the controller keeps repeating itself: explore a fresh architecture instead
                arch = self.novelty.sample()
                indices = self.space.encode(arch)
        self.novelty.add(arch)
        self.pending.setdefault(self.space.key(arch), []).append(indices)
        return arch

    def _sample(self) -> list[int]:
        indices: list[int] = []
        with torch.no_grad():
            self.controller.logits(indices, sample=lambda step, logits: self._draw(logits))
        return indices

    def _draw(self, logits: torch.Tensor) -> int:
        """An index drawn from softmax(logits) with the strategy's random generator."""
        u, total = self.rng.random(), 0.0
        probabilities = torch.softmax(logits.double(), dim=0).tolist()
        for index, p in enumerate(probabilities):
            total += p
            if u < total:
                return index
        return len(probabilities) - 1

    # --- tell -----------------------------------------------------------------------------------------
    def tell(self, trials) -> None:
        for trial in trials:
            key = self.space.key(trial.arch)
            indices = self.pending[key].pop(0)
            if not self.pending[key]:
                del self.pending[key]
            if math.isfinite(trial.score()):
                self._update(indices, trial.score())

    def _update(self, indices: list[int], reward: float) -> None:
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        log_prob, entropy = torch.zeros(()), torch.zeros(())
        for logits, index in zip(self.controller.logits(list(indices)), indices):
            log_p = torch.log_softmax(logits, dim=0)
            log_prob = log_prob + log_p[index]
            entropy = entropy - (log_p.exp() * log_p).sum()
        loss = -advantage * log_prob - self.entropy_weight * entropy
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.controller.parameters(), self.grad_clip)
        self.optimizer.step()

    # --- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        buffer = io.BytesIO()
        torch.save({"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict()}, buffer)
        return {**super().state_dict(), "seen": self.novelty.state(), "baseline": self.baseline,
                "pending": self.pending, "torch": base64.b64encode(buffer.getvalue()).decode("ascii")}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.novelty.load(state["seen"])
        self.baseline, self.pending = state["baseline"], {k: [list(i) for i in v] for k, v in state["pending"].items()}
        saved = torch.load(io.BytesIO(base64.b64decode(state["torch"])), weights_only=True)
        self.controller.load_state_dict(saved["controller"])
        self.optimizer.load_state_dict(saved["optimizer"])
