"""netcfg: darknet-style `.cfg` files → PyTorch networks."""

from .api import build, parse
from .budget import Budget, Estimate
from .codegen import to_python
from .errors import CfgError, CfgItem, CfgWarning, NetcfgError, WeightsError
from .export import export_onnx
from .network import Network
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
    "LayerCall",
    "NetcfgError",
    "Network",
    "PartialWeightsWarning",
    "Section",
    "Spec",
    "SpecError",
    "WeightsError",
    "build",
    "export_onnx",
    "load_darknet_weights",
    "load_state_dict_from",
    "parse",
    "register",
    "save_darknet_weights",
    "to_python",
]
