"""``funrl eval --model DIR --manifest M [--output O.json]``: figures as JSON (see funrl.eval.metrics)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="transcribe a manifest with a model folder and report WER etc. as JSON")
    p.add_argument("--model", required=True,
                   help="model folder: a transformers audio LLM (Fun-ASR-Nano, Qwen2-Audio) or a funrl folder")
    p.add_argument("--manifest", required=True, help="JSONL manifest to transcribe")
    p.add_argument("--output", help="write the JSON report here (default: print it)")
    p.add_argument("--hypotheses", help="also write one JSON line per utterance (id, reference, hypothesis)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% interval")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--hotword-list", default=None,
                   help="with --hotwords rag: the vocabulary to retrieve from (one term per line)")
    p.add_argument("--rag-k", type=int, default=10, help="with --hotwords rag: terms retrieved per utterance")
    p.add_argument("--rag-check", choices=["none", "ctc"], default="none",
                   help="with --hotwords rag: ctc also decodes each utterance that got context without it and "
                        "keeps the transcript the CTC head finds more likely (a second LLM decode of those rows)")
    p.add_argument("--streaming", action="store_true",
                   help="decode as a stream: the audio grows --chunk-ms at a time, the last --rollback tokens revisable")
    p.add_argument("--chunk-ms", type=int, default=720)
    p.add_argument("--rollback", type=int, default=5, help="with --streaming: tokens the next chunk may revise")
    p.add_argument("--hotwords", choices=["saved", "on", "manifest", "off", "none", "rag"], default="saved",
                   help="the hotword context block: as the model was saved, on/manifest (each row's hotwords), "
                        "off/none, or rag (terms retrieved from --hotword-list by the CTC first pass)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--max-duration", type=float, default=None,
                   help="leave out clips longer than this many seconds (counted on stderr)")
    p.set_defaults(func=_run)


def checked_utterances(model_dir: str, manifest: str, max_new_tokens: int,
                       max_duration: float | None = None) -> list:
    """The manifest's utterances after every check that needs no model loaded: the model folder
    exists, each row and its audio are valid (as ``funrl data check``), and no clip is longer than
    the model's context (:mod:`funrl.data.context`) once ``max_duration`` has left some out."""
    from funrl.data.config import filter_by_duration
    from funrl.data.context import max_clip_seconds, too_long, too_long_message
    from funrl.data.manifest import load_manifest
    from funrl.errors import UserError
    from funrl.models.families import family_of, is_native

    if not is_native(model_dir):
        if not (Path(model_dir) / "config.json").is_file():
            raise UserError(f"{model_dir}: not a model folder (no config.json or funrl_model.json); give a "
                            "transformers audio-LLM folder or one written by `funrl sft` / `funrl train` (RUN_DIR/model)")
        family_of(model_dir)  # an unsupported model_type is refused here, before any audio is read
    utts, dropped = filter_by_duration(load_manifest(manifest, check_audio=True), max_duration)
    if dropped:
        print(f"funrl eval: --max-duration {max_duration}: {len(dropped)} of "
              f"{len(dropped) + len(utts)} utterances left out", file=sys.stderr)
    if not utts:
        raise UserError(f"{manifest}: --max-duration {max_duration} leaves no utterance; raise it")
    limit = max_clip_seconds(model_dir, max_new_tokens)
    long = too_long(utts, limit)
    if long:
        raise UserError(too_long_message(
            manifest, long, limit, model_dir,
            f"cut them, or pass --max-duration {limit:.0f} to leave them out "
            f"(in training: data.max_duration={limit:.0f})"))
    return utts


