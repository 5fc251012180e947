"""Streaming-mode training data (``data.streaming``): prompts cut at a chunk boundary with the
committed prefix, the partial reference as the target, in the families' prompt builder, SFT and a
GRPO step on Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from funrl.config import ConfigError, load_config
from funrl.data.manifest import load_manifest
from funrl.models.families import load_audio_llm
from funrl.streaming.training import StreamingConfig, draw_chunk, keep_tokens, row_rng, streaming_view

from tests.hotwords.test_rag_eval import WARM, corpus  # noqa: F401 - fixture

ROW = {"id": "u", "audio": "a.wav", "text": "call Ingrid tomorrow", "keywords": ["Ingrid"], "duration": 1.6,
       "words": [["call", 0.05, 0.4], ["Ingrid", 0.4, 0.9], ["tomorrow", 0.9, 1.5]]}


def test_views_worked_by_hand_without_rollback():
    # chunks of 0.5 s: boundaries 0.5, 1.0, 1.5 and the clip's end 1.6
    one = streaming_view(ROW, 1, 0.5)  # heard by 0.5: "call"; nothing committed before
    assert (one["stream_prefix"], one["text"], one["audio_end_s"], one["keywords"]) == ("", "call", 0.5, [])
    two = streaming_view(ROW, 2, 0.5)  # by 1.0 "call Ingrid" (Ingrid ends at 0.9); committed by 0.5: "call"
    assert (two["stream_prefix"], two["text"], two["stream_reference"]) == ("call", " Ingrid", "call Ingrid")
    assert two["keywords"] == ["Ingrid"] and two["full_text"] == ROW["text"] and two["stream_boundary_s"] == 1.0
    three = streaming_view(ROW, 3, 0.5)  # by 1.5 "tomorrow" (ends at 1.5) is complete
    assert (three["stream_prefix"], three["text"]) == ("call Ingrid", " tomorrow")
    four = streaming_view(ROW, 4, 0.5)  # the last chunk ends at the clip's end
    assert four["audio_end_s"] == 1.6 and four["text"] == "" and four["stream_prefix"] == "call Ingrid tomorrow"
    cut = streaming_view({**ROW, "words": [["call", 0.05, 0.4], ["Ingrid", 0.4, 1.1]]}, 2, 0.5)
    assert cut["text"] == "" and cut["keywords"] == []  # Ingrid is cut in half by 1.0: not in the target
    with pytest.raises(ValueError, match="outside 1..4"):
        streaming_view(ROW, 5, 0.5)
    with pytest.raises(ValueError, match="funrl data align"):
        streaming_view({**ROW, "words": None}, 1, 0.5)


def test_the_rollback_reopens_the_last_tokens_of_the_prefix():
    tok = load_audio_llm(WARM).tokenizer
    assert tok.tokenize("call Ingrid") == ["call", "ĠIngrid"]
    assert keep_tokens("call Ingrid", tok, 1) == "call" and keep_tokens("call Ingrid", tok, 0) == "call Ingrid"
    three = streaming_view(ROW, 3, 0.5, tok, rollback=1)
    assert (three["stream_prefix"], three["text"]) == ("call", " Ingrid tomorrow")
    for text in ("现在给王芳打电话", "打开 Spotify 播放音乐", "call Ingrid tomorrow"):
        for k in range(6):  # always a string prefix, even where tokens split a character's bytes
            assert text.startswith(keep_tokens(text, tok, k))


def test_draws_cut_a_share_p_and_repeat_for_a_resume():
    cfg = StreamingConfig(p=0.3, chunk_ms=500)
    ks = [draw_chunk(ROW, row_rng(0, step, 0, i), cfg) for step in range(50) for i in range(8)]
    share = sum(k is not None for k in ks) / len(ks)
    assert share == pytest.approx(0.3, abs=0.07) and {k for k in ks if k} == {1, 2, 3, 4}
    assert ks == [draw_chunk(ROW, row_rng(0, step, 0, i), cfg) for step in range(50) for i in range(8)]
    assert draw_chunk({**ROW, "words": None}, row_rng(0, 0, 0, 0), StreamingConfig(p=1.0)) is None
    with pytest.raises(ConfigError, match="data.streaming.p"):
        load_config(None, ["data.streaming.p=1.5"])
    with pytest.raises(ConfigError, match="data.streaming.prefix"):
        load_config(None, ["data.streaming.prefix=oracle"])


def test_the_family_prompt_hears_the_audio_up_to_the_boundary_and_carries_the_prefix(corpus, tmp_path):  # noqa: F811
    model = load_audio_llm(WARM)
    row = next(u.to_dict() for u in load_manifest(corpus / "train.jsonl") if len(u.words) >= 3)
    view = streaming_view(row, 2, 0.72)
    assert view["stream_prefix"]  # two chunks into a clip of >= 3 words, something is committed
    wave, rate = sf.read(row["audio"], dtype="float32")
    sf.write(tmp_path / "cut.wav", wave[: int(round(1.44 * rate))], rate, subtype="FLOAT")
    by_hand = {**row, "audio": str(tmp_path / "cut.wav")}
    got = model.prompt_embeds([view])[0]
    ids = model.prompt_inputs([by_hand])["input_ids"][0]
    prefix = model.tokenizer(view["stream_prefix"], add_special_tokens=False)["input_ids"]
    want = model.prompt_embeds([{**by_hand, "stream_prefix": view["stream_prefix"]}])[0]
    torch.testing.assert_close(got, want)
    assert got.shape[0] >= len(ids) + len(prefix) - 1  # the prompt grew by the prefix's tokens
    full = model.prompt_embeds([row])[0]
    assert got.shape[0] < full.shape[0] + len(prefix)  # and heard less audio than the whole clip


@pytest.fixture(scope="module")
def stream_job(corpus):  # noqa: F811
    from funrl.sft.family import load_family_job

    cfg = load_config(None, [f"model.path={WARM}", f"data.train_manifest={corpus / 'train.jsonl'}",
                             "data.streaming.p=0.5", "data.streaming.chunk_ms=720", "data.streaming.rollback=0"])
    return load_family_job(cfg, log=lambda *_: None)


def test_streaming_sft_trains_on_views_with_their_partial_targets(stream_job):
    job, data = stream_job, stream_job.train_set
    assert data.stream is not None and all(v is not None for v in data.stream.utts)
    for u, v in zip(data.utts, data.stream.utts):
        assert v["full_text"] == u.text and v["stream_boundary_s"] <= u.duration
        heard = [w for w, _, end in u.words if end <= v["stream_boundary_s"] + 1e-9]
        from funrl.streaming import join_words

        assert v["stream_prefix"] + v["text"] == join_words(heard)  # prefix + target = words heard
    idx = list(range(len(data.utts)))
    gen = torch.Generator().manual_seed(0)
    picked = []
    for _ in range(30):
        _, texts, streamed = job.batch_and_texts(data, idx, gen)
        picked += streamed
        for i, t, s in zip(idx, texts, streamed):
            assert t == (data.stream.utts[i]["text"] if s else data.utts[i].text)
    assert sum(picked) / len(picked) == pytest.approx(0.5, abs=0.1)
    _, texts, streamed = job.batch_and_texts(data, idx)  # evaluation: offline prompts only
    assert not any(streamed)
    loss, m = job.loss(idx, torch.Generator().manual_seed(1), 0.3)
    assert torch.isfinite(loss) and 0 < m["streaming_share"] < 1 and "ctc" in m


def test_streaming_sft_with_the_models_own_prefix(corpus):  # noqa: F811
    from funrl.sft.family import load_family_job

    cfg = load_config(None, [f"model.path={WARM}", f"data.train_manifest={corpus / 'train.jsonl'}",
                             "data.streaming.p=1", "data.streaming.prefix=model", "data.streaming.seed=4"])
    job = load_family_job(cfg, log=lambda *_: None)
    model = load_audio_llm(WARM)
    views = [v for v in job.train_set.stream.utts if v["stream_boundary_s"] > 0.72 + 1e-6]
    assert views, "every view is at the first chunk: nothing to check"
    for v in views:  # the prefix is the starting model's greedy decode up to the previous boundary
        row = {k: v[k] for k in ("id", "audio", "language", "hotwords", "duration")}
        k_prev = int(np.ceil(v["stream_boundary_s"] / 0.72 - 1e-9)) - 1
        assert v["stream_prefix"] == model.transcribe([{**row, "audio_end_s": k_prev * 0.72}])[0]


def streaming_run(tmp_path, corpus, name: str, rewards: str, *extra: str) -> tuple[Path, list[dict], list[dict]]:
    """A short streaming GRPO run on Ray whose reward plugin (record_plugin.py) writes every sample
    it scores; ``(run_dir, metrics, recorded samples)``."""
    from funrl.train.cluster import ray_safe_env

    from tests.train.runs import train_to_end

    ray_safe_env()
    out = tmp_path / "samples.jsonl"
    record = f"{{name: '{Path(__file__).with_name('record_plugin.py')}:record', kwargs: {{out: '{out}'}}}}"
    run_dir, metrics = train_to_end([
        f"run.output_dir={tmp_path}", f"run.name={name}", f"data.train_manifest={corpus / 'train.jsonl'}",
        f"model.path={WARM}", "data.streaming.p=1", "data.streaming.chunk_ms=720",
        f"rewards.components=[{rewards.format(record=record)}]", "algorithm.group_size=2", "policy.world_size=1",
        "policy.lora.enabled=false", "checkpoint.every=0", "checkpoint.save_final=false", "cluster.num_cpus=4",
        "profile.plots=false", *extra,
    ])
    return run_dir, metrics, [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_a_streaming_grpo_step_on_ray(tmp_path, corpus):  # noqa: F811
    _, metrics, seen = streaming_run(tmp_path, corpus, "stream", "{{name: accuracy}}, {record}",
                                     "train.steps=2", "train.prompts_per_step=2", "rollout.max_new_tokens=8")
    assert [m["step"] for m in metrics] == [0, 1]
    assert len(seen) == 2 * 2 * 2  # steps x prompts x group
    tok = load_audio_llm(WARM).tokenizer
    rows = {u.id: u.to_dict() for u in load_manifest(corpus / "train.jsonl")}
    for s in seen:  # the rewards scored each completion against the partial reference at its boundary
        row = rows[s["id"]]
        k = int(np.ceil(s["stream_boundary_s"] / 0.72 - 1e-9))
        want = streaming_view(row, k, 0.72, tok, 5)
        assert s["reference"] == s["text"] == want["text"]
        assert s["stream_prefix"] == want["stream_prefix"] and s["full_text"] == row["text"]
    assert any(s["stream_boundary_s"] < rows[s["id"]]["duration"] for s in seen)  # some cut inside the clip


@pytest.mark.slow
def test_a_streaming_grpo_step_with_the_policys_own_prefix(tmp_path, corpus):  # noqa: F811
    from funrl.profiling import load_records

    run_dir, _, seen = streaming_run(tmp_path, corpus, "own", "{record}", "data.streaming.prefix=model",
                                     "data.streaming.seed=2", "train.steps=1", "train.prompts_per_step=4",
                                     "rollout.max_new_tokens=16")
    model = load_audio_llm(WARM)
    later = [s for s in seen if s["stream_boundary_s"] > 0.72 + 1e-6]
    assert later, "every prompt was cut at its first chunk: nothing to check"
    for s in later:  # at step 0 the engine holds the warm start: its greedy decode up to the boundary before
        k_prev = int(np.ceil(s["stream_boundary_s"] / 0.72 - 1e-9)) - 1
        row = {k: s[k] for k in ("id", "audio", "language", "hotwords", "duration")}
        assert s["stream_prefix"] == model.transcribe([{**row, "audio_end_s": k_prev * 0.72}], 16)[0]
    spans = [x for x in load_records(run_dir)["spans"] if x["name"] == "stream_prefix"]
    assert len(spans) == 2  # the encode and the greedy decode, each a phase of its own


def test_grpo_refuses_streaming_it_cannot_do(corpus, tmp_path):  # noqa: F811
    from funrl.train.preflight import preflight

    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps({**u.to_dict(), "words": None}) + "\n" for u in load_manifest(corpus / "train.jsonl")))
    base = [f"model.path={WARM}", "data.streaming.p=0.5", f"run.output_dir={tmp_path}"]
    with pytest.raises(ConfigError, match="no row of .*bare.jsonl has word timings.*funrl data align"):
        preflight(load_config(None, base + [f"data.train_manifest={bare}"]))
    with pytest.raises(ConfigError, match="data.streaming.prefix=model needs .* train.prefetch_prompts"):
        preflight(load_config(None, base + [f"data.train_manifest={corpus / 'train.jsonl'}", "data.streaming.prefix=model",
                                            "train.prefetch_prompts=true"]))
