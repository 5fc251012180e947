"""The encoder's heap fix (funrl/train/workers/heap.py), checked on glibc itself in fresh processes.

The scenario is the encoder's: one large block freed (glibc then raises its mmap threshold to
that size), then blocks of about 1 MiB interleaved with small survivors, then the large ones
freed. Without the pinned threshold the 1 MiB blocks come from the heap and their holes stay
resident; with it they are mmap-backed and go back to the system. RSS is read from
/proc/self/statm, so the test runs on Linux with glibc only.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

SCRIPT = r"""
import os, sys
import torch
from funrl.train.workers.heap import pin_mmap_threshold

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

if sys.argv[1] == "pin":
    assert pin_mmap_threshold()
if sys.argv[1] == "encoder":  # a real encoder worker, one real encode: the pin must be in place
    from funrl.train.workers.encoder import EncoderWorker
    worker = EncoderWorker("encoder0", sys.argv[2])
    worker.encode([{"id": "u0", "audio": sys.argv[3], "text": "", "language": "en"}], step=0)
x = torch.ones(16 << 20, dtype=torch.uint8)  # freed: glibc's dynamic threshold would rise to 16 MiB
del x
base = rss()
big, keep = [], []
for i in range(64):
    big.append(torch.ones((1 << 20) + 4096 * i, dtype=torch.uint8))  # touched, a new size each time
    keep.append(torch.ones(512))  # a small survivor after each one
del big
print((rss() - base) / (1 << 20))
"""

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc's mallopt and /proc are what is tested")


def _resident_after_free(*args: str) -> float:
    out = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return float(out.stdout.strip().splitlines()[-1])


def test_pinned_threshold_gives_freed_blocks_back():
    held = _resident_after_free("default")
    pinned = _resident_after_free("pin")
    assert held > 48, f"the scenario did not reproduce glibc's retention ({held:.1f} MiB held)"
    assert pinned < 2, f"{pinned:.1f} MiB of freed 1 MiB blocks still resident with the pinned threshold"


def test_encoder_worker_pins_the_threshold(tiny_model, tiny_corpus):
    row = json.loads((tiny_corpus / "train.jsonl").read_text().splitlines()[0])
    held = _resident_after_free("encoder", str(tiny_model), str(tiny_corpus / row["audio"]))
    assert held < 2, f"{held:.1f} MiB of freed 1 MiB blocks still resident in an EncoderWorker process"
