"""A lean KV-cached forward for Qwen3 / Qwen2 / Llama decoders, for sampling on CPU.

Why: at rollout sizes on CPU, a transformers forward per decoded token spends most of its time
outside the matrix products (mask building, cache objects, module dispatch); for the demo's
2-layer Qwen3 the arithmetic is the smaller part of a step. This module runs the same
modules' own pieces (``q_proj``, ``q_norm``, the rotary module, ``apply_rotary_pos_emb``, the
MLP, the norms, the LM head) in a straight loop over a preallocated KV cache, and nothing else, so
the numbers are the model's own; what it owns is the wiring: cache writes, the boolean attention
mask (left padding + causal) and grouped-query SDPA. :func:`funrl.rollout.generation.generate`
uses it when :func:`unsupported` returns None and falls back to the transformers forward
otherwise; a test checks both give the same tokens and log-probs.

Prompt sharing: :meth:`KVDecoder.prefill` runs each prompt once and :meth:`KVDecoder.expand`
repeats its cache for the ``n`` samples (SGLang's radix cache does the same on a GPU).
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F

_SUPPORTED = {"Qwen3ForCausalLM": "qwen3", "Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama"}


def unsupported(llm) -> str | None:
    """Why :class:`KVDecoder` cannot run ``llm`` (None when it can)."""
    name = type(llm).__name__
    if name not in _SUPPORTED:
        return f"{name} is not one of {sorted(_SUPPORTED)}"
    cfg = llm.config
    if getattr(cfg, "use_sliding_window", False) or "sliding_attention" in (getattr(cfg, "layer_types", None) or ()):
        return "sliding-window attention"
    if getattr(cfg, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        return f"attention implementation {cfg._attn_implementation!r}"
    if llm.training:
        return "the model is in training mode (dropout)"
    return None


class KVDecoder:
    """Prefill prompts, repeat their caches, then decode a token per row per :meth:`step`."""

    def __init__(self, llm, capacity: int):
        reason = unsupported(llm)
        if reason:
            raise ValueError(f"KVDecoder cannot run this model: {reason}")
        self.llm, self.capacity = llm, capacity
        self.body = llm.model
        self.layers = list(self.body.layers)
        modeling = importlib.import_module(f"transformers.models.{_SUPPORTED[type(llm).__name__]}.modeling_{_SUPPORTED[type(llm).__name__]}")
        self.rope = modeling.apply_rotary_pos_emb
        attn = self.layers[0].self_attn
        self.head_dim, self.scaling = attn.head_dim, attn.scaling
        self.kv_heads = llm.config.num_key_value_heads
        self.keys: list[torch.Tensor] = []  # per layer [N, kv_heads, capacity, D]
        self.values: list[torch.Tensor] = []
        self.valid: torch.Tensor | None = None  # [N, capacity] bool: key slot holds a real token
        self.length = 0  # slots filled
        self._bias: torch.Tensor | None = None  # [N, capacity] additive mask of the decode steps

    @torch.inference_mode()
    def prefill(self, inputs: torch.Tensor, valid: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """``inputs [P, L, H]`` left-padded (``valid [P, L]`` bool), ``position_ids [P, L]`` →
        last-position logits ``[P, V]`` (float32)."""
        rows, length, _ = inputs.shape
        if length > self.capacity:
            raise ValueError(f"prompt of {length} positions exceeds the cache capacity {self.capacity}")
        kw = dict(dtype=inputs.dtype, device=inputs.device)
        self.keys = [torch.zeros(rows, self.kv_heads, self.capacity, self.head_dim, **kw) for _ in self.layers]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.valid = torch.zeros(rows, self.capacity, dtype=torch.bool, device=inputs.device)
        self.valid[:, :length] = valid
        self.length, self._bias = 0, None
        causal = torch.ones(length, length, dtype=torch.bool, device=inputs.device).tril()
        mask = causal & valid[:, None, :]  # [P, L, L]
        mask |= torch.eye(length, dtype=torch.bool, device=inputs.device) & ~valid[:, :, None]  # padding sees itself
        return self._forward(inputs, position_ids, mask[:, None])[:, -1]

    def expand(self, n: int) -> None:
        """Repeat every row's cache ``n`` times (row-major: ``p0, p0, ..., p1, ...``)."""
        self.keys = [k.repeat_interleave(n, dim=0) for k in self.keys]
        self.values = [v.repeat_interleave(n, dim=0) for v in self.values]
        self.valid = self.valid.repeat_interleave(n, dim=0)

    @torch.inference_mode()
    def step(self, inputs: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """One new position per row: ``inputs [N, 1, H]``, ``position_ids [N, 1]`` → logits ``[N, V]``."""
        if self.length >= self.capacity:
            raise ValueError(f"KV cache full ({self.capacity} positions)")
        if self._bias is None or self._bias.shape[0] != inputs.shape[0]:
            # decoded slots are always valid, so the additive mask (0 / -inf) is fixed once the prompts are in
            self.valid[:, self.length :] = True
            self._bias = torch.zeros(self.valid.shape, dtype=inputs.dtype, device=inputs.device)
            self._bias.masked_fill_(~self.valid, float("-inf"))
        return self._forward(inputs, position_ids, self._bias[:, None, None, : self.length + 1])[:, -1]

    def _forward(self, x: torch.Tensor, position_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        rows, q_len, _ = x.shape
        start, end = self.length, self.length + q_len
        cos, sin = self.body.rotary_emb(x, position_ids)
        for layer, k_cache, v_cache in zip(self.layers, self.keys, self.values):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            shape = (rows, q_len, -1, self.head_dim)
            q, k, v = attn.q_proj(h).view(shape), attn.k_proj(h).view(shape), attn.v_proj(h).view(shape)
            if getattr(attn, "q_norm", None) is not None:  # Qwen3: RMSNorm per head
                q, k = attn.q_norm(q), attn.k_norm(k)
            q, k = self.rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)  # [N, heads, q, D]
            k_cache[:, :, start:end] = k
            v_cache[:, :, start:end] = v.transpose(1, 2)
            if q_len == 1:
                out = self._decode_attention(q, k_cache[:, :, :end], v_cache[:, :, :end], mask)
            else:
                out = F.scaled_dot_product_attention(
                    q, k_cache[:, :, :end], v_cache[:, :, :end], attn_mask=mask, scale=self.scaling, enable_gqa=True,
                )  # [N, heads, q, D]
            x = x + attn.o_proj(out.transpose(1, 2).reshape(rows, q_len, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        self.length = end
        return self.llm.lm_head(self.body.norm(x[:, -1:])).float()  # [N, 1, V]

    def _decode_attention(self, q, k, v, bias):
        """One query per row: ``q [N, heads, 1, D]``, ``k, v [N, kv_heads, K, D]``, additive ``bias
        [N, 1, 1, K]``. Two batched matmuls with the query heads grouped onto their shared KV head:
        on CPU faster than SDPA's flash kernel, which is built for many queries."""
        rows, heads, _, dim = q.shape
        qg = q.view(rows, self.kv_heads, heads // self.kv_heads, dim)  # [N, kv, g, D]
        scores = torch.matmul(qg, k.transpose(-1, -2)).mul_(self.scaling).add_(bias)  # [N, kv, g, K]
        return torch.matmul(torch.softmax(scores, dim=-1), v).view(rows, heads, 1, dim)
