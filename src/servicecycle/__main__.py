"""``python -m servicecycle`` is the ``servicecycle`` command."""

from servicecycle.cli import main

main()
