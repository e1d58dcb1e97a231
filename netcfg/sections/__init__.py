"""Every built-in section type. Importing a family module registers its sections."""

from . import attention, backbone, context, conv, darknet, fusion, legacy, pyramid, recurrent, transform  # noqa: F401
