"""``funrl data synth`` (make a synthetic corpus) and ``funrl data check`` (validate a manifest)."""

from __future__ import annotations

import argparse
from collections import Counter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="make synthetic corpora and check manifests")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    s = dsub.add_parser("synth", help="write a synthetic eSpeak corpus (WAVs, manifest, splits)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--n", type=int, required=True,
                   help="number of utterances (noise clips included)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--languages", type=_csv, default="en,zh,mixed",
                   help="comma-separated subset of en,zh,mixed (default: all)")
    s.add_argument("--noise-frac", type=float, default=0.1,
                   help="fraction of pure-noise clips with empty text (default 0.1)")
    s.add_argument("--noisy-frac", type=float, default=0.5,
                   help="fraction of speech clips mixed with noise (default 0.5)")
    s.add_argument("--snr", type=_snr, default="5,30",
                   help="SNR range LOW,HIGH in dB (default 5,30)")
    s.add_argument("--splits", type=_splits, default="0.8,0.1,0.1",
                   help="train,dev,test ratios (default 0.8,0.1,0.1)")
    s.add_argument("--overwrite", action="store_true", help="replace a corpus already in --out")
    s.add_argument("--hotword-distractors", type=int, default=1200,
                   help="sound-alike distractors in hotwords.txt beside the domain's rare terms")
    s.set_defaults(func=_synth)

    a = dsub.add_parser("align", help="add word timings ('words') to a manifest by CTC forced alignment "
                                      "with a model's CTC head")
    a.add_argument("manifest", help="the manifest to align")
    a.add_argument("--model", required=True, help="a transformers family folder (Fun-ASR-Nano, Qwen2-Audio) with a CTC head (ctc.json)")
    a.add_argument("--out", required=True, help="the manifest to write (the input's rows, with 'words')")
    a.add_argument("--batch-size", type=int, default=32)
    a.add_argument("--compare", action="store_true",
                   help="the input has timings already (funrl data synth's): print how well the alignment "
                        "agrees with them instead of trusting them (the out file gets the aligned ones)")
    a.add_argument("--chunk-ms", type=int, default=720, help="with --compare: the streaming chunk to score at")
    a.set_defaults(func=_align)

    c = dsub.add_parser("check", help="validate a manifest and its audio; print a summary")
    c.add_argument("manifest")
    c.add_argument("--model", help="also check that every clip fits in this model's context")
    c.add_argument("--max-new-tokens", type=int, default=64,
                   help="tokens kept free for the transcript with --model (default 64)")
    c.set_defaults(func=_check)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _floats(value: str, n: int, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value.split(","))
    except ValueError:
        out = ()
    if len(out) != n:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}")
    return out


def _snr(value: str) -> tuple[float, ...]:
    return _floats(value, 2, "LOW,HIGH in dB, e.g. 5,30")


def _splits(value: str) -> tuple[float, ...]:
    return _floats(value, 3, "three ratios TRAIN,DEV,TEST, e.g. 0.8,0.1,0.1")


def _synth(args: argparse.Namespace) -> int:
    from funrl.data.synth.corpus import synthesize_corpus

    try:
        report = synthesize_corpus(args.out, args.n, seed=args.seed, languages=args.languages,
                                   noise_frac=args.noise_frac, noisy_frac=args.noisy_frac,
                                   snr=args.snr, split_ratios=args.splits,
                                   overwrite=args.overwrite, hotword_distractors=args.hotword_distractors)
    except (ValueError, FileExistsError) as e:
        print(f"funrl data synth: {e}")
        return 2
    splits = ", ".join(f"{k} {v}" for k, v in report.splits.items())
    print(f"wrote {len(report.utterances)} utterances ({report.hours * 60:.1f} min) to "
          f"{report.out_dir}: manifest.jsonl; {splits}; hotwords.txt")
    return 0


