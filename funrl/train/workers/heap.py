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

:func:`pin_mmap_threshold` sets the threshold with ``mallopt``. Setting it turns the dynamic
adjustment off (``mallopt(3)``), so large blocks stay ``mmap``-backed and go back to the system
when freed: RSS follows the live tensors instead of the high-water mark of the holes. The same
is done with the environment variable ``MALLOC_MMAP_THRESHOLD_``, but only for a process that
reads it at start-up; a call from the worker itself needs nothing from Ray's runtime env.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
DEFAULT_THRESHOLD = 128 * 1024  # glibc's own starting value, now fixed


def pin_mmap_threshold(nbytes: int = DEFAULT_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``nbytes`` (disables its dynamic raise). False, doing
    nothing, where the C library is not glibc (macOS, musl): their allocators behave otherwise."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        log.debug("no mallopt in the C library %r: heap left as it is", name)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, int(nbytes)))
