"""How the generated module names the module classes: `nn.X` for torch's, and netcfg's (or a
plugin's) imported from their modules by default or inlined in standalone mode."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .imports import Imports
from .inline import inline_classes
from .literals import IDENTIFIER

#: Names every generated module binds or uses besides the module classes.
MODULE_GLOBALS = frozenset({"annotations", "torch", "nn"})


@dataclass
class Namespace:
    """The module classes' names in generated code, inlined definitions, and all module globals."""

    names: dict[type, str]
    definitions: list[str]
    globals: set[str]


def namespace(classes: list[type], imports: Imports, standalone: bool) -> Namespace:
    """Name every class, adding the imports this needs to `imports`."""
    for cls in classes:
        _check_importable(cls)
    names = _torch_names([cls for cls in classes if _is_torch(cls)], imports)
    own = [cls for cls in classes if not _is_torch(cls)]
    reserved = {*MODULE_GLOBALS, *names.values()}
    if standalone:
        inlined, definitions, used = inline_classes(own, reserved, imports)
        return Namespace({**names, **inlined}, definitions, reserved | used)
    names.update(_import_classes(own, reserved, imports))
    return Namespace(names, [], {*reserved, *names.values()})


def _is_torch(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "torch"


def _check_importable(cls: type) -> None:
    module = cls.__module__
    if cls.__qualname__ != cls.__name__ or module == "__main__" or not all(map(IDENTIFIER.match, module.split("."))):
        raise ValueError(f"module class {module}.{cls.__qualname__} is not importable by name")


def _torch_names(classes: list[type], imports: Imports) -> dict[type, str]:
    """`nn.X` for torch.nn classes, else an import of the class from its torch module."""
    names = {}
    for cls in classes:
        if getattr(nn, cls.__name__, None) is cls:
            names[cls] = f"nn.{cls.__name__}"
        else:
            names[cls] = cls.__name__
            imports.add(cls.__module__, cls.__name__)
    return names


def _import_classes(classes: list[type], used: set[str], imports: Imports) -> dict[type, str]:
    """Import each class from its module, aliased `<Name>_<module>` when names clash."""
    names = {}
    used = set(used)
    for cls in classes:
        local = cls.__name__
        if local in used:
            local = f"{cls.__name__}_{cls.__module__.rsplit('.', 1)[-1]}"
        while local in used:
            local += "_"
        used.add(local)
        names[cls] = local
        imports.add(cls.__module__, cls.__name__, local)
    return names
