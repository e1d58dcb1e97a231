"""Spec → readable, importable PyTorch source: one `nn.Module` class per cfg, no cfg at run time.

- `__init__` prints every layer's `LayerCall` (the very call `build` instantiates) as Python, so
  every section type converts; arguments equal to the constructor's defaults are left out.
- Layers live in `self.layers = nn.ModuleList([...])`, one per darknet layer, so `state_dict()`
  keys (`layers.<i>.…`) equal `netcfg.build(cfg)`'s and weights move either way.
- `forward` is straight-line code (`forward.py`): outputs read later get a variable, deleted as
  `netcfg.plan.release_plan` frees them in `Network`; plain routes and shortcuts are `torch.cat`
  and `+`; detection heads return raw outputs in train mode and `decode(output, image)` in eval.
- `standalone=True` inlines the module classes' sources (`inline.py`), so the file needs only torch.
- Safety: cfg values reach the output only through `literal()`, labels only as identifiers, file
  and section names only through `inert()` in comments and the docstring.
"""

from .cli import CONVERT_HELP, convert_arguments, run_convert
from .emit import to_python
from .literals import IDENTIFIER, literal
from .names import class_name_error, default_class_name

__all__ = [
    "CONVERT_HELP",
    "IDENTIFIER",
    "class_name_error",
    "convert_arguments",
    "default_class_name",
    "literal",
    "run_convert",
    "to_python",
]
