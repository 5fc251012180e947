"""GRPO with the hotword context production gives (``data.hotwords=rag``): the encoder role runs the
CTC first pass and retrieval, and the prompts it builds carry the retrieved terms."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from funrl.data.manifest import load_manifest
from funrl.hotwords.rag import RagContext
from funrl.models.families import load_audio_llm
from funrl.train.workers.base import prompt_tensors
from funrl.train.workers.encoder import EncoderWorker

from tests.hotwords.test_rag_eval import WARM, corpus, hotword_list  # noqa: F401 - fixtures


def test_the_encoder_role_prompts_with_the_retrieved_terms(corpus, hotword_list):  # noqa: F811
    rows = [u.to_dict() for u in load_manifest(corpus / "train.jsonl")]
    model = load_audio_llm(WARM)
    worker = EncoderWorker("encoder0", str(WARM), prompt=model.prompt, hotwords="rag",
                           hotword_list=str(hotword_list), rag_k=5)
    got = prompt_tensors(worker.encode(rows, 0))
    model.prompt = dataclasses.replace(model.prompt, use_hotwords=True)
    ctx = RagContext(model, WARM, hotword_list, k=5)(rows)
    want = model.prompt_embeds(ctx)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b.float(), atol=1e-5, rtol=1e-5)
    spans = [s for s in worker.rec.drain() if s["name"] == "encode"]
    assert spans[0]["args"]["rag_terms"] == sum(len(r["hotwords"]) for r in ctx)
    manifest = model.prompt_embeds(rows)  # with the manifest's own hotwords instead
    differ = [i for i, r in enumerate(rows) if r["hotwords"] != ctx[i]["hotwords"]]
    assert differ, "retrieval found the manifest's own lists everywhere: the test shows nothing"
    for i in differ:
        assert got[i].shape != manifest[i].shape or not torch.allclose(got[i], manifest[i].float())


@pytest.mark.slow
def test_grpo_steps_on_ray_with_rag_context(tmp_path, corpus, hotword_list):  # noqa: F811
    from funrl.profiling import load_records
    from funrl.train.cluster import ray_safe_env

    from tests.train.runs import train_to_end

    ray_safe_env()
    run_dir, metrics = train_to_end([
        f"run.output_dir={tmp_path}", "run.name=rag", f"data.train_manifest={corpus / 'train.jsonl'}",
        f"model.path={WARM}", "data.hotwords=rag", f"data.hotword_list={hotword_list}", "data.rag_k=5",
        "train.steps=2", "train.prompts_per_step=2", "algorithm.group_size=2", "rollout.max_new_tokens=8",
        "policy.world_size=1", "policy.lora.enabled=true", "checkpoint.every=0", "checkpoint.save_final=false",
        "cluster.num_cpus=4", "profile.plots=false",
    ])
    assert [m["step"] for m in metrics] == [0, 1]
    encodes = [s for s in load_records(run_dir)["spans"] if s["name"] == "encode" and s["worker"] == "encoder0"]
    assert len(encodes) == 2 and all("rag_terms" in s["args"] for s in encodes)
    # the exported model keeps the (frozen) CTC head, so the trained model can retrieve too
    for name in ("ctc.json", "ctc.safetensors"):
        assert (run_dir / "model" / name).read_bytes() == (WARM / name).read_bytes()
    RagContext(load_audio_llm(run_dir / "model"), run_dir / "model", hotword_list)
