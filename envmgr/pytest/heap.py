"""What a pytest process loads once and keeps to its end, kept out of the garbage collector's way (the setting
`gc_freeze`).

A test process holds hundreds of thousands of objects it never frees: pytest and its plugins, the app and the
libraries its conftest files import (an ORM's mappers, a cloud SDK's service models, Django's app registry), the
collected tests. Every full collection walks all of them: the automatic ones while more is imported and while the
tests run, and the five pytest makes at the end of the session to report unraisable exceptions (about 90 ms each
for the example app). `freeze` moves what exists to the permanent generation (`gc.freeze`), which collections
skip; the plugin calls it three times, each after a phase that loads what stays: the plugins, the conftest files,
the collection.

What it changes: an object made before a freeze that later becomes unreachable only through a reference cycle is
not collected (its memory is kept, its finalizer does not run before the process ends); objects the tests make are
collected as before.
"""

from __future__ import annotations

import gc

from envmgr.config.settings import Settings


def freeze(settings: Settings) -> None:
    """Move every object that exists now to the permanent generation, unless the settings turn it off."""
    if settings.gc_freeze:
        gc.freeze()
