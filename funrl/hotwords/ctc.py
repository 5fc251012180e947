"""Greedy CTC decoding, batched: the first pass whose hypothesis hotword retrieval searches.

Per frame the most likely label, then repeats merged and blanks dropped (Graves et al. 2006's
best-path decoding). On the encoder's CTC head this costs one argmax over ``[B, T, V]``: next to
the LLM it is free, which is why the report runs retrieval on it.
"""

from __future__ import annotations

import torch


def ctc_greedy_decode(logits: torch.Tensor, lengths: torch.Tensor | None = None, blank: int = 0) -> list[list[int]]:
    """``logits`` ``[B, T, V]`` (or log-probs), ``lengths`` ``[B]`` valid frames (default: all T);
    the label ids of each utterance's best path, repeats merged and blanks removed.

    >>> x = torch.tensor([[[0., 1, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]])
    >>> ctc_greedy_decode(x)
    [[1, 1, 2]]
    """
    best = logits.argmax(-1)  # [B, T]
    B, T = best.shape
    valid = torch.ones_like(best, dtype=torch.bool) if lengths is None else (
        torch.arange(T, device=best.device)[None, :] < lengths.to(best.device)[:, None])
    new = torch.ones_like(valid)
    new[:, 1:] = best[:, 1:] != best[:, :-1]  # the first frame of each run
    keep = valid & new & (best != blank)
    return [best[b][keep[b]].tolist() for b in range(B)]
