"""The FSDP2 policy worker: one instance per rank, plain Python (the driver wraps it in a Ray actor).

What one rank holds: the LLM (a transformers causal LM; with ``policy.lora.enabled`` wrapped by
peft ``get_peft_model``) inside :class:`CompletionLM`, sharded with FSDP2 ``fully_shard`` per
decoder layer and then at the root; AdamW over the trainable parameters; a warm-up + constant /
cosine LR schedule. The reference policy is the same model with the adapter disabled under LoRA,
else a frozen, separately sharded copy (built only when ``algorithm.kl_coef > 0``).

With ``policy.share_prompt`` (the default) a micro-batch feeds each prompt once for all its rows
(:func:`funrl.policy.teacher_forcing.build_shared_inputs`); off, each row carries its own copy.

The prompt side (audio encoder, adaptor, chat template) is frozen: the policy consumes cached
prompt embeddings (see :mod:`funrl.policy.batch` for the batch format and the teacher-forcing
layout), as the issue's default. Training the adaptor or encoder inside the policy is not built.

Loss normalisation (see :mod:`funrl.policy.loss`): the token and sequence counts of the whole step
are all-reduced over ranks first; each micro-batch's loss is its share of the step loss, times
the world size because FSDP2 averages gradients over ranks. So the update does not depend on how
the batch is split over ranks or micro-batches. Every rank runs the same number of micro-batches
(the maximum over ranks; a rank that runs out does a zero-weight pass on a one-token dummy row),
because each FSDP2 forward/backward is a collective.
"""

from __future__ import annotations

import copy
import math
from contextlib import nullcontext
import warnings
from datetime import timedelta
from typing import Iterator, Optional, Union

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

from funrl.policy.batch import PolicyBatch, pad_right
from funrl.policy.checkpoint import load_policy, save_policy
from funrl.policy.config import AlgorithmConfig, PolicyConfig
from funrl.policy.loss import compute_grpo_loss
from funrl.policy.rollout_correction import rollout_correction
from funrl.policy.teacher_forcing import causal_lm, completion_logprobs
from funrl.policy.weights import buckets, check_lora_layers, merged_named_tensors, update_named_tensors

_MIN_MAX_METRICS = {"ratio_min": dist.ReduceOp.MIN, "ratio_max": dist.ReduceOp.MAX,
                    "rollout_logp_diff_max": dist.ReduceOp.MAX}


class CompletionLM(nn.Module):
    """The FSDP2 root: :func:`funrl.policy.teacher_forcing.completion_logprobs` of its LLM."""

    def __init__(self, llm: nn.Module, share_prompt: bool = True):
        super().__init__()
        self.llm = llm
        self.share_prompt = share_prompt  # one segment per prompt (funrl.policy.teacher_forcing)
        self.input_grad = True  # see forward; PolicyWorker turns it off for a single rank

    def hf_model(self) -> nn.Module:
        """The plain transformers causal LM (inside the peft wrapper when LoRA is on)."""
        return causal_lm(self.llm)

    def forward(self, prompt_embeds, prompt_index, completion_ids, temperature: float = 1.0, with_entropy: bool = False):
        # input_grad: without a grad-requiring input, layer 0's FSDP2 post-backward hook never
        # fires and its reduce-scatter runs in the root's final callback instead; when that differs
        # between ranks (frozen embeddings, or micro-batches whose completions are all 1 token) the
        # collectives mismatch. A grad-requiring input keeps the order the same everywhere. One
        # rank has no one to disagree with, so it skips the input gradient (a share of LoRA's backward).
        return completion_logprobs(self.llm, prompt_embeds, prompt_index, completion_ids, temperature=temperature,
                                   shared=self.share_prompt, with_entropy=with_entropy, input_grad=self.input_grad)


