"""Audio adaptor (report §4.2): frame stacking (downsampling) + a shallow transformer.

``downsample`` consecutive encoder frames are concatenated and projected to the LLM's hidden size
(Fun-ASR-Nano's adaptor does the same with k=2 before its 2 transformer blocks), then 2 transformer
layers map the result into the LLM's input-embedding space. A trailing partial group is zero-padded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from funrl.models.config import AdaptorConfig
from funrl.models.encoder import padding_mask


class Adaptor(nn.Module):
    def __init__(self, cfg: AdaptorConfig, in_dim: int, out_dim: int):
        super().__init__()
        self.k = cfg.downsample
        self.proj = nn.Sequential(nn.Linear(in_dim * self.k, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        layer = nn.TransformerEncoderLayer(
            out_dim, cfg.num_heads, cfg.ffn_dim, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, D_enc]`` -> ``([B, ceil(T/k), D_llm], lengths [B])``."""
        b, t, d = x.shape
        x = x.masked_fill(padding_mask(lengths, t)[..., None], 0.0)
        pad = (-t) % self.k
        x = F.pad(x, (0, 0, 0, pad))  # [B, T+pad, D]
        x = x.reshape(b, (t + pad) // self.k, d * self.k)  # [B, T/k, k*D]
        out_len = torch.div(lengths + self.k - 1, self.k, rounding_mode="floor")
        x = self.proj(x)
        x = self.layers(x, src_key_padding_mask=padding_mask(out_len, x.shape[1]))
        return self.norm(x), out_len
