"""Full, LoRA-merged LLM weights out of an FSDP2-sharded (and possibly peft-wrapped) model.

:func:`merged_named_tensors` walks the plain HF causal LM (``PeftModel.get_base_model()`` when
LoRA is on) module by module, in the same order on every rank, and yields
``(name, full tensor)`` with the names of the plain HF state dict
(``model.layers.0.self_attn.q_proj.weight``; no ``base_model.model.`` prefix, no ``base_layer``,
no ``lora_`` tensors). Sharded parameters are DTensors; ``full_tensor()`` all-gathers them, so
this is a *collective*: every rank must iterate to the end.

LoRA merge: a peft ``lora.Linear`` yields ``W + Σ_a scaling_a · B_a @ A_a`` over its active
adapters, computed from the gathered full tensors (peft's own ``merge_adapter`` would work on
the local shards, which is wrong under FSDP). ``scaling`` is peft's (``alpha / r``).

Tied weights (``tie_word_embeddings``): a parameter shared by two modules is yielded once, under
its first name (``model.embed_tokens.weight``); the tied ``lm_head.weight`` is not repeated.
Loading with ``load_state_dict(strict=False)`` or SGLang's ``update_weights_from_tensor``
restores the tie. Persistent buffers are yielded, non-persistent ones (rotary ``inv_freq``) not.

What the weight sync sends each step is :func:`update_named_tensors`: only what trains. Under
LoRA that is the adapter (:func:`adapter_named_tensors`, ``{prefix}lora_A`` / ``lora_B`` /
``lora_scaling`` per LoRA linear) and the engine merges it into the base it loaded
(``funrl.rollout.hf_engine.HFEngine.update_adapter``); in full fine-tuning it is every parameter
with ``requires_grad`` (:func:`trainable_named_tensors`), never a frozen one. The merged export
above stays for checkpoints (``export_model``) and inspection.
"""

from __future__ import annotations

from typing import Iterator, Optional

import torch
from torch import nn
from torch.distributed.tensor import DTensor


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor: all-gathered if it is a sharded DTensor (collective), else detached."""
    return t.full_tensor().detach() if isinstance(t, DTensor) else t.detach()


def _lora_layer_types() -> tuple[type, ...]:
    from peft.tuners.lora import LoraLayer

    return (LoraLayer,)


def check_lora_layers(model: nn.Module) -> None:
    """Refuse LoRA layers :func:`merged_named_tensors` cannot merge (embedding, conv, DoRA, fan_in_fan_out)."""
    from peft.tuners.lora import Linear as LoraLinear

    for name, module in model.named_modules():
        if not isinstance(module, _lora_layer_types()):
            continue
        if not isinstance(module, LoraLinear):
            raise ValueError(
                f"policy.lora.target_modules matched {name} ({type(module.get_base_layer()).__name__}); "
                "funrl merges LoRA into nn.Linear layers only: list only linear projections (q_proj, ..., down_proj)"
            )
        if getattr(module, "fan_in_fan_out", False) or any(module.use_dora.values()):
            raise ValueError(f"LoRA layer {name}: fan_in_fan_out and DoRA are not supported by the weight export")


def merged_named_tensors(hf_model: nn.Module, dtype: Optional[torch.dtype] = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(HF name, full tensor)`` for every parameter and persistent buffer (collective)."""
    lora_types = _lora_layer_types()
    seen: set[int] = set()
    lora_prefixes: list[str] = []

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t if dtype is None or not t.is_floating_point() else t.to(dtype)

    for mname, module in hf_model.named_modules():
        if any(mname.startswith(p) for p in lora_prefixes):
            continue  # lora_A / lora_B / base_layer of a LoRA layer already merged
        prefix = f"{mname}." if mname else ""
        if isinstance(module, lora_types):
            lora_prefixes.append(prefix)
            base = module.get_base_layer()
            weight = full(base.weight)  # [out, in]
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    a = full(module.lora_A[adapter].weight)  # [r, in]
                    b = full(module.lora_B[adapter].weight)  # [out, r]
                    weight = weight + module.scaling[adapter] * (b @ a)  # [out, in]
            seen.add(id(base.weight))
            yield f"{prefix}weight", cast(weight)
            if base.bias is not None:
                seen.add(id(base.bias))
                yield f"{prefix}bias", cast(full(base.bias))
            continue
        for pname, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue  # tied weight, already yielded under its first name
            seen.add(id(param))
            yield f"{prefix}{pname}", cast(full(param))
        for bname, buf in module.named_buffers(recurse=False):
            if buf is not None and bname not in module._non_persistent_buffers_set:
                yield f"{prefix}{bname}", cast(full(buf))


