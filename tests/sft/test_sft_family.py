"""`funrl sft` on the transformers Fun-ASR-Nano family: built from scratch and continued from a
folder through the real CLI on a small synthesized corpus; the loss falls on a fixed batch; the
selected parts train and the others stay bit-equal; LoRA trains only adapters and is merged into a
folder the family's own class loads; the CTC head is saved beside the weights and loads back."""

from __future__ import annotations

import json

import pytest
import torch

from funrl.config import ConfigError, load_config
from tests.sft.steps import saved_weights as _weights, train_then_save
from funrl.models.families.ctc import greedy_decode, load_ctc_head

TINY = ["model.family=fun_asr_nano", "model.encoder.d_model=32", "model.encoder.num_layers=2",
        "model.encoder.num_heads=2", "model.encoder.ffn_dim=64", "model.adaptor.num_layers=1",
        "model.adaptor.num_heads=2", "model.adaptor.ffn_dim=64", "model.llm.hidden_size=32",
        "model.llm.num_heads=2", "model.llm.num_kv_heads=1", "model.llm.head_dim=16",
        "model.llm.intermediate_size=64", "model.vocab_size=300", "sft.threads=1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from funrl.data.synth.corpus import synthesize_corpus

    out = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(out, n=30, seed=3)
    return out


def _sft(args) -> int:
    from funrl.cli import main

    return main(["sft", *args])



def test_from_scratch_then_continue_with_selected_parts(corpus, tmp_path):
    from transformers import AutoTokenizer, FunAsrNanoForConditionalGeneration

    data = [f"data.train_manifest={corpus}/train.jsonl", f"data.eval_manifest={corpus}/dev.jsonl"]
    run1 = tmp_path / "scratch"
    assert _sft([*TINY, *data, f"sft.output_dir={run1}", "sft.max_steps=4", "sft.eval_every=2", "sft.batch_size=4",
                 "sft.log_every=1", "sft.warmup_steps=2"]) == 0
    rows = [json.loads(line) for line in (run1 / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["event"] == "train"] == [1, 2, 3, 4]
    assert all("ctc" in r and r["ce"] > 0 for r in rows if r["event"] == "train")
    assert [r["step"] for r in rows if r["event"] == "eval"] == [2, 4]
    assert not list(run1.glob("*.tmp")) and not list(run1.glob("*.old"))
    for name in ("last", "best"):  # the family's own class loads it; the CTC head sits beside it
        model = FunAsrNanoForConditionalGeneration.from_pretrained(str(run1 / name))
        tok = AutoTokenizer.from_pretrained(str(run1 / name))
        assert model.config.text_config.hidden_size == 32 and model.config.text_config.vocab_size == len(tok)
        head = load_ctc_head(run1 / name)
        assert head.vocab_size == len(tok) and head.input_size == model.config.audio_config.hidden_size

    # continue from the folder, training only the adaptor and the CTC head
    run2 = tmp_path / "adaptor"
    assert _sft([*data, f"model.path={run1}/last", f"sft.output_dir={run2}", "sft.max_steps=2", "sft.eval_every=2",
                 "sft.batch_size=4", "sft.warmup_steps=1", "sft.threads=1", "sft.trainable=[adaptor,ctc]"]) == 0
    before, after = _weights(run1 / "last"), _weights(run2 / "last")
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("model.multi_modal_projector.") for k in changed)
    assert any(k.startswith("model.multi_modal_projector.") for k in changed)
    ctc0, ctc1 = load_ctc_head(run1 / "last"), load_ctc_head(run2 / "last")
    assert not torch.equal(ctc0.proj.weight, ctc1.proj.weight)


def _job(corpus, tmp_path, overrides=()):
    from funrl.sft.family import load_family_job

    cfg = load_config(None, [*TINY, f"data.train_manifest={corpus}/train.jsonl", f"sft.output_dir={tmp_path}",
                             "run.seed=0", *overrides])
    torch.manual_seed(0)
    return load_family_job(cfg, log=lambda m: None)


def test_loss_falls_on_a_fixed_batch(corpus, tmp_path):
    torch.set_num_threads(1)
    job = _job(corpus, tmp_path)
    job.train()
    idx = list(range(4))
    opt = torch.optim.AdamW(job.params, lr=5e-3)
    first = last = None
    for _ in range(40):
        loss, m = job.loss(idx, None, 0.3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first, last = first or m, m
    assert last["ce"] < 0.5 * first["ce"] and last["ctc"] < 0.5 * first["ctc"]


def test_lora_trains_only_adapters_and_saves_merged(corpus, tmp_path):
    from transformers import FunAsrNanoForConditionalGeneration

    torch.set_num_threads(1)
    job = _job(corpus, tmp_path, ["sft.trainable=[llm]", "sft.lora.enabled=true", "sft.lora.r=2"])
    assert job.params and all(p.requires_grad for p in job.params)
    names = {n for n, p in job.lm.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names)
    assert not any(p.requires_grad for p in job.adapter.model.model.audio_tower.parameters())
    init = {k.replace(".base_layer", ""): v.clone() for k, v in job.adapter.model.state_dict().items()}  # LoRA-wrapped names
    out = tmp_path / "saved"
    saved = train_then_save(job, out, steps=3, ctc_weight=0.3)
    assert not any("lora" in k for k in saved)
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(saved[q], init[q])  # the trained adapter is merged into the saved weights
    enc = [k for k in saved if k.startswith("model.audio_tower.")]
    assert enc and all(torch.equal(saved[k], init[k]) for k in enc)
    FunAsrNanoForConditionalGeneration.from_pretrained(str(out))
    assert any("lora_" in n for n, _ in job.lm.named_parameters())  # the live model keeps training with LoRA


def test_unknown_part_is_refused(corpus, tmp_path):
    with pytest.raises(ConfigError, match="unknown part"):
        _job(corpus, tmp_path, ["sft.trainable=[decoder]"])


def test_ctc_greedy_decode_of_a_hand_worked_emission():
    # classes 0..2 are tokens, 3 is blank; best path per frame: 1 1 3 1 2 2 3 0 -> 1 1 2 0
    best = [1, 1, 3, 1, 2, 2, 3, 0, 0]
    logp = torch.full((len(best), 4), -5.0)
    logp[torch.arange(len(best)), torch.tensor(best)] = -0.1
    assert greedy_decode(logp, length=8) == [1, 1, 2, 0]
    assert greedy_decode(logp) == [1, 1, 2, 0]  # the repeated 0 collapses
    assert greedy_decode(logp[:2]) == [1]


def test_cached_features_give_the_processors_prompt_embeddings(corpus, tmp_path):
    """SFT pads cached processor outputs itself; the prompts must equal the adapter's own path."""
    torch.set_num_threads(1)
    job = _job(corpus, tmp_path)
    idx = [0, 1, 2, 3, 4]
    with torch.no_grad():
        cached = job.adapter.merge_audio(job.batch(job.train_set, idx))
        direct = job.adapter.prompt_embeds([job.train_set.utts[i].to_dict() for i in idx])
    assert len({e.shape[0] for e in direct}) > 1  # clips of different lengths: padding is exercised
    for a, b in zip(cached, direct):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
