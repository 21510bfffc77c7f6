"""``python -m virtsim``: the same command line as ``virtsim``."""

import sys

from virtsim.experiments.cli import main

sys.exit(main())
