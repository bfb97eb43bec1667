"""``python -m dockyard.cli``: the dockyard command."""

from dockyard.cli.main import main

main()
