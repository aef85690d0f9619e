"""`python -m envmgr.daemon [--socket PATH]`: the daemon in the foreground, the same as `envmgr daemon run` (the
CLI turns its errors into a message and an exit code)."""

from __future__ import annotations

import sys

from envmgr.cli import app

app(["daemon", "run", *sys.argv[1:]], prog_name="envmgr")
