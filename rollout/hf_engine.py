"""The HF rollout engine: a transformers causal LM sampled by :func:`funrl.rollout.generation.generate`.

It serves on CPU (the embedded default, the tests) and on a single GPU where SGLang is not
installed. It holds only the LLM part of the audio model (the ``llm/`` subfolder of a model
folder), like the SGLang engine: prompts arrive as embeddings with the speech already spliced in.

Sleep and wake: the module's parameters are the only copy of the weights (pushed weights are
copied into them). On a GPU ``sleep`` moves them to host memory and empties the CUDA cache, and
``wake`` brings them back. On CPU there is no device memory to hand back, so both only flip the
asleep flag (``generate`` refuses to run while asleep, which keeps the device-ownership
discipline visible); an earlier version dropped the module on CPU and rebuilt it on wake, which
cost 0.08 s a step for nothing (``bench/vs_trl.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from funrl.rollout.protocol import RolloutBatch, SamplingParams


class HFEngine:
    def __init__(self, llm_path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
        from transformers import AutoModelForCausalLM

        self.path = Path(llm_path)
        self.device = torch.device(device)
        self.dtype = dtype
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype).to(self.device).eval()
        self.config = self.model.config
        self._params = dict(self.model.named_parameters())  # tied weights appear once
        canon = {id(p): k for k, p in self._params.items()}
        self._alias = {k: canon[id(p)] for k, p in self.model.state_dict(keep_vars=True).items() if id(p) in canon}
        self.asleep = False

    # ------------------------------------------------------------------ protocol

    def generate(self, prompt_embeds: list[torch.Tensor], n: int, sampling: SamplingParams) -> RolloutBatch:
        from funrl.rollout.generation import generate

        if self.asleep:
            raise RuntimeError("HFEngine.generate called while asleep: call wake() first")
        embeds = [e.to(self.device, self.dtype) for e in prompt_embeds]
        return generate(self.model, embeds, n, sampling)

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy weights in (a bucket at a time is fine; asleep or awake); names as in the HF state dict."""
        unknown = []
        with torch.no_grad():
            for name, t in named_tensors:
                name = self._alias.get(name, name)
                if name not in self._params:
                    unknown.append(name)
                    continue
                param = self._params[name]
                if tuple(t.shape) != tuple(param.shape):
                    raise ValueError(f"update_weights: {name} has shape {tuple(t.shape)}, the engine's is {tuple(param.shape)}")
                param.copy_(t.detach())
        if unknown:
            raise KeyError(f"update_weights: names the engine's model does not have: {unknown[:5]}")

    def sleep(self) -> None:
        if self.asleep:
            return
        if self.device.type == "cuda":
            self.model.to("cpu")
            torch.cuda.empty_cache()
        self.asleep = True

    def wake(self) -> None:
        if not self.asleep:
            return
        if self.device.type == "cuda":
            self.model.to(self.device)
        self.asleep = False

    def logits(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Full-forward logits ``[B, L, V]`` (tests compare engines with this)."""
        with torch.inference_mode():
            return self.model(inputs_embeds=inputs_embeds.to(self.device, self.dtype)).logits.float()
