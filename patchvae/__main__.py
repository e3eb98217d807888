"""``python -m patchvae`` = the ``patchvae`` command."""

import sys

from .cli import main

sys.exit(main())
