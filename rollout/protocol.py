"""The rollout-engine protocol: what the driver asks of any engine (HF on CPU, SGLang).

An engine generates ``n`` samples for each prompt given as *prompt embeddings* (the audio LLM's
chat-template embeddings with the speech span already spliced in), returns token ids and the
log-probability of each sampled token, takes new weights from the policy, and can give its device
memory back between rollouts.

Ordering contract: samples are prompt-major. For prompts ``p0, p1`` and ``n=2`` the batch holds
``p0s0, p0s1, p1s0, p1s1``; ``prompt_index[i]`` says which prompt row ``i`` came from. This is the
group layout the GRPO advantage expects.

Log-prob contract: ``logprobs[i][t]`` is log π(token_t | prefix) under the engine's *sampling*
distribution at ``temperature`` (logits / temperature, before top-p / top-k truncation), the same
quantity the policy recomputes for the importance ratio. With temperature 0 (greedy) it is the
log-softmax of the raw logits. The completion includes the stop token when one ended it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol, runtime_checkable

import torch

from funrl.rollout.config import SamplingParams  # noqa: F401  (defined once, with the config section)


@dataclass
class RolloutBatch:
    token_ids: list[list[int]]  # [B*n] ragged completions, prompt-major
    logprobs: list[list[float]]  # [B*n] ragged, aligned with token_ids
    finish_reasons: list[str]  # [B*n] "stop" (a stop token ended it) or "length"
    prompt_index: list[int]  # [B*n] row -> prompt
    meta: dict = field(default_factory=dict)  # engine-specific timings / counters

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def num_tokens(self) -> int:
        return sum(len(t) for t in self.token_ids)

    @classmethod
    def concat(cls, batches: list["RolloutBatch"]) -> "RolloutBatch":
        """One batch from batches of consecutive prompt chunks: rows in order, each batch's
        ``prompt_index`` shifted past the prompts of the batches before it.

        >>> a = RolloutBatch([[1], [2]], [[-0.1], [-0.2]], ["stop", "length"], [0, 0])
        >>> RolloutBatch.concat([a, a]).prompt_index
        [0, 0, 1, 1]
        """
        out = cls([], [], [], [])
        for b in batches:
            shift = max(out.prompt_index) + 1 if out.prompt_index else 0
            out.token_ids += b.token_ids
            out.logprobs += b.logprobs
            out.finish_reasons += b.finish_reasons
            out.prompt_index += [p + shift for p in b.prompt_index]
        return out


@runtime_checkable
class RolloutEngine(Protocol):
    def generate(self, prompt_embeds: list[torch.Tensor], n: int, sampling: SamplingParams) -> RolloutBatch:
        """``prompt_embeds``: one ``[L_i, H]`` tensor per prompt (ragged)."""
        ...

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load full LLM tensors (all or some: the parameters that train), named as in the HF state dict."""
        ...

    def update_adapter(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Merge LoRA parts (``{module}.lora_A/lora_B/lora_scaling``) into the base weights the engine loaded."""
        ...

    def sleep(self) -> None:
        """Give device memory back (weights, KV cache) until :meth:`wake`."""
        ...

    def wake(self) -> None:
        ...
