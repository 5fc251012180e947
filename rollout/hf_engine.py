"""The HF rollout engine: a transformers causal LM sampled by :func:`funrl.rollout.generation.generate`.

It serves on CPU (the embedded default, the tests) and on a single GPU where SGLang is not
installed. It holds only the LLM part of the audio model (the ``llm/`` subfolder of a model
folder), like the SGLang engine: prompts arrive as embeddings with the speech already spliced in.

Sleep and wake: the module's parameters are the only copy of the weights (pushed weights are
copied into them). On a GPU ``sleep`` moves them to host memory and empties the CUDA cache, and
``wake`` brings them back. On CPU there is no device memory to hand back, so both only flip the
asleep flag (``generate`` refuses to run while asleep, which keeps the device-ownership
discipline visible); an earlier version dropped the module on CPU and rebuilt it on wake, which
cost time every step for nothing (measured by ``bench/vs_trl.py``).

Weight sync: :meth:`HFEngine.update_weights` copies full tensors into the preallocated
parameters (full fine-tuning sends only the parameters that train). Under LoRA,
:meth:`HFEngine.update_adapter` takes only the adapter (``{prefix}lora_A``, ``lora_B``,
``lora_scaling`` per linear, see :func:`funrl.policy.weights.adapter_named_tensors`) and sets
``weight = W0 + scaling * (B @ A)`` in place, where ``W0`` is a copy of the base weight taken the
first time that layer's adapter arrives (the weights the engine loaded, which are the policy's
frozen base). That is the policy's merge formula in its order and dtype, so the engine holds the
same weights the full merged sync gave (bit for bit on CPU in float32) and keeps decoding plain
``nn.Linear`` layers (no LoRA kernels in the decode loop). ``W0`` costs one more copy of the target
weights; it lives on the engine's device and moves with the model on sleep/wake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from funrl.rollout.lora_merge import AdapterParts, lora_delta
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
        self._base: dict[str, torch.Tensor] = {}  # W0 per LoRA target ("model.layers.0.self_attn.q_proj.")
        self._adapter = AdapterParts()  # adapter parts split across buckets

    # ------------------------------------------------------------------ protocol

    def generate(self, prompt_embeds: list[torch.Tensor], n: int, sampling: SamplingParams) -> RolloutBatch:
        from funrl.rollout.generation import generate

        if self.asleep:
            raise RuntimeError("HFEngine.generate called while asleep: call wake() first")
        embeds = [e.to(self.device, self.dtype) for e in prompt_embeds]
        return generate(self.model, embeds, n, sampling)

    def generate_groups(self, prompt_embeds: list[torch.Tensor], n: int, sampling: SamplingParams):
        """:meth:`generate` as :class:`funrl.rollout.generation.GroupsDone` hand-backs, each prompt's
        group as soon as its ``n`` samples have ended (one decode; ``rollout.reward_overlap_groups``)."""
        from funrl.rollout.generation import iter_generate

        if self.asleep:
            raise RuntimeError("HFEngine.generate_groups called while asleep: call wake() first")
        embeds = [e.to(self.device, self.dtype) for e in prompt_embeds]
        yield from iter_generate(self.model, embeds, n, sampling)

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

    def update_adapter(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Merge LoRA adapters into the base the engine loaded: ``weight = W0 + scaling * (B @ A)``.

        Names: ``{module}.lora_A`` ``[r, in]``, ``{module}.lora_B`` ``[out, r]``,
        ``{module}.lora_scaling`` (0-dim); a layer's three parts may come in different calls.
        """
        with torch.no_grad():
            for prefix, parts in self._adapter.add(named_tensors):
                key = f"{prefix}.weight"
                param = self._params.get(self._alias.get(key, key))
                if param is None:
                    raise KeyError(f"update_adapter: the engine's model has no linear weight {key}")
                w0 = self._base.get(prefix)
                if w0 is None:
                    w0 = self._base[prefix] = param.detach().clone()
                delta = lora_delta(parts, tuple(param.shape), self.device)  # [out, in]
                if delta.dtype == param.dtype:
                    torch.add(w0, delta, out=param.data)
                else:  # merged in the adapter's dtype (the policy's float32), then cast, as a merged push
                    param.copy_(w0.to(delta.dtype) + delta)

    def sleep(self) -> None:
        if self.asleep:
            return
        if self.device.type == "cuda":
            self.model.to("cpu")
            self._base = {k: v.to("cpu") for k, v in self._base.items()}
            torch.cuda.empty_cache()
        self.asleep = True

    def wake(self) -> None:
        if not self.asleep:
            return
        if self.device.type == "cuda":
            self.model.to(self.device)
            self._base = {k: v.to(self.device) for k, v in self._base.items()}
        self.asleep = False

    def logits(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Full-forward logits ``[B, L, V]`` (tests compare engines with this)."""
        with torch.inference_mode():
            return self.model(inputs_embeds=inputs_embeds.to(self.device, self.dtype)).logits.float()
