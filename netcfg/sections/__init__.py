"""Every built-in section type. Importing a family module registers its sections."""

from . import (
    backbone,  # noqa: F401
    darknet,  # noqa: F401
)
