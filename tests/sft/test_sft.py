"""SFT: the loss against transformers' own cross-entropy, that it falls, part selection, the LR
schedule, and `funrl sft` end to end on a small synthesized corpus."""

from __future__ import annotations

import json
import math

import pytest
import torch

from funrl.config import ConfigError, load_config
from funrl.models.prompt import build_prompt_embeds
from funrl.models.testing import SAMPLES, random_batch, tiny_model
from funrl.sft.loss import sft_loss
from funrl.sft.trainer import lr_factor, select_trainable

TEXTS = ["turn on the kitchen light", "打开 客厅 的 灯", ""]


def test_ce_matches_transformers_loss_on_one_sample():
    torch.set_num_threads(1)
    model, tok = tiny_model()
    feats, lengths = random_batch(1)
    with torch.no_grad():
        loss, m = sft_loss(model, tok, feats, lengths, SAMPLES[:1], TEXTS[:1], ctc_weight=0.0)
        # reference: prompt + target as one unpadded row, labels -100 on the prompt, HF's shifted CE
        p = build_prompt_embeds(model, tok, model.encode_audio(feats, lengths), SAMPLES[:1], TEXTS[:1])
        ids = torch.tensor(p.target_ids[0])
        inputs = torch.cat([p.embeds[0], model.llm.get_input_embeddings()(ids)])[None]
        labels = torch.cat([torch.full((p.embeds[0].shape[0],), -100), ids])[None]
        ref = model.llm(inputs_embeds=inputs, labels=labels).loss
    torch.testing.assert_close(loss, ref, rtol=0, atol=1e-5)
    assert m["tokens"] == len(ids) and "ctc" not in m


def test_loss_falls_on_a_tiny_corpus():
    torch.set_num_threads(1)
    model, tok = tiny_model()
    model.train()
    feats, lengths = random_batch(3)
    params = select_trainable(model, load_config(None))
    opt = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    for _ in range(25):
        loss, m = sft_loss(model, tok, feats, lengths, SAMPLES, TEXTS, ctc_weight=0.3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append((m["ce"], m["ctc"]))
    (ce0, ctc0), (ce1, ctc1) = losses[0], losses[-1]
    assert ce0 > math.log(120) * 0.8  # starts near chance (uniform over 120 tokens: 4.79)
    assert ce1 < 0.5 * ce0 and ctc1 < 0.5 * ctc0


def test_select_trainable_freezes_the_other_parts():
    model, _ = tiny_model()
    cfg = load_config(None, ["sft.trainable=[adaptor]"])
    params = select_trainable(model, cfg)
    assert {id(p) for p in params} == {id(p) for p in model.adaptor.parameters()}
    cfg = load_config(None, ["sft.trainable=[encoder,llm]", "sft.lora.enabled=true", "sft.lora.r=2"])
    model, _ = tiny_model()
    select_trainable(model, cfg)
    on = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any(n.startswith("encoder.") for n in on)
    assert all(n.startswith("encoder.") or "lora_" in n for n in on)
    assert any("lora_A" in n for n in on) and not any(n.startswith("adaptor.") for n in on)
    with pytest.raises(ConfigError, match="unknown part"):
        select_trainable(tiny_model()[0], load_config(None, ["sft.trainable=[decoder]"]))


def test_lr_schedule_warmup_then_cosine_by_steps_or_time():
    assert lr_factor(0, 10, 110) == pytest.approx(0.1)  # (0+1)/10
    assert lr_factor(9, 10, 110) == pytest.approx(1.0)
    assert lr_factor(60, 10, 110) == pytest.approx(0.5)  # halfway through the cosine: (1+cos(pi/2))/2
    assert lr_factor(110, 10, 110) == pytest.approx(0.0)
    assert lr_factor(20, 10, 110, time_frac=0.5) == pytest.approx(0.5)  # time is further along than steps


@pytest.mark.slow
def test_funrl_sft_cli_end_to_end(tmp_path):
    from funrl.cli import main
    from funrl.data.synth.corpus import synthesize_corpus
    from funrl.models.io import load_pretrained

    synthesize_corpus(tmp_path / "c", n=24, seed=1)
    out = tmp_path / "run"
    rc = main(["sft", f"data.train_manifest={tmp_path}/c/train.jsonl", f"data.eval_manifest={tmp_path}/c/dev.jsonl",
               f"sft.output_dir={out}", "sft.max_steps=4", "sft.eval_every=2", "sft.batch_size=4", "sft.log_every=1",
               "sft.threads=1", "model.encoder.d_model=32", "model.encoder.num_layers=1", "model.encoder.ffn_dim=64",
               "model.adaptor.num_layers=1", "model.llm.hidden_size=32", "model.llm.head_dim=8",
               "model.llm.intermediate_size=64", "model.vocab_size=100", "sft.save_dtype=bfloat16"])
    assert rc == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["event"] == "train"] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if r["event"] == "eval"] == [2, 4]
    assert all(0.0 <= r["dev_error_rate"] for r in rows if r["event"] == "eval")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.old"))  # atomic saves left nothing behind
    for name in ("last", "best"):
        model, tok = load_pretrained(out / name)
        assert model.encoder.cfg.d_model == 32 and model.llm.config.vocab_size == len(tok)


def test_missing_train_manifest_is_a_config_error(tmp_path):
    from funrl.sft.trainer import run_sft

    with pytest.raises(ConfigError, match="data.train_manifest is not set"):
        run_sft(load_config(None, [f"sft.output_dir={tmp_path}"]))
