"""SFT that teaches the warm start to use hotword context (``sft.hotword_mix``): every training
utterance gets its prompt with no context, with the manifest's hotwords (keywords among
distractors) and with the terms retrieved by the starting model's CTC first pass, and each
training batch draws one of them per utterance by the configured weights."""

from __future__ import annotations

import pytest
import torch

from funrl.config import load_config
from funrl.sft.family import load_family_job

from tests.hotwords.test_rag_eval import WARM, corpus, hotword_list  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def job(corpus, hotword_list):  # noqa: F811
    cfg = load_config(None, [f"model.path={WARM}", f"data.train_manifest={corpus / 'train.jsonl'}",
                             "sft.hotword_mix={none: 1.0, manifest: 1.0, rag: 2.0}", f"sft.hotword_list={hotword_list}"])
    return load_family_job(cfg, log=lambda *_: None)


def test_each_utterance_has_its_prompt_in_every_context(job, hotword_list):  # noqa: F811
    from funrl.hotwords.rag import RagContext

    data, tok = job.train_set, job.adapter.tokenizer
    retrieved = RagContext(job.adapter, WARM, hotword_list)([u.to_dict() for u in data.utts])
    assert set(data.variants) == {"none", "manifest", "rag"}
    for i, u in enumerate(data.utts):
        none = tok.decode(data.variants["none"][i])
        assert "热词列表" not in none and torch.equal(data.variants["none"][i], data.ids[i])  # the plain prompt
        manifest = tok.decode(data.variants["manifest"][i])
        if u.hotwords:
            assert "热词列表：[" + ", ".join(u.hotwords) + "]" in manifest
        rag = tok.decode(data.variants["rag"][i])
        terms = retrieved[i]["hotwords"]
        if terms:
            assert "热词列表：[" + ", ".join(terms) + "]" in rag
        else:
            assert "热词列表" not in rag
    assert any(tok.decode(data.variants["rag"][i]) != tok.decode(data.variants["manifest"][i])
               for i in range(len(data.utts)))  # retrieval gives other lists than the manifest


def test_training_batches_draw_the_contexts_by_weight_and_evaluation_uses_the_plain_prompt(job):
    data = job.train_set
    idx = list(range(len(data.utts)))
    seen = {"none": 0, "manifest": 0, "rag": 0}
    gen = torch.Generator().manual_seed(0)
    pad = job.adapter.tokenizer.pad_token_id
    for _ in range(40):
        ids = job.batch(data, idx, gen)["input_ids"]
        for b, i in enumerate(idx):
            row = ids[b][ids[b] != pad] if pad is not None else ids[b]
            matches = [m for m, v in data.variants.items() if torch.equal(row.cpu(), v[i])]
            assert matches, "a training prompt that is none of the utterance's contexts"
            for m in set(matches):
                seen[m] += 1 / len(set(matches))
    total = sum(seen.values())
    assert seen["rag"] / total == pytest.approx(0.5, abs=0.12) and seen["none"] > 0 and seen["manifest"] > 0
    plain = job.batch(data, idx)["input_ids"]  # no generator: evaluation
    for b, i in enumerate(idx):
        row = plain[b][plain[b] != pad] if pad is not None else plain[b]
        assert torch.equal(row.cpu(), data.ids[i])
