"""netcfg: darknet-style `.cfg` files → PyTorch networks."""

from .api import build, parse
from .budget import Budget, Estimate
from .codegen import to_python
from .detection import Detection, Prediction, classify, detect
from .errors import CfgError, CfgItem, CfgWarning, NetcfgError, WeightsError
from .export import export_onnx
from .network import Network
from .optimize import optimize
from .pretrained import load_state_dict_from
from .registry import register
from .section import Context, LayerCall, Section, SpecError
from .spec import Spec
from .weights import DarknetHeader, PartialWeightsWarning, load_darknet_weights, save_darknet_weights

__all__ = [
    "Budget",
    "Estimate",
    "CfgError",
    "CfgItem",
    "CfgWarning",
    "Context",
    "DarknetHeader",
    "Detection",
    "LayerCall",
    "NetcfgError",
    "Network",
    "Prediction",
    "PartialWeightsWarning",
    "Section",
    "Spec",
    "SpecError",
    "WeightsError",
    "build",
    "classify",
    "detect",
    "export_onnx",
    "load_darknet_weights",
    "load_state_dict_from",
    "optimize",
    "parse",
    "register",
    "save_darknet_weights",
    "to_python",
]
