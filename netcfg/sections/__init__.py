"""Every built-in section type. Importing a family module registers its sections."""

from . import backbone, darknet  # noqa: F401
