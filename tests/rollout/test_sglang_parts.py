"""Parts of the SGLang engine that need no SGLang: weight buckets, Engine kwargs, the config."""

from __future__ import annotations

import pytest
import torch

from funrl.rollout.config import RolloutConfig, SGLangConfig
from funrl.rollout.protocol import SamplingParams
from funrl.rollout.sglang_engine import engine_kwargs, iter_buckets


def test_buckets_split_by_bytes_after_the_cast():
    # float32 tensors of 100, 200, 300, 1000 elements, cast to bf16: 200, 400, 600, 2000 bytes.
    named = [(f"w{i}", torch.ones(n)) for i, n in enumerate([100, 200, 300, 1000])]
    buckets = list(iter_buckets(named, bucket_bytes=1000, dtype=torch.bfloat16))
    # 200+400=600 fits, +600 would be 1200 > 1000: cut; 600 alone; 2000 exceeds the cap: alone.
    assert [[n for n, _ in b] for b in buckets] == [["w0", "w1"], ["w2"], ["w3"]]
    assert all(t.dtype == torch.bfloat16 and t.is_contiguous() for b in buckets for _, t in b)


def test_buckets_keep_integer_tensors_and_every_name_once():
    named = [("a", torch.arange(10)), ("b", torch.zeros(4, 4).t()), ("c", torch.ones(3))]
    buckets = list(iter_buckets(iter(named), bucket_bytes=1 << 20, dtype=torch.bfloat16))
    assert len(buckets) == 1
    got = dict(buckets[0])
    assert got["a"].dtype == torch.int64 and torch.equal(got["a"], torch.arange(10))
    assert got["b"].is_contiguous() and got["b"].dtype == torch.bfloat16


def test_cpu_engine_kwargs_carry_the_settings_sglang_needs_there():
    kw = engine_kwargs("/m", SGLangConfig(device="cpu", context_length=256, engine_kwargs={"tp_size": 1}), seed=3)
    assert kw == dict(model_path="/m", device="cpu", dtype="bfloat16", disable_radix_cache=True,
                      skip_server_warmup=True, random_seed=3, log_level="error", context_length=256,
                      attention_backend="torch_native", disable_cuda_graph=True, max_total_tokens=8192,
                      tp_size=1)


def test_gpu_engine_kwargs_use_mem_fraction_and_memory_saver():
    kw = engine_kwargs("/m", SGLangConfig(device="cuda", mem_fraction=0.3, max_total_tokens=4096))
    assert kw["mem_fraction_static"] == 0.3 and kw["enable_memory_saver"] is True
    assert kw["max_total_tokens"] == 4096 and "attention_backend" not in kw and "disable_cuda_graph" not in kw


def test_rollout_config_gives_the_protocol_sampling_params():
    cfg = RolloutConfig(temperature=0.7, top_k=20, stop_token_ids=[5, 6], seed=1)
    assert cfg.sampling() == SamplingParams(temperature=0.7, top_p=1.0, top_k=20, max_new_tokens=64,
                                            stop_token_ids=[5, 6], seed=1)
    assert RolloutConfig().sampling() == SamplingParams()
    from funrl.rollout import config

    assert config.SamplingParams is SamplingParams  # one class: the protocol re-exports the config's


@pytest.mark.parametrize("change, key", [
    (dict(engine="vllm"), "rollout.engine"),
    (dict(sglang=SGLangConfig(weight_sync="nccl")), "rollout.sglang.weight_sync"),
    (dict(bucket_mb=0), "rollout.bucket_mb"),
    (dict(sglang=SGLangConfig(mem_fraction=1.5)), "rollout.sglang.mem_fraction"),
    (dict(top_p=0.0), "top_p"),
])
def test_rollout_config_check_names_the_key(change, key):
    with pytest.raises(ValueError, match=key):
        RolloutConfig(**change).check()


class _RefusingSGLang:
    """Stands in for sglang.Engine (not importable in the main env) to drive the fallback path:
    it refuses tensor updates, as SGLang does for a load format it cannot take, and records calls."""

    def __init__(self):
        self.calls, self.disk_names = [], None

    def begin_weight_update(self):
        self.calls.append("begin")

    def end_weight_update(self):
        self.calls.append("end")

    def update_weights_from_tensor(self, bucket, flush_cache=True):
        self.calls.append("tensor")
        return False, "refused"

    def update_weights_from_disk(self, folder):
        from pathlib import Path

        from safetensors import safe_open

        self.calls.append("disk")
        names = []
        for shard in sorted(Path(folder).glob("*.safetensors")):
            with safe_open(str(shard), "pt") as f:
                names += list(f.keys())
        self.disk_names = (names, sorted(p.name for p in Path(folder).iterdir()))
        return True, "ok"

    def flush_cache(self):
        self.calls.append("flush")


def test_refused_first_bucket_falls_back_to_disk_with_every_tensor(tmp_path):
    from funrl.rollout.sglang_engine import SGLangEngine

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"old weights: never copied")
    eng = object.__new__(SGLangEngine)
    eng.cfg, eng.model_path, eng.dtype, eng.engine = SGLangConfig(), tmp_path, torch.bfloat16, _RefusingSGLang()
    eng.bucket_bytes = 100
    eng.update_weights([("a", torch.ones(40)), ("b", torch.ones(40)), ("c", torch.ones(40))])
    # 100-byte buckets of 80-byte tensors: three buckets; the first is refused, then all go to disk.
    assert eng.engine.calls == ["begin", "tensor", "end", "disk", "flush"]
    names, files = eng.engine.disk_names
    assert names == ["a", "b", "c"]
    assert "config.json" in files and "model.safetensors" not in files


def test_lora_sync_merges_in_the_rollout_actor_exactly_as_the_policy_exports(tmp_path):
    """SGLangEngine.update_adapter without SGLang (it cannot run in this env): the merge is this
    process's work, and only the push to SGLang (``update_weights``) is replaced by a recorder. The
    real-engine case is tests/rollout/test_sglang_engine.py (SGLang env)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from funrl.policy.weights import adapter_named_tensors, buckets, merged_named_tensors
    from funrl.rollout.sglang_engine import SGLangEngine

    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=32, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    Qwen3ForCausalLM(cfg).save_pretrained(tmp_path)  # the folder the engine loaded
    policy = get_peft_model(Qwen3ForCausalLM.from_pretrained(tmp_path, dtype=torch.float32),
                            LoraConfig(r=4, lora_alpha=12, target_modules=["q_proj", "down_proj"]))
    for n, p in policy.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p)  # a trained adapter (B starts at zero)
    hf = policy.get_base_model()
    eng = SGLangEngine.__new__(SGLangEngine)
    eng.model_path, pushed = tmp_path, {}
    eng.update_weights = lambda named: pushed.update((n, t.clone()) for n, t in named)
    for bucket in buckets(adapter_named_tensors(hf), 3000):  # parts of a layer split across calls
        eng.update_adapter(bucket)
    merged = dict(merged_named_tensors(hf))
    targets = {n for n in merged if n.endswith(("q_proj.weight", "down_proj.weight"))}
    assert set(pushed) == targets and len(targets) == 4  # only the target weights go to SGLang
    for n in targets:
        assert torch.equal(pushed[n], merged[n]), n  # the policy's merge, bit for bit
