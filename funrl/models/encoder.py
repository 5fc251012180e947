"""Audio encoder: convolutional x4 subsampling (two stride-2 1-D convolutions) + transformer over fbank.

Input ``[B, T, n_mels]`` fbank at 100 frames/s, output ``[B, T', d_model]`` at 25 frames/s. A global
mean/variance normalisation of the features (like FunASR's ``am.mvn``) is kept as buffers so it
travels with the weights; ``funrl sft`` sets it from the training corpus.

The report's encoder (Fun-ASR-Nano: SenseVoice, 0.2B) is a much larger transformer pre-trained with
Best-RQ and AED; the tiny instance here is trained from scratch in the SFT warm start. Other
encoder families plug in through :func:`build_encoder`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from funrl.models.config import EncoderConfig


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames left after two kernel-3 stride-2 convolutions without padding."""
    for _ in range(2):
        lengths = torch.div(lengths - 3, 2, rounding_mode="floor") + 1
    return lengths.clamp(min=0)


def sinusoids(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    inv = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * inv)
    pe[:, 1::2] = torch.cos(pos * inv)
    return pe  # [length, dim]


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """True at padded positions: ``[B, max_len]``."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


class ConvTransformerEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.register_buffer("feat_mean", torch.zeros(cfg.num_mel_bins))
        self.register_buffer("feat_std", torch.ones(cfg.num_mel_bins))
        # two stride-2 convolutions over time (the mel bins are channels, as in Whisper's front end):
        # a 2-D conv stack (ESPnet's Conv2dSubsampling) costs ~10x more compute for the tiny model
        self.conv = nn.Sequential(
            nn.Conv1d(cfg.num_mel_bins, d, 3, stride=2), nn.GELU(), nn.Conv1d(d, d, 3, stride=2), nn.GELU()
        )
        self.proj = nn.Linear(d, d)
        layer = nn.TransformerEncoderLayer(
            d, cfg.num_heads, cfg.ffn_dim, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.output_dim = d

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``feats [B, T, F]``, ``lengths [B]`` -> ``(hidden [B, T', d], lengths' [B])``."""
        x = (feats.float() - self.feat_mean.float()) / self.feat_std.float()  # [B, T, F]
        x = x.to(self.proj.weight.dtype)
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)  # [B, T', d]
        t, c = x.shape[1], x.shape[2]
        x = self.proj(x) + sinusoids(t, c).to(x.dtype).to(x.device)  # [B, T', d]
        out_len = subsampled_lengths(lengths).clamp(min=1, max=t)
        x = self.layers(x, src_key_padding_mask=padding_mask(out_len, t))
        return self.norm(x), out_len


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    """The encoder named by ``cfg.type``; each returns ``(hidden, lengths)`` and has ``output_dim``."""
    if cfg.type == "conv_transformer":
        return ConvTransformerEncoder(cfg)
    raise ValueError(
        f"model.encoder.type: unknown encoder type {cfg.type!r}; this version builds 'conv_transformer' "
        "(add further encoder families in funrl/models/encoder.py:build_encoder)"
    )
