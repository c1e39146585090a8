# ruff: noqa: INP001 - imported by name from preload.txt, not a package
"""Imported last by preload.txt: what the fork server imported moves to gc's permanent generation.

pytest runs gc.collect() twice as each worker's session ends; with the preloaded
modules frozen it scans only what the worker itself made.
"""

import gc

gc.collect()
gc.freeze()
