"""Every built-in section type. Importing a family module registers its sections."""

from . import darknet  # noqa: F401  (first: the darknet sections, in darknet's order)
from . import context, conv, fusion, pyramid, transform  # noqa: F401
