"""Streaming decode of a real audio LLM (the shipped warm start) on real eSpeak speech."""

from __future__ import annotations

from funrl.data.manifest import load_manifest
from funrl.eval.cli import evaluate
from funrl.models.families import load_audio_llm
from funrl.streaming.family import stream_rows

from tests.hotwords.test_rag_eval import WARM, corpus  # noqa: F401 - fixture


def test_one_chunk_over_the_whole_clip_is_the_offline_transcription(corpus):  # noqa: F811
    model = load_audio_llm(WARM)
    rows = [u.to_dict() for u in load_manifest(corpus / "train.jsonl")][:4]
    offline = model.transcribe(rows, 32)
    one, stats = stream_rows(model, rows, 100.0, 5, 32)
    assert one == offline and stats["revisions_per_utterance"] == 0
    chunked, stats = stream_rows(model, rows, 0.5, 3, 32)
    assert len(chunked) == 4 and stats["first_token_latency_s"] >= 0.5 and stats["real_time_factor"] > 0


def test_eval_streaming_reports_the_stream_and_its_latency(corpus):  # noqa: F811
    report, rows = evaluate(str(WARM), str(corpus / "train.jsonl"), max_new_tokens=32, n_boot=10,
                            streaming=(0.72, 5))
    s = report["streaming"]
    assert s["chunk_ms"] == 720 and s["rollback_tokens"] == 5 and s["real_time_factor"] > 0
    want, _ = stream_rows(load_audio_llm(WARM), [u.to_dict() for u in load_manifest(corpus / "train.jsonl")],
                          0.72, 5, 32)
    assert [r["hypothesis"] for r in rows] == want
