"""Every built-in section type. Importing a family module registers its sections; darknet's own come
first (in this order), so listings and the reference show them first."""

from . import darknet, resample, elementwise, heads, legacy, recurrent  # noqa: F401, I001
from . import attention, mixing, backbone, context, conv, fusion, pyramid, transform  # noqa: F401, I001
