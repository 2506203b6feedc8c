"""``python -m skelmtl``: the ``skelmtl`` command line."""

import sys

from edge.cli import main

sys.exit(main())
