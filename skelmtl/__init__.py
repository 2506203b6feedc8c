"""skelmtl: the top of the distribution, over its three rooms.

``skelmtl.cli`` is the ``skelmtl`` command line: it names every command by the module of
the room that implements it (edge, trainer, calibration) and imports that module only when
its command runs. This package may import every room; no room imports it (the version
lives in ``edge``, the lowest room, which the runtime reports).

The rooms stay top-level packages (``edge``, ``trainer``, ``calibration``) rather than
``skelmtl.edge`` and so on; docs/architecture.md ("One namespace?") says why.
"""

from edge import __version__

__all__ = ["__version__"]
