"""The network as a user deploys it: images in, logits out, the training-time normalisation inside."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class NormalizedInput(nn.Module):
    """`network` fed `(images - mean) / std` per channel, so it takes images as a user has them: float32
    NCHW in [0, 1]. Traces, exports (torch.export, ONNX) and scripts like any module."""

    def __init__(self, network: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network((images - self.mean) / self.std)
