"""From images to darknet's detections (`detect`) and a classifier's top classes (`classify`), with
darknet's preprocessing, thresholds, box correction and non-maximum suppression."""

from .core import Detection, Prediction, classify, detect
from .images import ImageError

__all__ = ["Detection", "ImageError", "Prediction", "classify", "detect"]
