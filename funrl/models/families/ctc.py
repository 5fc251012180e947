"""A CTC head beside a transformers family folder: ``ctc.safetensors`` + ``ctc.json``.

The transformers port of Fun-ASR-Nano has no CTC decoder (the FunASR original has one, trained in
its last stage, report §4.2.2). funrl's head is one linear layer from the audio encoder output
(``get_audio_features(...).last_hidden_state``, before the projector, one frame per 60 ms) to the
tokenizer's vocabulary plus a blank, the last class. It lives beside the family's own weights, so
the folder still loads with ``from_pretrained`` (which ignores the two files); funrl loads it when
present (:func:`load_ctc_head`). Where we depart from FunASR: its CTC decoder is a small
transformer over the encoder output, ours a single linear layer (enough for the tiny warm start and
for hotword retrieval's frame posteriors).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

CTC_WEIGHTS = "ctc.safetensors"
CTC_CONFIG = "ctc.json"


class CtcHead(nn.Module):
    """``Linear(input_size, vocab_size + 1)``; blank is class ``vocab_size``."""

    def __init__(self, input_size: int, vocab_size: int):
        super().__init__()
        self.input_size, self.vocab_size = int(input_size), int(vocab_size)
        self.proj = nn.Linear(self.input_size, self.vocab_size + 1)

    @property
    def blank(self) -> int:
        return self.vocab_size

    def forward(self, enc: torch.Tensor) -> torch.Tensor:
        """``enc [B, T, D]`` -> log-probs ``[B, T, V + 1]`` (fp32)."""
        return torch.log_softmax(self.proj(enc).float(), dim=-1)

    def save(self, folder: str | Path, dtype: torch.dtype | None = None) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        sd = {k: v.detach().to(dtype or v.dtype).contiguous().cpu() for k, v in self.proj.state_dict().items()}
        save_file(sd, str(folder / CTC_WEIGHTS))
        meta = {"input_size": self.input_size, "vocab_size": self.vocab_size, "blank": self.blank,
                "input": "audio encoder output (get_audio_features(...).last_hidden_state)"}
        (folder / CTC_CONFIG).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_ctc_head(folder: str | Path) -> CtcHead | None:
    """The head saved in ``folder`` (fp32), or None when the folder has none."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CTC_CONFIG).is_file():
        return None
    meta = json.loads((folder / CTC_CONFIG).read_text(encoding="utf-8"))
    head = CtcHead(meta["input_size"], meta["vocab_size"])
    head.proj.load_state_dict({k: v.float() for k, v in load_file(str(folder / CTC_WEIGHTS)).items()})
    return head


def greedy_decode(logp: torch.Tensor, length: int | None = None, blank: int | None = None) -> list[int]:
    """Best path of ``logp [T, V+1]`` over its first ``length`` frames: argmax per frame, repeats
    collapsed, blanks (default: the last class) dropped."""
    blank = logp.shape[-1] - 1 if blank is None else blank
    best = logp[: length if length is not None else logp.shape[0]].argmax(-1).tolist()
    out, prev = [], None
    for t in best:
        if t != prev and t != blank:
            out.append(int(t))
        prev = t
    return out
