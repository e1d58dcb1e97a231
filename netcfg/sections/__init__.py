"""Every built-in section type. Importing a family module registers its sections."""

from . import (
    context,  # noqa: F401
    darknet,  # noqa: F401
    fusion,  # noqa: F401
    pyramid,  # noqa: F401
    transform,  # noqa: F401
)
