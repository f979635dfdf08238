"""Garbage-collector settings for the long-running processes (web and Celery workers).

CPython's cycle collector makes a young-generation pass every 700 net allocations, and
now and then walks every object the process holds; a worker holds ~150,000 objects from
start-up (Django, DRF, the models, phone metadata) that never become garbage. Resolving
a batch allocates millions of small objects, so the collector took ~24% of ingestion's
Python time (77 of 318 µs a record in bench/resolve.py's workload; 2 µs after this).

`gc_tune` moves what start-up made out of the collector's sight (gc.freeze) and makes a
young-generation pass every `gen0_threshold` allocations instead. Cycles are still
collected, in fewer and larger passes, so a few MB of garbage may wait a little longer.
"""

from __future__ import annotations

import gc


def gc_tune(gen0_threshold: int) -> None:
    """Freeze start-up's objects and collect every `gen0_threshold` allocations; 0 keeps
    Python's defaults (TESSERA_GC_GEN0_THRESHOLD)."""
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
