"""`python -m diffusion_copilot.server.cli`: the same command line as the `diffusion-copilot` script."""

import sys

from .main import main

sys.exit(main())