def _align(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from funrl.data.align import Aligner, boundary_agreement
    from funrl.data.manifest import ManifestError, load_manifest, write_manifest
    from funrl.errors import UserError

    try:
        utts = load_manifest(args.manifest)
        aligner = Aligner(args.model)
    except (ManifestError, UserError) as e:
        print(f"funrl data align: {e}")
        return 2
    out, failed = [], []
    for s in range(0, len(utts), args.batch_size):
        part = utts[s:s + args.batch_size]
        for u, words in zip(part, aligner.align([u.to_dict() for u in part])):
            out.append(dataclasses.replace(u, words=words))
            if words is None:
                failed.append(u)
    write_manifest(args.out, out)
    print(f"{args.out}: {len(out)} rows, {len(out) - len(failed)} with word timings")
    if failed:
        u = failed[0]
        print(f"  {len(failed)} rows could not be aligned (their audio is too short for their text's tokens), "
              f"first {args.manifest}:{u.line} id {u.id!r}; they have no 'words' and stay offline in "
              "data.streaming")
    if args.compare:
        pairs = [(a.words, u.words, u.duration) for a, u in zip(out, utts) if a.words and u.words]
        if not pairs:
            print("  --compare: no row has both timings")
            return 0
        ds = np.array([abs(x[1] - y[1]) for a, b, _ in pairs for x, y in zip(a, b)])
        de = np.array([abs(x[2] - y[2]) for a, b, _ in pairs for x, y in zip(a, b)])
        agree = [boundary_agreement(a, b, d, args.chunk_ms / 1000) for a, b, d in pairs]
        same, total = sum(x for x, _ in agree), sum(y for _, y in agree)
        print(f"  against the input's timings ({len(pairs)} rows, {len(ds)} units): start error median "
              f"{np.median(ds) * 1000:.0f} ms (90th pct {np.percentile(ds, 90) * 1000:.0f} ms), end error median "
              f"{np.median(de) * 1000:.0f} ms (90th pct {np.percentile(de, 90) * 1000:.0f} ms); the words heard by a "
              f"{args.chunk_ms} ms chunk boundary agree at {same} of {total} boundaries ({same / max(1, total):.1%})")
    return 0


def _check(args: argparse.Namespace) -> int:
    from funrl.data.audio import AudioError, audio_info
    from funrl.data.manifest import ManifestError, load_manifest

    try:
        utts = load_manifest(args.manifest, check_audio=True)
    except ManifestError as e:
        print(f"{args.manifest}: {len(e.problems)} problem(s)")
        for p in e.problems:
            print(f"  {p}")
        return 2  # user errors in the data (the CLI's exit code for one)
    rates: Counter = Counter()
    seconds = 0.0
    for u in utts:
        try:
            info = audio_info(u.audio)
        except AudioError as e:  # the file changed since it was checked
            print(f"  {e}")
            return 2
        rates[info.samplerate] += 1
        seconds += info.frames / info.samplerate
    langs = Counter(u.language or "unset" for u in utts)
    print(f"{args.manifest}: ok, {len(utts)} utterances, {seconds / 3600:.3f} h "
          f"({seconds:.1f} s), {sum(u.noise for u in utts)} noise clips")
    print("  languages:    " + ", ".join(f"{k} {v}" for k, v in sorted(langs.items())))
    print("  sample rates: " + ", ".join(f"{k} Hz: {v}" for k, v in sorted(rates.items())))
    print(f"  with keywords: {sum(bool(u.keywords) for u in utts)}, with hotwords: "
          f"{sum(bool(u.hotwords) for u in utts)}, with word timings: {sum(u.words is not None for u in utts)}")
    return _check_context(args, utts)


def _check_context(args: argparse.Namespace, utts: list) -> int:
    """With ``--model``: clips longer than the model's context (:mod:`funrl.data.context`)."""
    from funrl.data.context import max_clip_seconds, too_long

    limit = max_clip_seconds(args.model, args.max_new_tokens) if args.model else None
    long = too_long(utts, limit)
    if not long:
        print("  problems: none")
        return 0
    print(f"  problems: {len(long)} clip(s) longer than the {limit:.1f} s that fit in the context "
          f"of {args.model}; cut them, or leave them out with data.max_duration={limit:.0f} "
          f"(funrl eval: --max-duration {limit:.0f})")
    for u in long:
        print(f"    {args.manifest}:{u.line}: {u.id}: {u.duration:.1f} s ({u.audio})")
    return 2
