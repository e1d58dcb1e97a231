"""The generated source as a live class: executed in memory, with its source registered where
`inspect` (and so TorchScript) reads it, so `torch.jit.script` can compile it."""

from __future__ import annotations

import hashlib
import linecache
import sys
import types

from torch import nn

from ..spec import Spec
from .emit import to_python

PACKAGE = "netcfg._generated"


def generated_class(spec: Spec, class_name: str = "Generated") -> type[nn.Module]:
    """`to_python(spec)`'s class, executed as module `netcfg._generated.<hash of the source>`."""
    source = to_python(spec, class_name=class_name)
    name = f"{PACKAGE}.m{hashlib.sha256(source.encode()).hexdigest()[:16]}"
    module = sys.modules.get(name)
    if module is None:
        filename = f"<{name}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        module = types.ModuleType(name)
        module.__file__ = filename
        sys.modules[name] = module
        exec(compile(source, filename, "exec"), module.__dict__)
    return getattr(module, class_name)
