"""The HF rollout engine: a transformers causal LM sampled by :func:`funrl.models.generation.generate`.

It serves on CPU (the embedded default, the tests) and on a single GPU where SGLang is not
installed. It holds only the LLM part of the audio model (the ``llm/`` subfolder of a model
folder), like the SGLang engine: prompts arrive as embeddings with the speech already spliced in.

Sleep and wake on CPU: there is no device memory to hand back, so ``sleep`` frees what can be
freed — the module and its caches — and keeps the weights of record (the last pushed state
dict, or the folder it was loaded from) in host memory; ``wake`` rebuilds the module from them.
On a GPU ``sleep`` moves the weights to host memory and empties the CUDA cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from funrl.rollout.protocol import RolloutBatch, SamplingParams


class HFEngine:
    def __init__(self, llm_path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
        from transformers import AutoConfig

        self.path = Path(llm_path)
        self.device = torch.device(device)
        self.dtype = dtype
        self.config = AutoConfig.from_pretrained(self.path)
        self.state: dict[str, torch.Tensor] | None = None  # weights of record once a sync happened
        self.model = None
        self.wake()

    # ------------------------------------------------------------------ protocol

    def generate(self, prompt_embeds: list[torch.Tensor], n: int, sampling: SamplingParams) -> RolloutBatch:
        from funrl.models.generation import generate

        if self.model is None:
            raise RuntimeError("HFEngine.generate called while asleep: call wake() first")
        embeds = [e.to(self.device, self.dtype) for e in prompt_embeds]
        return generate(self.model, embeds, n, sampling)

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy weights in (a bucket at a time is fine); names as in the HF state dict."""
        if self.state is None:
            self.state = _weights(self._module())
        unknown = []
        for name, t in named_tensors:
            name = self._alias.get(name, name)
            if name not in self.state:
                unknown.append(name)
                continue
            if tuple(t.shape) != tuple(self.state[name].shape):
                raise ValueError(f"update_weights: {name} has shape {tuple(t.shape)}, the engine's is {tuple(self.state[name].shape)}")
            self.state[name].copy_(t.detach().to("cpu"))
            if self.model is not None:
                self._params[name].data.copy_(t.detach())
        if unknown:
            raise KeyError(f"update_weights: names the engine's model does not have: {unknown[:5]}")

    def sleep(self) -> None:
        if self.model is None:
            return
        if self.state is None:  # keep the weights of record before dropping the module
            self.state = _weights(self.model)
        # Drop every reference to the module's parameters; reference counting frees them at once
        # (a transformers model holds no cycles), so no gc.collect(): that costs ~0.3 s per call in
        # a process that imports ray and transformers (measured by bench/overhead.py).
        self.model = None
        self._params = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def wake(self) -> None:
        if self.model is not None:
            return
        self.model = self._module()
        self._params = dict(self.model.named_parameters())  # tied weights appear once
        canon = {id(p): k for k, p in self._params.items()}
        self._alias = {k: canon[id(p)] for k, p in self.model.state_dict(keep_vars=True).items() if id(p) in canon}
        if self.state is not None:
            with torch.no_grad():
                for name, t in self.state.items():
                    self._params[name].copy_(t)

    # ------------------------------------------------------------------ helpers

    def _module(self):
        if self.model is not None:
            return self.model
        from transformers import AutoModelForCausalLM

        if self.state is not None:  # the weights of record are in memory: build, then wake() copies them in
            return AutoModelForCausalLM.from_config(self.config, dtype=self.dtype).to(self.device).eval()
        m = AutoModelForCausalLM.from_pretrained(self.path, dtype=self.dtype)
        return m.to(self.device).eval()

    def logits(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Full-forward logits ``[B, L, V]`` (tests compare engines with this)."""
        with torch.inference_mode():
            return self.model(inputs_embeds=inputs_embeds.to(self.device, self.dtype)).logits.float()


def _weights(model) -> dict[str, torch.Tensor]:
    """A host copy of the parameters, each shared (tied) tensor once under its first name."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.named_parameters()}
