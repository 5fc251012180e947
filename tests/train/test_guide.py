"""algorithm.guide (funrl/train/guide.py): the last sample of each group is the model's own CTC
transcript (or the reference), carried with the prompt embeddings, scored and trained on like any
other row, with no engine log-probs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoTokenizer

from funrl.data.manifest import load_manifest
from funrl.models.families import load_audio_llm
from funrl.models.families.ctc import load_ctc_head
from funrl.models.prompt import target_ids
from funrl.policy.rollout_correction import rollout_correction
from funrl.rollout.protocol import RolloutBatch
from funrl.train.guide import apply_guides, guide_tensors, make_guides, read_guides
from funrl.train.transport import PackedTensors
from funrl.train.workers.base import prompt_tensors
from funrl.train.workers.encoder import EncoderWorker

from tests.hotwords.test_rag_eval import WARM, corpus  # noqa: F401 - fixture


def ctc_transcripts(rows: list[dict]) -> list[str]:
    """The slow reference: each clip alone through the family encoder and the CTC head, the best
    label at every frame, repeats merged, blanks dropped, decoded."""
    model, head = load_audio_llm(WARM), load_ctc_head(WARM)
    out = []
    with torch.no_grad():
        for r in rows:
            _, enc, lengths = model.encode(model.on_model(model.prompt_inputs([r])))
            best = head(enc.float())[0, : int(lengths[0])].argmax(-1).tolist()
            ids = [t for j, t in enumerate(best) if t != head.blank and (j == 0 or t != best[j - 1])]
            out.append(model.tokenizer.decode(ids, skip_special_tokens=True).strip())
    return out


def test_guides_round_trip_through_a_pack_with_their_finish_reason():
    tok = AutoTokenizer.from_pretrained(WARM)
    rows = [{"text": "把文件发给 Priya"}, {"text": ""}, {"text": "call Rafael tomorrow " * 10}]
    ids, texts = make_guides(tok, rows, "reference", None, max_new_tokens=12)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert ids[0] == target_ids(tok, "把文件发给 Priya") and ids[0][-1] == end and texts[0] == "把文件发给 Priya"
    assert ids[1] == [end] and texts[1] == ""  # an empty transcript is the end token alone
    assert len(ids[2]) == 12 and end not in ids[2]  # cut at max_new_tokens, as a sample would be
    assert texts[2] == tok.decode(ids[2], skip_special_tokens=True).strip()
    emb = [("0", torch.zeros(3, 4)), ("1", torch.ones(2, 4)), ("2", torch.ones(1, 4))]
    a = PackedTensors.pack(emb[:2] + guide_tensors(ids[:2], texts[:2], end))
    b = PackedTensors.pack(emb[2:] + guide_tensors(ids[2:], texts[2:], end))
    assert read_guides([a, b]) == [(ids[0], texts[0], "stop"), (ids[1], "", "stop"), (ids[2], texts[2], "length")]
    assert [t.shape[0] for t in prompt_tensors([a, b])] == [3, 2, 1]  # the prompts alone


def test_apply_guides_replaces_the_last_row_of_each_group():
    batch = RolloutBatch([[1], [2], [3], [4]], [[-0.1], [-0.2], [-0.3], [-0.4]], ["stop"] * 4, [5, 5, 7, 7])
    texts = ["a", "b", "c", "d"]
    guides = {5: ([9, 9], "g5", "stop"), 7: ([8], "g7", "length")}
    assert apply_guides([5, 7], batch, texts, guides, 2) == [1, 3]
    assert batch.token_ids == [[1], [9, 9], [3], [8]] and texts == ["a", "g5", "c", "g7"]
    assert batch.finish_reasons == ["stop", "stop", "stop", "length"]
    assert batch.logprobs[0] == [-0.1] and all(math.isnan(x) for x in batch.logprobs[1] + batch.logprobs[3])


def test_a_row_without_engine_logprobs_has_zero_difference_and_weight_one():
    old = torch.tensor([[-1.0, -2.0], [-0.5, -0.7]])
    eng = torch.tensor([[-1.5, -1.0], [math.nan, math.nan]])  # row 1: the guide
    mask = torch.tensor([[True, True], [True, False]])
    w, m = rollout_correction(old, eng, mask, mode="tis", cap=1.5, num_tokens=3)
    assert [round(x, 4) for x in w[0].tolist()] == [1.5, 0.3679] and w[1].tolist() == [1.0, 0.0]
    assert m["rollout_logp_diff_mean"].item() == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert m["rollout_logp_diff_max"].item() == pytest.approx(1.0)


def test_the_encoder_role_packs_the_ctc_heads_transcript(corpus):  # noqa: F811
    rows = [u.to_dict() for u in load_manifest(corpus / "train.jsonl")]
    model = load_audio_llm(WARM)
    plain = EncoderWorker("encoder0", str(WARM), prompt=model.prompt).encode(rows, 0)
    for cache in (0.0, 64.0):
        worker = EncoderWorker("encoder0", str(WARM), prompt=model.prompt, guide="ctc", max_new_tokens=32,
                               cache_mib=cache)
        for _ in range(2):  # the second call: from the cache when it is on
            packed = worker.encode(rows, 0)
            got = read_guides([packed])
            assert [g[1] for g in got] == ctc_transcripts(rows)
            tok = model.tokenizer
            assert [g[0] for g in got] == [target_ids(tok, g[1]) for g in got]
            for a, b in zip(prompt_tensors(packed), prompt_tensors(plain)):  # the same prompts as without
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("guide", ["ctc", "reference"])
def test_grpo_on_ray_trains_on_the_guide_row(tmp_path, corpus, guide):  # noqa: F811
    from funrl.train.cluster import ray_safe_env

    from tests.train.runs import train_to_end

    ray_safe_env()
    run_dir, metrics = train_to_end([
        f"run.output_dir={tmp_path}", "run.name=guide", f"data.train_manifest={corpus / 'train.jsonl'}",
        f"model.path={WARM}", f"algorithm.guide={guide}", "train.steps=2", "train.prompts_per_step=3",
        "algorithm.group_size=3", "rollout.max_new_tokens=16", "train.samples_every=1", "train.samples_prompts=3",
        "policy.world_size=1", "checkpoint.every=0", "checkpoint.save_final=false", "cluster.num_cpus=4",
        "profile.plots=false",
    ])
    rows = {u.id: u.to_dict() for u in load_manifest(corpus / "train.jsonl")}
    recs = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 6
    want = dict(zip(rows, ctc_transcripts(list(rows.values())))) if guide == "ctc" else \
        {i: r["text"] for i, r in rows.items()}
    for r in recs:
        assert r["samples"][-1]["text"] == want[r["id"]]  # the group's last row is the guide
    for m, step in zip(metrics, (0, 1)):
        r = torch.tensor([[s["reward"] for s in x["samples"]] for x in recs if x["step"] == step])  # [3, G]
        assert m["adv/guide_better_share"] == pytest.approx(float((r[:, -1] > r[:, :-1].max(1).values).float().mean()))
        assert math.isfinite(m["rollout_logp_diff_mean"])


@pytest.mark.parametrize("overrides, says", [
    ([f"model.path={WARM}", "algorithm.guide=ctc", "data.hotwords=rag", f"data.hotword_list={WARM}/ctc.json"],
     "not combined yet"),
    ([f"model.path={WARM}", "algorithm.guide=reference", "data.streaming.p=0.5"], "data.streaming.p=0.5"),
    (["model.path=/nonexistent/model", "algorithm.guide=ctc"], "with a CTC head"),
    ([f"model.path={WARM}", "algorithm.guide=ctc", "algorithm.group_size=1"], "algorithm.group_size"),
    ([f"model.path={WARM}", "algorithm.guide=ctc", "algorithm.filter_zero_variance_groups=true",
      "algorithm.max_refill_rounds=2"], "algorithm.guide"),
])
def test_guide_refusals_name_the_keys(overrides, says):
    from funrl.config import ConfigError, load_config
    from funrl.train.preflight import check_guide

    with pytest.raises((ConfigError, ValueError), match=says):
        check_guide(load_config(None, overrides))