def lora_linears(hf_model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    """``(module name, peft lora.Linear, its one active adapter)`` in module order.

    Adapter-only sync sends one ``(A, B, scaling)`` per layer: a layer with several active
    adapters is refused (funrl's policy wraps one, ``default``)."""
    for mname, module in hf_model.named_modules():
        if isinstance(module, _lora_layer_types()):
            active = [a for a in module.active_adapters if a in module.lora_A]
            if len(active) != 1:
                raise ValueError(f"LoRA layer {mname}: adapter-only sync needs exactly one active adapter, has {active}")
            yield mname, module, active[0]


def adapter_named_tensors(hf_model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield each LoRA linear's adapter under its plain HF module name (collective).

    ``{prefix}lora_A`` ``[r, in]``, ``{prefix}lora_B`` ``[out, r]`` and ``{prefix}lora_scaling``
    (a 0-dim float64 holding peft's Python float ``alpha / r`` exactly), all full tensors. With
    the base ``W`` the engine loaded, ``W + float(scaling) * (B @ A)`` is bit for bit what
    :func:`merged_named_tensors` yields for ``{prefix}weight``.
    """
    for mname, module, adapter in lora_linears(hf_model):
        prefix = f"{mname}." if mname else ""
        yield f"{prefix}lora_A", full(module.lora_A[adapter].weight)  # [r, in]
        yield f"{prefix}lora_B", full(module.lora_B[adapter].weight)  # [out, r]
        yield f"{prefix}lora_scaling", torch.tensor(float(module.scaling[adapter]), dtype=torch.float64)


def trainable_named_tensors(hf_model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(HF name, full tensor)`` of every parameter that trains, outside LoRA layers (collective).

    Full fine-tuning: every ``requires_grad`` parameter (a tied one once, under its first name);
    frozen parameters and buffers never change, so they are never sent. Under LoRA the base is
    frozen and this yields nothing unless something besides the adapter trains.
    """
    lora = [f"{m}." for m, _, _ in lora_linears(hf_model)]
    for name, param in hf_model.named_parameters():  # deduplicates tied parameters
        if param.requires_grad and not any(name.startswith(p) for p in lora):
            yield name, full(param)


def update_named_tensors(hf_model: nn.Module) -> Iterator[tuple[str, Iterator[tuple[str, torch.Tensor]]]]:
    """What a weight sync sends, as ``(kind, named tensors)``: ``"adapter"`` then ``"weights"`` (collective)."""
    yield "adapter", adapter_named_tensors(hf_model)
    yield "weights", trainable_named_tensors(hf_model)


def buckets(named: Iterator[tuple[str, torch.Tensor]], bucket_bytes: int) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Group ``(name, tensor)`` into lists of at most ``bucket_bytes`` (a larger tensor goes alone)."""
    if bucket_bytes < 1:
        raise ValueError(f"bucket_bytes must be >= 1, got {bucket_bytes}")
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    for name, t in named:
        nbytes = t.numel() * t.element_size()
        if bucket and size + nbytes > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, t))
        size += nbytes
    if bucket:
        yield bucket

