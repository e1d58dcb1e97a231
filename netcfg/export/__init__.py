"""Deployment: a Network → ONNX (dynamo exporter), optionally with decode + NMS in the graph, and its
parity against onnxruntime. Needs the `export` extra (onnx, onnxscript, onnxruntime), imported when used."""

from .nms import COLUMNS
from .onnx import ExportError, OnnxExport, export_onnx
from .parity import Parity

__all__ = ["COLUMNS", "ExportError", "OnnxExport", "Parity", "export_onnx"]
