"""`python -m loop.cli`: the same as the `loop` command."""

from loop.cli.app import main

main()