class PolicyWorker:
    """One FSDP2 rank of the GRPO policy. Every public method is collective: call it on all ranks.

    ``llm``: a transformers causal LM (identical on every rank; rank 0's weights are broadcast
    before sharding anyway) or the path of a saved HF folder. ``init_method``: a torch.distributed
    rendezvous (``tcp://host:port`` or ``file:///path``); if a default process group already
    exists it is used as is. gloo on CPU, NCCL on GPU.
    """

    def __init__(
        self,
        cfg: PolicyConfig,
        algorithm: AlgorithmConfig,
        llm: Union[nn.Module, str],
        *,
        rank: int = 0,
        init_method: Optional[str] = None,
        device: Optional[str] = None,
        temperature: float = 1.0,
    ):
        self.cfg, self.algo, self.rank, self.world_size = cfg, algorithm, rank, cfg.world_size
        self.temperature = temperature  # the rollout's: log-probs of the distribution it sampled from
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device.index or 0)
        self._own_group = _init_group(init_method, rank, self.world_size, self.device)
        self.mesh = init_device_mesh(self.device.type, (self.world_size,))
        llm = _load_llm(llm).to(dtype=torch.float32)
        ref = copy.deepcopy(llm).requires_grad_(False) if not cfg.lora.enabled and algorithm.kl_coef > 0 else None
        torch.manual_seed(cfg.seed)  # the LoRA A init; rank 0's copy is broadcast below anyway
        self.model = CompletionLM(_with_lora(llm, cfg) if cfg.lora.enabled else llm.requires_grad_(True), cfg.share_prompt)
        self.model.input_grad = self.world_size > 1
        if cfg.gradient_checkpointing:
            _enable_checkpointing(self.model.hf_model())
        self._shard(self.model)
        self.ref = self._shard(CompletionLM(ref, cfg.share_prompt).eval()) if ref is not None else None
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        opt = cfg.optim
        impl = {"fused": True} if opt.fused else {"foreach": True}
        self.optim = torch.optim.AdamW(self.params, lr=opt.lr, betas=tuple(opt.betas), eps=opt.eps,
                                       weight_decay=opt.weight_decay, **impl)
        self.scheduler = _lr_schedule(self.optim, cfg)
        self.step = 0  # optimizer steps taken
        torch.manual_seed(cfg.seed + 1 + rank)  # dropout RNG, distinct per rank

    # ------------------------------------------------------------------ setup helpers
    def _shard(self, root: CompletionLM) -> CompletionLM:
        root.to(self.device)
        for t in list(root.parameters()) + list(root.buffers()):
            dist.broadcast(t.data, src=0)  # every rank must shard the same weights
        dtype = getattr(torch, self.cfg.param_dtype)
        mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
        kw = dict(mesh=self.mesh, mp_policy=mp)
        layer_classes = set(getattr(root.hf_model(), "_no_split_modules", None) or ())
        layers = [m for m in root.modules() if type(m).__name__ in layer_classes]
        if not layers:
            raise ValueError(
                f"{type(root.hf_model()).__name__} lists no decoder-layer classes in _no_split_modules; "
                "FSDP2 needs them to shard per layer (use a transformers causal LM such as Qwen3ForCausalLM)"
            )
        for layer in layers:
            fully_shard(layer, reshard_after_forward=self.cfg.reshard_after_forward, **kw)
        fully_shard(root, **kw)
        return root

    # ------------------------------------------------------------------ collectives
    def _all_reduce(self, t: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
        t = t.to(self.device)
        dist.all_reduce(t, op=op)
        return t

    def _micro_batches(self, n: int, size: int) -> list[list[int]]:
        """Row chunks of ``size``; padded with ``[]`` (dummy passes) to the maximum count over ranks."""
        local = [list(range(s, min(s + size, n))) for s in range(0, n, size)]
        count = int(self._all_reduce(torch.tensor(len(local)), dist.ReduceOp.MAX))
        return local + [[] for _ in range(count - len(local))]

    def _forward(self, module: CompletionLM, batch: PolicyBatch, rows: list[int], with_entropy: bool = False):
        if rows:
            prompts = [e.to(self.device) for e in batch.prompt_embeds]
            index, ids = [batch.prompt_index[i] for i in rows], [batch.completion_ids[i] for i in rows]
        else:  # dummy row keeping the collectives in step; its output is discarded or weighted 0
            prompts = [torch.zeros(1, module.hf_model().get_input_embeddings().embedding_dim, device=self.device)]
            index, ids = [0], [torch.zeros(1, dtype=torch.long)]
        return module(prompts, index, ids, temperature=self.temperature, with_entropy=with_entropy)

    # ------------------------------------------------------------------ log-probs
    @torch.no_grad()
    def compute_logprobs(self, batch: PolicyBatch, which: str = "old") -> list[torch.Tensor]:
        """Per-row log-probs of the completion tokens (``[T_i]`` float32 on CPU), under the current
        policy (``"old"``) or the reference (``"ref"``: adapter disabled, or the frozen copy)."""
        if which not in ("old", "ref"):
            raise ValueError(f"compute_logprobs: which must be 'old' or 'ref', got {which!r}")
        batch.validate()
        module = self.model
        if which == "ref" and not self.cfg.lora.enabled:
            if self.ref is None:
                raise ValueError("reference log-probs need algorithm.kl_coef > 0 (no reference copy was built)")
            module = self.ref
        was_training = module.training
        module.eval()
        out: list[Optional[torch.Tensor]] = [None] * len(batch)
        try:
            with self.model.llm.disable_adapter() if which == "ref" and self.cfg.lora.enabled else nullcontext():
                for rows in self._micro_batches(len(batch), self.cfg.logprob_micro_batch_size):
                    logp, _, mask = self._forward(module, batch, rows)  # [n, T], [n, T]
                    for j, i in enumerate(rows):
                        out[i] = logp[j][mask[j]].float().cpu()  # [T_i]
        finally:
            module.train(was_training)
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ update
    def update(self, batch: PolicyBatch, max_response_length: Optional[int] = None) -> dict[str, float]:
        """One optimizer step on this rank's rows (collective). Returns step metrics (global, equal on all ranks).

        ``max_response_length``: the rollout's max_new_tokens, needed only by
        ``loss_agg_mode = "seq-mean-token-sum-norm"`` when ``algorithm.loss_norm_length`` is unset.
        """
        self._check_update_batch(batch)
        lengths = torch.tensor([float(y.numel()) for y in batch.completion_ids], dtype=torch.float64)
        counts = self._all_reduce(torch.stack([lengths.sum(), (lengths > 0).sum().double(), torch.tensor(float(len(batch)), dtype=torch.float64)]))
        g_tokens, g_seqs, g_rows = counts[0], counts[1], counts[2]
        self.model.train()
        self.optim.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        extremes: dict[str, list[torch.Tensor]] = {k: [] for k in _MIN_MAX_METRICS}
        for rows in self._micro_batches(len(batch), self.cfg.micro_batch_size):
            logp, entropy, mask = self._forward(self.model, batch, rows, with_entropy=True)  # [n, T]
            if not rows:
                (logp.sum() * 0.0).backward()  # zero-weight dummy pass: joins the gradient reduce-scatter
                continue
            loss, metrics = self._micro_loss(batch, rows, logp, entropy, mask, g_tokens, g_seqs, max_response_length)
            (loss * self.world_size).backward()  # FSDP2 averages gradients over ranks; the loss is a share of the sum
            for k, v in metrics.items():
                if k in extremes:
                    if bool(mask.any()):
                        extremes[k].append(v)
                else:
                    sums[k] = sums.get(k, 0.0) + v
        lr = self.optim.param_groups[0]["lr"]  # the rate this step uses (the scheduler moves it after)
        grad_norm, skipped = self._clip_and_step()
        return self._step_metrics(sums, extremes, grad_norm, skipped, lr, g_tokens, g_seqs, g_rows)

    def _check_update_batch(self, batch: PolicyBatch) -> None:
        batch.validate()
        if batch.advantages is None:
            raise ValueError("update() needs PolicyBatch.advantages")
        if self.algo.kl_coef > 0 and batch.ref_logprobs is None:
            raise ValueError("algorithm.kl_coef > 0: update() needs PolicyBatch.ref_logprobs (compute_logprobs(batch, 'ref'))")

    def _micro_loss(self, batch, rows, logp, entropy, mask, g_tokens, g_seqs, max_response_length):
        width = mask.shape[1]
        if batch.old_logprobs is None:  # on-policy: one optimizer step per rollout, so π_old = π_θ here
            old = logp.detach()  # [n, T]
        else:
            old = pad_right([batch.old_logprobs[i].float() for i in rows], width).to(self.device)  # [n, T]
        ref = None
        if batch.ref_logprobs is not None and self.algo.kl_coef > 0:
            ref = pad_right([batch.ref_logprobs[i].float() for i in rows], width).to(self.device)  # [n, T]
        adv = batch.advantages[rows].float().to(self.device)  # [n]
        weights, engine_metrics = None, {}
        if batch.rollout_logprobs is not None:  # the engine's own log-probs: mismatch, and rollout_is
            engine = pad_right([batch.rollout_logprobs[i].float() for i in rows], width).to(self.device)  # [n, T]
            weights, engine_metrics = rollout_correction(
                old, engine, mask, mode=self.algo.rollout_is, level=self.algo.rollout_is_level,
                cap=self.algo.rollout_is_cap, num_tokens=g_tokens)
        loss, metrics = compute_grpo_loss(
            logp, old, adv, mask, self.algo, global_num_tokens=g_tokens, global_num_seqs=g_seqs,
            ref_logp=ref, entropy=entropy, max_response_length=max_response_length, is_weights=weights,
        )
        return loss, {**metrics, **engine_metrics}

    def _clip_and_step(self) -> tuple[torch.Tensor, bool]:
        max_norm = self.cfg.optim.max_grad_norm or math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)  # DTensor-aware (FSDP2 shards)
        norm = norm.full_tensor() if isinstance(norm, DTensor) else norm
        if not torch.isfinite(norm):
            warnings.warn(f"policy step {self.step}: gradient norm is {float(norm)}; the optimizer step is skipped")
            self.optim.zero_grad(set_to_none=True)
            return norm, True
        self.optim.step()
        self.scheduler.step()
        self.optim.zero_grad(set_to_none=True)
        self.step += 1
        return norm, False

    def _step_metrics(self, sums, extremes, grad_norm, skipped, lr, g_tokens, g_seqs, g_rows) -> dict[str, float]:
        keys = sorted(sums)
        total = self._all_reduce(torch.stack([torch.as_tensor(sums[k], dtype=torch.float64) for k in keys])) if keys else []
        out = {k: float(v) for k, v in zip(keys, total)}
        for k, op in _MIN_MAX_METRICS.items():
            fill = math.inf if op == dist.ReduceOp.MIN else -math.inf
            vals = extremes[k]
            local = torch.stack(vals).min() if op == dist.ReduceOp.MIN and vals else torch.stack(vals).max() if vals else None
            v = float(self._all_reduce(torch.tensor(fill if local is None else float(local), dtype=torch.float64), op))
            if not math.isinf(v):  # ±inf: no rank had a token (or, for the engine's, no engine log-probs)
                out[k] = v
        out.update(
            grad_norm=float(grad_norm), update_skipped=float(skipped), lr=float(lr),
            num_tokens=float(g_tokens), num_seqs=float(g_seqs), response_length_mean=float(g_tokens / g_rows.clamp(min=1)),
        )
        return out

    # ------------------------------------------------------------------ weights, memory, teardown
    def export_weights(self, bucket_bytes: int = 256 << 20, dtype: Optional[torch.dtype] = None) -> Iterator[list[tuple[str, torch.Tensor]]]:
        """Full LoRA-merged LLM weights in buckets of ``(HF name, tensor)`` (collective: iterate on every rank).

        Names and tied-weight handling: :mod:`funrl.policy.weights`. Tensors are on this worker's device.
        """
        self.model.reshard()  # parameters back to sharded DTensors whatever the last forward left
        with torch.no_grad():
            yield from buckets(merged_named_tensors(self.model.hf_model(), dtype), bucket_bytes)

    def export_update(self, bucket_bytes: int = 256 << 20) -> Iterator[tuple[str, list[tuple[str, torch.Tensor]]]]:
        """What the weight sync sends, as ``(kind, bucket)`` (collective: iterate on every rank).

        ``kind`` is ``"adapter"`` (LoRA: A, B, scaling per layer, for the engine to merge) or
        ``"weights"`` (parameters that train, plain HF names); see :mod:`funrl.policy.weights`.
        """
        self.model.reshard()
        with torch.no_grad():
            for kind, named in update_named_tensors(self.model.hf_model()):
                for bucket in buckets(named, bucket_bytes):
                    yield kind, bucket

    def sleep(self) -> None:
        """GPU: offload sharded parameters and optimizer state to CPU and empty the CUDA cache.

        CPU: a no-op (everything already lives in host memory; nothing can be freed without
        losing the weights)."""
        if self.device.type == "cuda":
            self._move("cpu")
            torch.cuda.empty_cache()

    def wake(self) -> None:
        """GPU: bring parameters and optimizer state back to the device. CPU: a no-op."""
        if self.device.type == "cuda":
            self._move(self.device)

    def _move(self, device) -> None:
        for module in (self.model, self.ref):
            if module is not None:
                module.to(device)
        for state in self.optim.state.values():
            for k, v in state.items():
                if torch.is_tensor(v) and k != "step":  # AdamW keeps "step" on CPU (capturable=False)
                    state[k] = v.to(device, non_blocking=True)

    def close(self) -> None:
        """Destroy the process group if this worker created it."""
        if self._own_group and dist.is_initialized():
            dist.destroy_process_group()
            self._own_group = False

    # checkpoints live in funrl.policy.checkpoint (save / load); bound here for the driver
    def save(self, path: str) -> None:
        save_policy(self, path)

    def load(self, path: str) -> None:
        load_policy(self, path)


