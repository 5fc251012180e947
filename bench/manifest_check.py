"""Speed of the manifest check that `funrl train` and `funrl eval` run before they start.

Writes ``--rows`` distinct clips (``--seconds`` long; every ``--flac-every``-th one FLAC, whose
tail is decoded, the rest 16-bit WAV, whose header is the whole check) and a manifest of one row
each, then times ``load_manifest(check_audio=True)`` (the same call as `funrl data check`) with 1
thread and with ``AUDIO_CHECK_THREADS``. The files were just written, so they are in the page
cache: the figure is the check's own cost, not a cold disk's.

    python bench/manifest_check.py [--rows 6000] [--seconds 2] [--flac-every 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def write_corpus(folder: str, rows: int, seconds: float, flac_every: int) -> str:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    clip = (rng.uniform(-0.3, 0.3, int(16000 * seconds)) * 32767).astype(np.int16)
    manifest = os.path.join(folder, "m.jsonl")
    with open(manifest, "w", encoding="utf-8") as f:
        for i in range(rows):
            name = f"a{i:05d}.flac" if flac_every and i % flac_every == 0 else f"a{i:05d}.wav"
            sf.write(os.path.join(folder, name), clip, 16000)
            f.write(json.dumps({"id": f"u{i}", "audio": name, "text": "hello world", "language": "en",
                                "duration": seconds}) + "\n")
    return manifest


def time_check(manifest: str, threads: int) -> float:
    import funrl.data.manifest as mf

    mf.AUDIO_CHECK_THREADS = threads
    t = time.perf_counter()
    utts = mf.load_manifest(manifest, check_audio=True)
    elapsed = time.perf_counter() - t
    assert len(utts) > 0
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=6000)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--flac-every", type=int, default=10, help="every Nth clip is FLAC (0: none)")
    args = ap.parse_args()
    from funrl.data.manifest import AUDIO_CHECK_THREADS

    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_corpus(tmp, args.rows, args.seconds, args.flac_every)
        time_check(manifest, 1)  # warm the imports
        flac = args.rows // args.flac_every if args.flac_every else 0
        print(f"manifest check: {args.rows} rows, {args.rows} distinct files ({flac} FLAC), "
              f"{args.seconds:g} s clips, {os.cpu_count()} CPUs")
        for threads in (1, AUDIO_CHECK_THREADS):
            s = time_check(manifest, threads)
            print(f"  {threads} thread(s): {s:.2f} s -> {args.rows / s:,.0f} rows/s")


if __name__ == "__main__":
    main()
