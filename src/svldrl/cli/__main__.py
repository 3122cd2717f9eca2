"""``python -m svldrl.cli ...``: the console script."""

from svldrl.cli.app import main

main()
