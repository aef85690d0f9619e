"""`python -m envmgr` runs the CLI."""

from envmgr.cli import main

main()
