"""netcfg: darknet-style `.cfg` files → PyTorch networks."""

from .api import build, parse
from .codegen import to_python
from .errors import CfgError, CfgItem, CfgWarning, NetcfgError, WeightsError
from .network import Network
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
    "parse",
    "register",
    "to_python",
]
