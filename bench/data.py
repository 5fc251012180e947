"""Speed of synthetic-corpus generation and of feature extraction, on one core.

Pins this process (and so the eSpeak worker it starts) to one CPU, builds a corpus of ``--n``
utterances with the default mix (en/zh/mixed, 10 % pure noise, half the speech noisy), and
prints utterances per wall-clock second (goal, issue 5: >= 50 on one core), utterances per CPU
second (parent + worker; the honest figure when other jobs share the core), the split of CPU
time between the eSpeak worker and the rest, and the real-time factor. Then it extracts fbank
features for the whole corpus and prints utterances/s and the real-time factor of that.

    python bench/data.py [--n 500] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import numpy as np


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="corpus folder (default: a temporary one)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import torch

    torch.set_num_threads(1)
    from funrl.data.audio import load_audio
    from funrl.data.features import FbankExtractor
    from funrl.data.synth.corpus import synthesize_corpus

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or os.path.join(tmp, "corpus")
        wall0, cpu0, child0 = time.perf_counter(), time.process_time(), _cpu_children()
        report = synthesize_corpus(out, args.n, seed=args.seed, overwrite=True)
        wall = time.perf_counter() - wall0
        cpu_main, cpu_worker = time.process_time() - cpu0, _cpu_children() - child0
        audio_s = report.hours * 3600
        cpu = cpu_main + cpu_worker
        print(f"synthesis: {args.n} utterances, {audio_s:.0f} s of audio, one core")
        print(f"  wall {wall:.2f} s -> {args.n / wall:.1f} utterances/s (goal >= 50), "
              f"real-time factor {wall / audio_s:.4f}")
        print(f"  cpu  {cpu:.2f} s (eSpeak worker {cpu_worker:.2f} s, rest {cpu_main:.2f} s) -> "
              f"{args.n / cpu:.1f} utterances per CPU second")

        fb = FbankExtractor()
        wall0 = time.perf_counter()
        frames = sum(fb(load_audio(u.audio)).shape[0] for u in report.utterances)
        wall = time.perf_counter() - wall0
        print(f"features: {frames} frames of 80 bins in {wall:.2f} s -> "
              f"{args.n / wall:.1f} utterances/s, real-time factor {wall / audio_s:.4f}")
        durations = np.array([u.duration for u in report.utterances if not u.noise])
        print(f"speech durations: median {np.median(durations):.2f} s, "
              f"5-95 % {np.percentile(durations, 5):.2f}-{np.percentile(durations, 95):.2f} s")


if __name__ == "__main__":
    main()
