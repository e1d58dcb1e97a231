"""Every built-in section type. Importing a family module registers its sections."""

from . import darknet  # noqa: F401
