"""``python -m skelmtl``: the ``skelmtl`` command line."""

import sys

from skelmtl.cli import main

sys.exit(main())
