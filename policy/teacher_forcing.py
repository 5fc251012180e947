"""Teacher forcing: log π(completion | prompt), computed in exactly one place.

Every consumer of completion log-probs calls :func:`completion_logprobs`: the GRPO policy's update
and reference pass (:class:`funrl.policy.fsdp_worker.CompletionLM`), SFT's cross-entropy
(:mod:`funrl.sft.loss`) and the rollout worker's ``score`` (engine vs policy checks). The
temperature rule (``logits / T``; raw logits at ``T = 0``, greedy) is
:func:`funrl.policy.logprobs.tempered`, shared with the rollout engine's sampler.

Two layouts of the same teacher-forced inputs; every logit is the same function of the same
inputs in both (tested to 1e-5, gradients included):

Per row (:func:`build_inputs`, ``shared=False``): row ``i`` with prompt ``p = prompt_index[i]`` of
length ``L`` and completion ``y`` of length ``T`` feeds the LLM ``[prompt_embeds[p]; embed(y[:T-1])]``
(length ``L + T - 1``, right-padded to the micro-batch's longest row). The logits at position
``L - 1 + t`` predict ``y[t]``, so ``positions[i, t] = L - 1 + t`` picks the ``T`` hidden states
whose log-probs are needed; everything else (prompt, padding) is outside ``mask``.

Shared prompts (:func:`build_shared_inputs`, ``shared=True``, ``policy.share_prompt``, the
default): the G rows of a group share one prompt, and an audio prompt is long next to its
transcript, so feeding it G times repeats most of the work. Instead each micro-batch holds one
*segment* per prompt, ``[prompt; y_1[:-1]; y_2[:-1]; ...]``, with a 4-D attention mask in which
each completion block sees the prompt and its own earlier tokens, never a sibling's, and position
ids that restart at ``L`` for every block: ``L + ΣT`` tokens through the layers instead of
``G·L + ΣT``. The price is attention over the dense ``[S, S]`` mask of a segment (``S`` the
segment length): cheap next to the projections and MLPs at transcript lengths, quadratic in
``G·T`` for very long completions (then ``share_prompt: false`` or smaller micro-batches).

Only the hidden states at completion positions go through the LM head (``[N, T, V]`` logits,
never ``[N, S, V]``), and the log-softmax is chunked (:func:`funrl.policy.logprobs.token_logprobs`).
This assumes the causal LM's logits are ``lm_head(hidden)`` (true for Qwen3/Qwen2/Llama; not for
models that post-process logits, such as Gemma's soft-capping).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from funrl.policy.batch import pad_right
from funrl.policy.logprobs import token_logprobs


def causal_lm(llm: nn.Module) -> nn.Module:
    """The plain transformers causal LM (inside a peft wrapper when LoRA is on)."""
    return llm.get_base_model() if hasattr(llm, "get_base_model") else llm


def completion_logprobs(
    llm: nn.Module,  # a transformers causal LM, or its peft wrapper
    prompt_embeds: Sequence[torch.Tensor],  # [P] each [L_p, H]
    prompt_index: Sequence[int],  # [N] row -> prompt
    completion_ids: Sequence,  # [N] each [T_i] token ids (tensor or list)
    *,
    temperature: float = 1.0,
    shared: bool = True,
    with_entropy: bool = False,
    input_grad: bool = False,
) -> tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
    """``(logp [N, T], entropy [N, T] detached or None, mask [N, T])``: log π(y_t | prompt, y_<t)
    under ``tempered(logits, temperature)``, fp32, differentiable, 0 where ``mask`` is False.

    ``shared``: one segment per distinct prompt (:func:`build_shared_inputs`) or one row per
    completion (:func:`build_inputs`). ``input_grad``: make the embeddings require grad (see
    :class:`funrl.policy.fsdp_worker.CompletionLM`).
    """
    hf = causal_lm(llm)
    ids = [torch.as_tensor(y, dtype=torch.long) for y in completion_ids]
    build = build_shared_inputs if shared else build_inputs
    x = build(list(prompt_embeds), prompt_index, ids, hf.get_input_embeddings())
    inputs = x["inputs_embeds"]  # [G, S, H] segments (shared) or [N, S, H] rows
    if input_grad and torch.is_grad_enabled() and not inputs.requires_grad:
        inputs = inputs.requires_grad_()
    if shared:
        hidden = hf.base_model(inputs_embeds=inputs, attention_mask=x["attention_mask"],
                               position_ids=x["position_ids"]).last_hidden_state  # [G, S, H]
        picked = hidden.reshape(-1, hidden.shape[-1])[x["flat_positions"]]  # [N, T, H]
    else:
        hidden = hf.base_model(inputs_embeds=inputs, attention_mask=x["attention_mask"]).last_hidden_state  # [N, S, H]
        index = x["positions"].unsqueeze(-1).expand(-1, -1, hidden.shape[-1])  # [N, T, H]
        picked = hidden.gather(1, index)  # [N, T, H]
    logits = hf.get_output_embeddings()(picked)  # [N, T, V]
    logp, entropy = token_logprobs(logits, x["labels"], temperature=temperature, with_entropy=with_entropy)  # [N, T]
    return logp.masked_fill(~x["mask"], 0.0), entropy, x["mask"]


def build_inputs(
    prompt_embeds: list[torch.Tensor],  # [P] each [L_p, H]
    prompt_index: Sequence[int],  # [N]
    completion_ids: list[torch.Tensor],  # [N] each [T_i]
    embed: Callable[[torch.Tensor], torch.Tensor],  # token ids [T] -> [T, H] (the LLM's input embedding)
) -> dict[str, torch.Tensor]:
    """Right-padded teacher-forcing inputs for one micro-batch (see the module docstring).

    Returns ``inputs_embeds [N, S, H]``, ``attention_mask [N, S]`` (long), ``positions [N, T]``
    (the hidden-state index predicting each completion token), ``labels [N, T]`` (0 at padding)
    and ``mask [N, T]`` (bool, completion tokens), with ``T = max T_i`` and ``S = max(L_i + T_i - 1)``.
    """
    device = prompt_embeds[0].device
    seqs, pos, lengths = [], [], []
    for p, y in zip(prompt_index, completion_ids):
        prompt = prompt_embeds[int(p)]  # [L, H]
        y = y.to(device)
        tail = embed(y[:-1]).to(prompt.dtype) if y.numel() > 1 else prompt.new_zeros(0, prompt.shape[-1])  # [T-1, H]
        seqs.append(torch.cat([prompt, tail]))  # [L+T-1, H] (just the prompt when T <= 1)
        pos.append(torch.arange(y.numel(), device=device) + prompt.shape[0] - 1)  # [T]
        lengths.append(seqs[-1].shape[0])
    n, s, t = len(seqs), max(lengths), max(1, max(y.numel() for y in completion_ids))
    hidden = seqs[0].shape[-1]
    inputs = seqs[0].new_zeros(n, s, hidden)  # [N, S, H]
    attention = torch.zeros(n, s, dtype=torch.long, device=device)  # [N, S]
    for i, x in enumerate(seqs):
        inputs[i, : x.shape[0]] = x
        attention[i, : x.shape[0]] = 1
    labels = pad_right([y.to(device).long() for y in completion_ids], t, 0)  # [N, T]
    mask = pad_right([torch.ones(y.numel(), dtype=torch.bool, device=device) for y in completion_ids], t, False)  # [N, T]
    positions = pad_right(pos, t, 0)  # [N, T]
    return {"inputs_embeds": inputs, "attention_mask": attention, "positions": positions, "labels": labels, "mask": mask}


def build_shared_inputs(
    prompt_embeds: list[torch.Tensor],  # [P] each [L_p, H]
    prompt_index: Sequence[int],  # [N]
    completion_ids: list[torch.Tensor],  # [N] each [T_i]
    embed: Callable[[torch.Tensor], torch.Tensor],  # token ids [T] -> [T, H]
) -> dict[str, torch.Tensor]:
    """Teacher-forcing inputs with one segment per distinct prompt (see the module docstring).

    Returns ``inputs_embeds [G, S, H]`` (``G`` segments, right-padded to the longest ``S``),
    ``attention_mask [G, 1, S, S]`` (bool, True = may attend; a padded query attends to itself
    only, so no softmax row is empty), ``position_ids [G, S]``, and per row ``flat_positions
    [N, T]`` (index into the ``[G*S]`` flattened hidden states predicting each completion token),
    ``labels [N, T]`` and ``mask [N, T]`` as :func:`build_inputs`.
    """
    device = prompt_embeds[0].device
    order: dict[int, list[int]] = {}  # prompt -> its rows, in first-appearance order
    for i, p in enumerate(prompt_index):
        order.setdefault(int(p), []).append(i)
    ids = [y.tolist() for y in completion_ids]
    # plain Python over token counts (cheap), tensors built once at the end
    lengths, blocks, positions, starts = [], [], [], {}  # per segment; starts: row -> first tail slot
    for p, rows in order.items():  # segment k = the k-th distinct prompt
        length = int(prompt_embeds[p].shape[0])
        blk, pos, offset = [0] * length, list(range(length)), length
        for b, i in enumerate(rows, start=1):
            tail = max(len(ids[i]) - 1, 0)  # y[:-1] is fed; y[0] is predicted from the prompt's last position
            starts[i] = offset
            blk += [b] * tail
            pos += range(length, length + tail)
            offset += tail
        lengths.append(offset)
        blocks.append(blk)
        positions.append(pos)
    g, s = len(lengths), max(lengths)
    hidden = prompt_embeds[0].shape[-1]
    dtype = prompt_embeds[0].dtype
    inputs = prompt_embeds[0].new_zeros(g, s, hidden)  # [G, S, H]
    fed = [t for rows in order.values() for i in rows for t in ids[i][:-1]]  # every fed token, segment order
    tails = embed(torch.tensor(fed, dtype=torch.long, device=device)).to(dtype) if fed else None  # [ΣT-1, H]
    used = 0
    for k, (p, rows) in enumerate(order.items()):
        length = prompt_embeds[p].shape[0]
        inputs[k, :length] = prompt_embeds[p]
        n = lengths[k] - length
        if n:
            inputs[k, length : lengths[k]] = tails[used : used + n]
            used += n
    block = torch.tensor([b + [-1] * (s - len(b)) for b in blocks])  # [G, S] 0 prompt, b > 0 row block, -1 padding
    position_ids = torch.tensor([q + [0] * (s - len(q)) for q in positions])  # [G, S]
    causal = torch.ones(s, s, dtype=torch.bool).tril()  # [S, S] key <= query
    bq, bk = block[:, :, None], block[:, None, :]  # [G, S, 1], [G, 1, S]
    allowed = causal & (bq >= 0) & (bk >= 0) & ((bk == 0) | (bk == bq))  # [G, S, S]
    allowed |= torch.eye(s, dtype=torch.bool) & (bq < 0)  # padded queries: themselves only
    t = max(1, max(len(y) for y in ids))
    segment = {i: k for k, rows in enumerate(order.values()) for i in rows}
    flat, labels, mask = [], [], []
    for i, y in enumerate(ids):
        base = segment[i] * s
        prompt_last = base + int(prompt_embeds[int(prompt_index[i])].shape[0]) - 1
        row = ([prompt_last] + list(range(base + starts[i], base + starts[i] + len(y) - 1)))[: len(y)]
        flat.append(row + [0] * (t - len(row)))
        labels.append(y + [0] * (t - len(y)))
        mask.append([True] * len(y) + [False] * (t - len(y)))
    return {
        "inputs_embeds": inputs,
        "attention_mask": allowed[:, None].to(device),  # [G, 1, S, S]
        "position_ids": position_ids.to(device),
        "flat_positions": torch.tensor(flat, dtype=torch.long, device=device),  # [N, T]
        "labels": torch.tensor(labels, dtype=torch.long, device=device),  # [N, T]
        "mask": torch.tensor(mask, dtype=torch.bool, device=device),  # [N, T]
    }
