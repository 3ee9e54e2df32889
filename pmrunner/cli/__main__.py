"""``python -m pmrunner.cli``: the same as the ``pmrunner`` console script."""

from pmrunner.cli import main

main()
