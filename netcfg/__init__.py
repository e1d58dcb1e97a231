"""netcfg: darknet-style `.cfg` files → PyTorch networks."""

from .api import build, parse
from .codegen import to_python
from .errors import CfgError, CfgItem, CfgWarning, NetcfgError, WeightsError
from .network import Network
from .pretrained import load_state_dict_from
from .registry import Context, LayerCall, Section, SpecError, register
from .spec import Spec

__all__ = [
    "CfgError",
    "CfgItem",
    "CfgWarning",
    "Context",
    "LayerCall",
    "NetcfgError",
    "Network",
    "Section",
    "Spec",
    "SpecError",
    "WeightsError",
    "build",
    "load_state_dict_from",
    "parse",
    "register",
    "to_python",
]
