"""The commands of edge: ``skelmtl run``, ``demo`` and ``extract`` (each
``add_arguments(parser)`` and ``main(args)``: arguments and printing over library
functions), and runner, how one command runs as a process (logging, signals, exit
status) for skelmtl.cli and ``python -m``. ``skelmtl bench`` is edge.bench's.

May import: everything in edge.
"""
