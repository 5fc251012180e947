"""GRPO on Ray from transformers audio-LLM folders (Fun-ASR-Nano, Qwen2-Audio): 2 FSDP2 ranks, LoRA.

The folders are tiny random-weight models built with transformers' own classes and saved with
``save_pretrained`` (no hub here); the corpus is real eSpeak audio. Nothing is mocked.
"""

from __future__ import annotations

import pytest
import ray
import torch

from funrl.config import load_config
from funrl.models.families import family_of, load_audio_llm
from funrl.models.families.testing import build_fun_asr_nano, build_qwen2_audio
from funrl.train.driver import Trainer

pytestmark = pytest.mark.slow

BUILDERS = {"fun_asr_nano": build_fun_asr_nano, "qwen2_audio": build_qwen2_audio}


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_three_steps_two_ranks_lora_then_export(family, tmp_path, tiny_corpus, ray_env):
    model_dir = BUILDERS[family](tmp_path / family)
    overrides = {
        "run.output_dir": str(tmp_path / "runs"), "run.name": family,
        "data.train_manifest": str(tiny_corpus / "train.jsonl"), "model.path": str(model_dir),
        "train.steps": 3, "train.prompts_per_step": 2, "algorithm.group_size": 4, "rollout.max_new_tokens": 5,
        "policy.world_size": 2, "policy.micro_batch_size": 2, "policy.lora.enabled": True, "policy.lora.r": 4,
        "policy.lora.target_modules": "[q_proj,v_proj]", "policy.optim.lr": 5e-2, "policy.optim.warmup_steps": 0,
        "checkpoint.every": 0, "cluster.num_cpus": 4,
    }
    cfg = load_config(None, [f"{k}={v}" for k, v in overrides.items()])
    trainer = Trainer(cfg)
    trainer.run_steps()
    roles = trainer.roles
    base = load_audio_llm(model_dir)

    # the LoRA-merged text LM moved where the adapter sits, and only there; the audio side is untouched
    merged = {}
    for bucket in ray.get([p.exported.remote() for p in roles.policy])[0]:
        merged.update(bucket)
    before = base.text_lm().state_dict()
    changed = {k for k, v in merged.items() if not torch.equal(v, before[k])}
    assert changed and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in changed), sorted(changed)[:5]
    audio_now = ray.get(roles.encoder.audio_state.remote())
    assert audio_now and all(torch.equal(v, audio_now[k]) for k, v in base.audio_state().items())

    # after the weight sync the rollout engine scores completions exactly as the policy does
    rows = trainer.rows[:2]
    embeds = ray.get(roles.encoder.encode.remote(rows, 99))
    comp = [[5, 6, 7], [8, 9]]
    eng = ray.get(roles.rollout.score.remote(embeds, comp, [0, 1]))
    pol = ray.get([p.score.remote(embeds, comp, [0, 1]) for p in roles.policy])[0]
    for e, p in zip(eng, pol):
        torch.testing.assert_close(e, p, atol=1e-5, rtol=1e-5)
    from funrl.rollout.generation import decode
    from funrl.rollout.protocol import SamplingParams

    greedy, texts = ray.get(roles.rollout.generate.remote(embeds, 1, SamplingParams(temperature=0.0, max_new_tokens=5), 99))

    run_dir = trainer.finish()
    # the export is the family's own format: its class loads it and transcribes as funrl's policy did
    exported = run_dir / "model"
    assert family_of(exported).model_type == family
    again = load_audio_llm(exported)
    assert type(again.model) is type(base.model)
    assert again.transcribe(rows, max_new_tokens=5) == texts
    assert texts == decode(again.tokenizer, greedy.token_ids)
    sd = again.text_lm().state_dict()
    assert all(torch.equal(sd[k], v) for k, v in merged.items())
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(exported / "llm")  # the text LM alone (what SGLang loads)
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in merged.items())
    # under LoRA the PEFT adapter is exported too: on the base text LM it gives the merged weights
    from peft import PeftModel

    peft = PeftModel.from_pretrained(base.text_lm(), exported / "adapter").merge_and_unload()
    got = peft.state_dict()
    for k, v in merged.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=1e-6)