def evaluate(model_dir: str, manifest: str, batch_size: int = 32, max_new_tokens: int = 64,
             n_boot: int = 1000, seed: int = 0, hotwords: str = "saved",
             max_duration: float | None = None, hotword_list: str | None = None,
             rag_k: int = 10, streaming: tuple[float, int] | None = None,
             rag_check: str = "none") -> tuple[dict, list[dict]]:
    """``(report, rows)`` for a model folder on a manifest: what the CLI prints. The manifest
    is checked (:func:`checked_utterances`) before the model is loaded. ``streaming``:
    ``(chunk_s, rollback)`` decodes each clip as a stream (:func:`funrl.streaming.family.stream_rows`;
    transformers families); the report's ``streaming`` holds the latency figures. ``rag_check``:
    :class:`funrl.hotwords.rag.RagContext`'s check (``ctc``: the CTC head arbitrates between the
    transcripts with and without context; the report's ``rag`` counts what it kept)."""
    import dataclasses

    from funrl.errors import UserError
    from funrl.eval.decode import transcribe, transcribe_rows
    from funrl.eval.metrics import compute_metrics
    from funrl.models.families import load_audio_llm
    from funrl.models.families.native import NativeAudioLLM

    if rag_check != "none" and hotwords != "rag":  # refused before any audio is read
        raise UserError(f"--rag-check {rag_check} needs --hotwords rag")
    utts = checked_utterances(model_dir, manifest, max_new_tokens, max_duration)
    model = load_audio_llm(model_dir)
    if hotwords != "saved":
        model.prompt = dataclasses.replace(model.prompt, use_hotwords=hotwords in ("on", "manifest", "rag"))
    context, seen = None, []
    if hotwords == "rag":  # the manifest's hotwords are replaced by those retrieved from the list
        from funrl.hotwords.rag import RagContext

        if not hotword_list:
            raise UserError("--hotwords rag needs --hotword-list FILE (one term per line)")
        if isinstance(model, NativeAudioLLM):
            raise UserError(f"{model_dir}: --hotwords rag needs a transformers family folder with a CTC head")
        context = RagContext(model, model_dir, hotword_list, rag_k, rag_check)
    stream_stats = None
    if streaming is not None:
        if isinstance(model, NativeAudioLLM) or context is not None:
            raise UserError("--streaming needs a transformers family folder, without --hotwords rag for now")
        from funrl.streaming.family import stream_rows

        hyps, stream_stats = stream_rows(model, [u.to_dict() for u in utts], streaming[0], streaming[1],
                                         max_new_tokens)
    elif isinstance(model, NativeAudioLLM):  # batches by fbank length, as SFT's dev evaluation does
        hyps = transcribe(model.model, model.tokenizer, utts, batch_size=batch_size, max_new_tokens=max_new_tokens)
    else:
        hyps = transcribe_rows(model, utts, batch_size=batch_size, max_new_tokens=max_new_tokens,
                               context=context, seen=seen)
    report = {"model": str(model_dir), "manifest": str(manifest), **compute_metrics(hyps, utts, n_boot, seed)}
    rows = [{"id": u.id, "language": u.language, "reference": u.text, "hypothesis": h} for u, h in zip(utts, hyps)]
    if stream_stats is not None:
        report["streaming"] = stream_stats
    if context is not None:
        from funrl.hotwords.rag import retrieval_stats

        report["rag"] = {"hotword_list": str(hotword_list), "k": rag_k, "check": rag_check,
                         **retrieval_stats(utts, [r["hotwords"] for r in seen])}
        if rag_check != "none":
            kept = [r.get("rag_kept") for r in seen]
            report["rag"]["with_context"] = sum(k is not None for k in kept)
            report["rag"]["kept_plain"] = kept.count("plain")
        for row, r in zip(rows, seen):
            row["retrieved"] = r["hotwords"]
            if "rag_kept" in r:
                row["rag_kept"] = r["rag_kept"]
    return report, rows


def _run(args: argparse.Namespace) -> int:
    import torch

    from funrl.errors import UserError

    for flag, out in (("--output", args.output), ("--hypotheses", args.hypotheses)):
        if out and not Path(out).resolve().parent.is_dir():  # found now, not after the decoding
            raise UserError(f"{flag} {out}: folder {Path(out).resolve().parent} does not exist; create it")
    torch.set_num_threads(max(1, args.threads))
    report, rows = evaluate(args.model, args.manifest, args.batch_size, args.max_new_tokens,
                            args.bootstrap, args.seed, args.hotwords, args.max_duration, args.hotword_list,
                            args.rag_k, (args.chunk_ms / 1000, args.rollback) if args.streaming else None,
                            args.rag_check)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        o = report["overall"]
        print(f"{args.output}: error rate {o['error_rate']:.4f} (95% CI {o['ci95'][0]:.4f}-{o['ci95'][1]:.4f}) "
              f"over {o['utterances']} utterances; hallucination {report['hallucination_rate']:.3f}")
    else:
        sys.stdout.write(text + "\n")
    if args.hypotheses:
        with open(args.hypotheses, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return 0
