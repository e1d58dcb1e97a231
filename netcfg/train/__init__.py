"""Training a cfg network as darknet does: its loss, targets, optimiser and schedule."""

from .loss import DarknetLoss
from .optim import darknet_sgd, parameter_groups
from .schedule import darknet_rate, darknet_scheduler
from .targets import collate, label_path, read_labels

__all__ = [
    "DarknetLoss",
    "collate",
    "darknet_rate",
    "darknet_scheduler",
    "darknet_sgd",
    "label_path",
    "parameter_groups",
    "read_labels",
]
