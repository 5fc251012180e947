"""glibc's heap in a worker that sees tensors of a new size every call (the encoder role).

Why: glibc serves a block of ``M_MMAP_THRESHOLD`` bytes or more with its own ``mmap`` and gives
it back to the system on ``free``. The threshold starts at 128 KiB, but is *dynamic*: each time
such a block is freed, glibc raises it to that block's size (up to 32 MiB). After the first
encode, every activation of a few MiB is therefore carved from the heap arena instead. With
clips of varying length each call asks for a new mix of sizes; the freed blocks leave holes that
the next call's sizes do not fit, and the heap is only ever trimmed at its top, so the worker's
RSS climbs call after call. Measured on the demo model, B=4 clips of 3-29 s: the encoder went
from 407 to 957 MiB in 300 encodes (~1.8 MiB a call), with no Python object growing
(tracemalloc). Clips of 1-3 s saturate after ~300 calls at +12 MiB, which is why short soaks
looked flat.

:func:`release_free_heap` (``malloc_trim(0)``, called after each encode) hands every whole
free page inside the heap back to the system (``madvise``), not only the top: RSS then follows
the live tensors. It costs one walk over the arenas, and the next call faults those pages in
again once. Measured on that run: 957 -> 413 MiB after 300 encodes. The alternative, a fixed
threshold (``mallopt(M_MMAP_THRESHOLD)`` or ``MALLOC_MMAP_THRESHOLD_``, which turns the dynamic
raise off), kept RSS as low (401 vs 403 MiB after 100 encodes) but mmaps every large op output
afresh, so each op pays for fresh pages: the encode was slower in the same conditions than
with ``malloc_trim`` (``bench/scaling.py --rss-corpus`` runs the soak).

The rest of the growth (15 MiB per 100 encodes of B=2 long clips, trimmed or not) was oneDNN's
primitive cache: every new input length builds and keeps new convolution primitives, up to
1024 of them. :func:`limit_primitive_cache` makes it small before the first convolution (2.9
MiB per 100 encodes with it off, and the encode no slower: the lengths rarely repeat).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os


def release_free_heap() -> bool:
    """``malloc_trim(0)``: give the heap's free pages back to the system. True when glibc
    released some; False, doing nothing, where the C library is not glibc (macOS, musl)."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


@functools.lru_cache(maxsize=1)
def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        return libc
    except (OSError, AttributeError, TypeError):
        return None


PRIMITIVE_CACHE = 16  # oneDNN's default is 1024


def limit_primitive_cache(capacity: int = PRIMITIVE_CACHE) -> None:
    """Set ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` unless the user did. oneDNN reads it when it builds
    its first primitive, so call this before the first convolution of the process."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))
