"""A tiny corpus and a tiny random audio LLM shared by the training tests (built once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from funrl.train.cluster import ray_safe_env


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    from funrl.data.synth.corpus import synthesize_corpus

    out = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(out, 16, seed=0, languages=("en",), noise_frac=0.125, split_ratios=(0.5, 0.25, 0.25),
                      disjoint_text=False)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_corpus) -> Path:
    """A random-weight model with the real architecture, small enough for 2 CPU cores."""
    import torch

    from funrl.data.manifest import load_manifest
    from funrl.models.audio_llm import build_model
    from funrl.models.config import AdaptorConfig, EncoderConfig, LLMConfig, ModelConfig
    from funrl.models.io import save_pretrained
    from funrl.models.prompt import template_strings
    from funrl.models.tokenizer import train_tokenizer

    torch.manual_seed(0)
    cfg = ModelConfig(
        encoder=EncoderConfig(d_model=32, num_layers=1, num_heads=2, ffn_dim=64),
        adaptor=AdaptorConfig(num_layers=1, num_heads=2, ffn_dim=64),
        llm=LLMConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=16, intermediate_size=64),
    )
    texts = [u.text for u in load_manifest(tiny_corpus / "manifest.jsonl")]
    tok = train_tokenizer(texts, 200, template_strings(cfg.prompt))
    model = build_model(cfg, tok)
    out = tmp_path_factory.mktemp("model") / "tiny"
    save_pretrained(model, tok, out)
    return out


@pytest.fixture
def ray_env(tmp_path):
    ray_safe_env()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
