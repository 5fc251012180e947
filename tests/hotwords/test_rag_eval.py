"""``funrl eval --hotwords rag`` on the shipped warm start (a real CTC head) and real eSpeak speech:
the first pass is the CTC head's best path, the retrieved terms go through the family's own prompt
builder (the one GRPO's encoder role uses), and the report counts what retrieval found."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from funrl.data.manifest import load_manifest
from funrl.eval.cli import evaluate
from funrl.hotwords.rag import RagContext
from funrl.models.families import load_audio_llm
from funrl.models.families.ctc import load_ctc_head

WARM = Path(__file__).resolve().parents[2] / "examples" / "checkpoints" / "tiny_fun_asr_nano"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from funrl.data.synth.corpus import synthesize_corpus

    out = tmp_path_factory.mktemp("rag_corpus")
    synthesize_corpus(out, 8, seed=3, languages=("en", "zh"), noise_frac=0.0, split_ratios=(1.0, 0.0, 0.0),
                      disjoint_text=False)
    return out


@pytest.fixture(scope="module")
def hotword_list(tmp_path_factory):
    from funrl.data.synth.domain import RARE

    path = tmp_path_factory.mktemp("rag_list") / "hotwords.txt"
    path.write_text("# the domain's rare terms and sound-alikes\n" + "\n".join(
        [t for ts in RARE.values() for t in ts] + ["Netflicks", "Ingram", "高得地图"]) + "\n", encoding="utf-8")
    return path


def test_first_pass_is_the_ctc_heads_best_path(corpus, hotword_list):
    model = load_audio_llm(WARM)
    rag = RagContext(model, WARM, hotword_list, k=5)
    rows = [u.to_dict() for u in load_manifest(corpus / "train.jsonl")][:4]
    got = rag.first_pass(rows)
    head = load_ctc_head(WARM)
    for row, hyp in zip(rows, got):  # slow reference: one clip at a time, frame by frame
        inputs = model.on_model(model.prompt_inputs([row]))
        _, enc, lengths = model.encode(inputs)
        with torch.inference_mode():
            logp = head(enc.float())[0, : int(lengths[0])]
        path, prev = [], None
        for t in range(logp.shape[0]):
            label = int(logp[t].argmax())
            if label != prev and label != head.blank:
                path.append(label)
            prev = label
        assert hyp == model.tokenizer.decode(path, skip_special_tokens=True)
    assert any(h.strip() for h in got)  # the trained head transcribes something


def test_rag_prompts_take_one_encoder_pass(corpus, hotword_list):
    import dataclasses

    model = load_audio_llm(WARM)
    model.prompt = dataclasses.replace(model.prompt, use_hotwords=True)
    rag = RagContext(model, WARM, hotword_list, k=5)
    rows = [u.to_dict() for u in load_manifest(corpus / "train.jsonl")][:4]
    want = model.prompt_embeds(rag(rows))  # the first pass, then the prompts encoded again
    calls, encode = [], model.encode
    model.encode = lambda inputs: calls.append(1) or encode(inputs)
    got_rows, got = rag.prompt_embeds(rows)
    assert len(calls) == 1  # the first pass's audio features serve the prompts too
    assert [r["hotwords"] for r in got_rows] == [r["hotwords"] for r in rag(rows)]
    assert any(r["hotwords"] for r in got_rows)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_eval_rag_prompts_with_the_retrieved_terms_through_the_family_prompt_builder(corpus, hotword_list):
    report, rows = evaluate(str(WARM), str(corpus / "train.jsonl"), batch_size=4, max_new_tokens=24, n_boot=10,
                            hotwords="rag", hotword_list=str(hotword_list), rag_k=5)
    assert report["rag"]["k"] == 5 and report["rag"]["keywords"] > 0
    assert 0.0 <= report["rag"]["keyword_recall"] <= 1.0

    import dataclasses

    model = load_audio_llm(WARM)
    model.prompt = dataclasses.replace(model.prompt, use_hotwords=True)
    rag = RagContext(model, WARM, hotword_list, k=5)
    utts = load_manifest(corpus / "train.jsonl")
    by_id = {r["id"]: r for r in rows}
    for u in utts:
        (ctx,) = rag([u.to_dict()])
        assert by_id[u.id]["retrieved"] == ctx["hotwords"]  # what eval retrieved for this utterance
        prompt = model.prompt_text(ctx)  # the builder GRPO's encoder role calls through prompt_embeds
        if ctx["hotwords"]:
            assert "热词列表：[" + ", ".join(ctx["hotwords"]) + "]" in prompt
        assert by_id[u.id]["hypothesis"] == model.transcribe([ctx], 24)[0]
    found = sum(len(set(u.keywords) & set(by_id[u.id]["retrieved"])) for u in utts)
    assert report["rag"]["keyword_recall"] == pytest.approx(found / report["rag"]["keywords"])


def test_rag_check_keeps_the_transcript_the_ctc_head_finds_more_likely(corpus, hotword_list):
    """``--rag-check ctc``: a row that got context is decoded with and without it, one row at a
    time here, and keeps the transcript of lower CTC negative log-likelihood under the head."""
    import dataclasses

    from funrl.hotwords.ctc import ctc_nll
    from funrl.models.prompt import target_ids

    report, rows = evaluate(str(WARM), str(corpus / "train.jsonl"), batch_size=4, max_new_tokens=24, n_boot=10,
                            hotwords="rag", hotword_list=str(hotword_list), rag_k=5, rag_check="ctc")
    model = load_audio_llm(WARM)
    model.prompt = dataclasses.replace(model.prompt, use_hotwords=True)
    rag = RagContext(model, WARM, hotword_list, k=5)
    head = load_ctc_head(WARM)
    by_id = {r["id"]: r for r in rows}
    kept = []
    for u in load_manifest(corpus / "train.jsonl"):
        (ctx,) = rag([u.to_dict()])
        with_ctx = model.transcribe([ctx], 24)[0]
        if not ctx["hotwords"]:  # no context, nothing to check
            assert "rag_kept" not in by_id[u.id] and by_id[u.id]["hypothesis"] == with_ctx
            continue
        plain = model.transcribe([{**ctx, "hotwords": []}], 24)[0]
        _, enc, lengths = model.encode(model.on_model(model.prompt_inputs([ctx])))
        with torch.inference_mode():
            logp = head(enc.float())
        nll = [float(ctc_nll(logp, lengths, [target_ids(model.tokenizer, t)[:-1]], head.blank)[0]) for t in (with_ctx, plain)]
        want = "plain" if nll[1] < nll[0] else "context"
        assert by_id[u.id]["rag_kept"] == want
        assert by_id[u.id]["hypothesis"] == (plain if want == "plain" else with_ctx)
        kept.append(want)
    assert report["rag"]["check"] == "ctc" and report["rag"]["with_context"] == len(kept) > 0
    assert report["rag"]["kept_plain"] == kept.count("plain") > 0  # the warm start never saw context


def test_rag_refuses_a_model_without_a_ctc_head_and_a_missing_list(tmp_path, hotword_list):
    from funrl.errors import UserError

    model = load_audio_llm(WARM)
    with pytest.raises(UserError, match="CTC head"):
        RagContext(model, tmp_path, hotword_list)
    with pytest.raises(UserError, match="hotword list not found"):
        RagContext(model, WARM, tmp_path / "none.txt")
    with pytest.raises(UserError, match="check 'lm'"):
        RagContext(model, WARM, hotword_list, check="lm")


def test_rag_check_without_rag_is_refused(corpus):
    from funrl.errors import UserError

    with pytest.raises(UserError, match="--rag-check ctc needs --hotwords rag"):
        evaluate(str(WARM), str(corpus / "train.jsonl"), n_boot=0, hotwords="none", rag_check="ctc")
