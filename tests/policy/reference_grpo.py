"""Slow, obvious GRPO reference: Python loops over groups, sequences and tokens.

Written from the equations (report Eq. 1–3, the option definitions in ``funrl.policy.loss``), not
from the vectorised code. Scalars are 0-dim float64 torch tensors so autograd runs through the
loops and the gradients can be compared too. Keep inputs tiny: this is O(B·T) Python.
"""

from __future__ import annotations

import math
from typing import Optional

import torch


def advantages(rewards: list[float], groups: list[int], std_mode: str, eps: float) -> list[float]:
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    n = len(rewards)
    batch_mean = sum(rewards) / n
    batch_std = math.sqrt(sum((r - batch_mean) ** 2 for r in rewards) / (n - 1)) if n > 1 else 0.0
    out = [0.0] * n
    for rows in members.values():
        vals = [rewards[i] for i in rows]
        if len(rows) == 1 or max(vals) == min(vals):
            continue  # singleton or zero-variance group: advantage 0
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))  # unbiased
        for i in rows:
            if std_mode == "group":
                out[i] = (rewards[i] - mean) / (std + eps)
            elif std_mode == "batch":
                out[i] = (rewards[i] - mean) / (batch_std + eps)
            else:
                out[i] = rewards[i] - mean
    return out


def token_logprob(logits_row: list[float], label: int, temperature: float) -> float:
    t = temperature if temperature > 0 else 1.0
    xs = [x / t for x in logits_row]
    m = max(xs)
    lse = m + math.log(sum(math.exp(x - m) for x in xs))
    return xs[label] - lse


def entropy(logits_row: list[float], temperature: float) -> float:
    t = temperature if temperature > 0 else 1.0
    xs = [x / t for x in logits_row]
    m = max(xs)
    z = sum(math.exp(x - m) for x in xs)
    ps = [math.exp(x - m) / z for x in xs]
    return -sum(p * math.log(p) for p in ps if p > 0)


def _kl(lp: torch.Tensor, rlp: float, estimator: str) -> torch.Tensor:
    d = rlp - lp  # log π_ref - log π_θ
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * d * d
    d = torch.clamp(d, -20.0, 20.0)
    return torch.clamp(torch.exp(d) - d - 1, -10.0, 10.0)


def loss(
    logp: torch.Tensor,  # [B, T] with grad
    old_logp: torch.Tensor,
    ref_logp: Optional[torch.Tensor],
    adv: list[float],
    mask: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    dual_clip: Optional[float],
    ratio_level: str,
    log_clamp: float,
    kl_coef: float,
    kl_estimator: str,
    agg: str,
    num_tokens: float,
    num_seqs: float,
    norm_length: Optional[int],
) -> torch.Tensor:
    """One sequence at a time, one token at a time; the share of the step loss for these rows."""
    total = torch.zeros((), dtype=torch.float64)
    B, T = mask.shape
    for i in range(B):
        toks = [t for t in range(T) if bool(mask[i, t])]
        if not toks:
            continue
        seq_log_s = sum(float(logp[i, t].detach() - old_logp[i, t]) for t in toks) / len(toks)
        seq_sum = torch.zeros((), dtype=torch.float64)
        for t in toks:
            if ratio_level == "sequence":
                # value exp(mean log r), gradient ratio * d log π_t (stop-gradient form)
                log_r = logp[i, t] - float(logp[i, t].detach()) + seq_log_s
            else:
                log_r = logp[i, t] - float(old_logp[i, t])
            r = torch.exp(torch.clamp(log_r, -log_clamp, log_clamp))
            a = adv[i]
            r_clip = torch.clamp(r, 1 - clip_low, 1 + clip_high)
            tok = torch.maximum(-a * r, -a * r_clip)
            if dual_clip is not None and a < 0:
                tok = torch.minimum(tok, torch.tensor(-a * dual_clip, dtype=torch.float64))
            if kl_coef > 0:
                tok = tok + kl_coef * _kl(logp[i, t], float(ref_logp[i, t].detach()), kl_estimator)
            seq_sum = seq_sum + tok
        if agg == "token-mean":
            total = total + seq_sum / num_tokens
        elif agg == "seq-mean-token-mean":
            total = total + seq_sum / len(toks) / num_seqs
        else:
            total = total + seq_sum / (num_seqs * norm_length)
    return total
