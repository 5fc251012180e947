"""The SFT loss: cross-entropy on the assistant target plus ``ctc_weight`` x CTC on the encoder.

``loss = CE + ctc_weight * CTC`` (report §4.2.2 trains the CTC decoder in a separate last stage
with the encoder frozen; funrl trains it jointly from the start, which costs nothing for the tiny
model and gives the encoder a direct alignment signal early, the usual hybrid CTC/attention
recipe). CE is the mean over target tokens (transcript + ``<|im_end|>``) of -log p, computed
with :func:`funrl.policy.teacher_forcing.completion_logprobs`, the same function the GRPO policy uses.
CTC targets are the transcript's BPE ids (no ``<|im_end|>``); blank is the last class; the loss
is summed per utterance and averaged over the batch, with impossible alignments zeroed.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from funrl.models.prompt import build_prompt_embeds
from funrl.policy.teacher_forcing import completion_logprobs


def sft_loss(model, tokenizer, feats: torch.Tensor, lengths: torch.Tensor, samples: Sequence[Any],
             texts: Sequence[str], ctc_weight: float = 0.3) -> tuple[torch.Tensor, dict]:
    """``feats [B, T, F]``, ``lengths [B]`` -> ``(loss, metrics)`` with metrics detached floats."""
    enc, enc_len, speech, speech_len = model.forward_audio(feats, lengths)
    prompts = build_prompt_embeds(model, tokenizer, (speech, speech_len), samples, targets=texts)
    rows = range(len(prompts.embeds))
    lp, _, mask = completion_logprobs(model.llm, prompts.embeds, rows, prompts.target_ids, shared=False)  # [B, C]
    ce = -(lp * mask).sum() / mask.sum()
    metrics = {"ce": float(ce.detach()), "tokens": int(mask.sum())}
    loss = ce
    if ctc_weight > 0 and model.ctc_head is not None:
        tgt = [ids[:-1] for ids in prompts.target_ids]  # drop <|im_end|>
        flat = torch.tensor([t for ids in tgt for t in ids], dtype=torch.long)
        tlen = torch.tensor([len(ids) for ids in tgt], dtype=torch.long)
        logp = model.ctc_logprobs(enc).transpose(0, 1)  # [T', B, V+1]
        ctc = F.ctc_loss(logp, flat, enc_len, tlen, blank=model.ctc_blank, reduction="sum", zero_infinity=True)
        ctc = ctc / feats.shape[0]
        loss = ce + ctc_weight * ctc
        metrics["ctc"] = float(ctc.detach())
    metrics["loss"] = float(loss.detach())
    return loss, metrics
