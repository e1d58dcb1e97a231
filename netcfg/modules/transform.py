"""Spatial transformer: a localisation net predicts an affine map that resamples the input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IDENTITY_AFFINE = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


class SpatialTransformer(nn.Module):
    """STN: 3×3 conv + ReLU, adaptive average pool to pool×pool and an FC predict θ (2×3); the input
    is resampled bilinearly on `affine_grid(θ)`. The FC starts at θ = identity, so a fresh block
    returns its input (align_corners=False makes that exact: sampling lands on pixel centres)."""

    def __init__(self, in_channels: int, filters: int = 32, pool: int = 4):
        super().__init__()
        self.pool = pool
        self.conv = nn.Conv2d(in_channels, filters, 3, padding=1)
        self.fc = nn.Linear(filters * pool * pool, 6)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.tensor(IDENTITY_AFFINE))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted affine transforms, (B, 2, 3)."""
        features = F.adaptive_avg_pool2d(F.relu(self.conv(x)), self.pool)
        return self.fc(features.flatten(1)).view(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(self.theta(x), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
