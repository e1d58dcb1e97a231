"""`python -m netcfg` runs the `netcfg` command."""

import sys

from .cli import main

sys.exit(main())
