"""The CTC head's two uses around hotword RAG, batched: greedy decoding (the first pass whose
hypothesis retrieval searches) and scoring a transcript against the audio (the check that keeps
or rejects the transcript decoded with context).

Greedy: per frame the most likely label, then repeats merged and blanks dropped (Graves et al.
2006's best-path decoding). On the encoder's CTC head this costs one argmax over ``[B, T, V]``:
next to the LLM it is free, which is why the report runs retrieval on it. Scoring: the CTC
negative log-likelihood -log p(y | audio), summed over every alignment (torch's ``ctc_loss``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


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


def ctc_nll(log_probs: torch.Tensor, lengths: torch.Tensor, targets: Sequence[Sequence[int]], blank: int) -> torch.Tensor:
    """``log_probs`` ``[B, T, V]`` (log-softmax over labels), ``lengths`` ``[B]`` valid frames,
    ``targets`` B label sequences (no blanks): ``[B]`` -log p(target | audio) in nats, each summed
    over all of its CTC alignments; ``inf`` where the target cannot fit in its frames."""
    flat = torch.tensor([t for ids in targets for t in ids], dtype=torch.long, device=log_probs.device)
    tlen = torch.tensor([len(ids) for ids in targets], dtype=torch.long)
    return F.ctc_loss(log_probs.float().transpose(0, 1), flat, lengths.cpu().long(), tlen, blank=blank,
                      reduction="none", zero_infinity=False)