# ---------------------------------------------------------------------- module helpers
def _init_group(init_method: Optional[str], rank: int, world_size: int, device: torch.device) -> bool:
    if dist.is_initialized():
        if dist.get_world_size() != world_size:
            raise ValueError(f"the existing process group has {dist.get_world_size()} ranks but policy.world_size is {world_size}")
        return False
    if init_method is None:
        raise ValueError("PolicyWorker needs init_method (tcp://host:port or file:///path) when no process group exists")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size, timeout=timedelta(minutes=30))
    return True


def _enable_checkpointing(hf: nn.Module) -> None:
    """Non-reentrant activation checkpointing per decoder layer (transformers 5 renamed the method)."""
    kwargs = {"use_reentrant": False}
    if hasattr(hf, "activation_checkpointing_enable"):
        hf.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _load_llm(llm: Union[nn.Module, str]) -> nn.Module:
    if isinstance(llm, nn.Module):
        return llm
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(llm, dtype=torch.float32)


def _with_lora(llm: nn.Module, cfg: PolicyConfig) -> nn.Module:
    model = cfg.lora.wrap(llm)
    check_lora_layers(model)
    return model


def _lr_schedule(optim: torch.optim.Optimizer, cfg: PolicyConfig):
    """transformers' schedules (LambdaLR): linear warm-up from 0, then constant or cosine to min_lr_ratio."""
    from transformers import get_constant_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup

    opt = cfg.optim
    if opt.schedule == "cosine":
        return get_cosine_with_min_lr_schedule_with_warmup(optim, opt.warmup_steps, opt.total_steps, min_lr_rate=opt.min_lr_ratio)
    return get_constant_schedule_with_warmup(optim, opt.warmup_steps)
