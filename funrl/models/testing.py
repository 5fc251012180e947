"""A very small AudioLLM for unit tests (here and in other packages' tests): random weights, a
tokenizer trained on a handful of command sentences, every dimension 32.

>>> from funrl.models.testing import tiny_model
>>> model, tok = tiny_model()
>>> model.llm.config.hidden_size
32
"""

from __future__ import annotations

from functools import lru_cache

TEXTS = [
    "turn on the kitchen light", "call Ingrid tomorrow", "restart the PyTorch server",
    "打开 客厅 的 灯", "明天 给 王芳 打电话", "把 PyTorch 服务器 重启", "share this photo with Okafor",
]
SAMPLES = [  # prompt fields for three utterances: en with hotwords, zh, unknown language
    {"language": "en", "hotwords": ["Ingrid", "Okafor"]},
    {"language": "zh", "hotwords": []},
    {"language": None},
]


def tiny_config(**prompt):
    """A ModelConfig with 32-wide parts and no dropout; ``prompt`` sets PromptConfig fields."""
    from funrl.models.config import AdaptorConfig, EncoderConfig, LLMConfig, ModelConfig

    cfg = ModelConfig(
        encoder=EncoderConfig(d_model=32, num_layers=1, num_heads=2, ffn_dim=64, dropout=0.0),
        adaptor=AdaptorConfig(num_layers=1, num_heads=2, ffn_dim=64, dropout=0.0),
        llm=LLMConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=16, intermediate_size=64),
        vocab_size=120,
    )
    for k, v in prompt.items():
        setattr(cfg.prompt, k, v)
    return cfg


@lru_cache(maxsize=1)
def tiny_tokenizer():
    from funrl.models.prompt import template_strings
    from funrl.models.tokenizer import train_tokenizer

    return train_tokenizer(TEXTS * 3, 120, template_strings(tiny_config().prompt))


def tiny_model(seed: int = 0, **prompt):
    """``(AudioLLM in eval mode, tokenizer)``, weights drawn with ``torch.manual_seed(seed)``."""
    import torch

    from funrl.models.audio_llm import build_model

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    return build_model(tiny_config(**prompt), tok).eval(), tok


def random_batch(b: int = 3, t: int = 120, seed: int = 0):
    """Random fbank-shaped features ``[b, t, 80]`` and lengths ``t, t-25, t-50, ...``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, t, 80, generator=g)
    lengths = torch.tensor([t - 25 * i for i in range(b)])
    return feats, lengths
