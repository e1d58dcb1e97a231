"""Training a cfg network as darknet does: its loss, targets, optimiser and schedule."""

from .loss import DarknetLoss

__all__ = ["DarknetLoss"]
