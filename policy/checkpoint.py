"""Save and restore a :class:`~funrl.policy.fsdp_worker.PolicyWorker` (collective: call on every rank).

Layout of the folder ``path`` (written by rank 0; the driver makes it atomic by writing to a
temporary folder and renaming it):

- LoRA: ``adapter/`` in peft's ``save_pretrained`` format (``adapter_config.json``,
  ``adapter_model.safetensors``), loadable with ``PeftModel.from_pretrained(base_llm, path/adapter)``.
- Full fine-tuning: ``model/`` an HF folder (``config.json``, ``model.safetensors``), loadable with
  ``AutoModelForCausalLM.from_pretrained(path/model)``.
- ``optimizer.pt``: the full (unsharded) AdamW state from
  ``torch.distributed.checkpoint.state_dict.get_optimizer_state_dict(full_state_dict=True)``.
- ``policy_state.pt``: optimizer step count, LR-scheduler state, and every rank's RNG states.

Both ``.pt`` files hold tensors and plain values only and are read with ``weights_only=True``
(:func:`load_plain`): a resume never unpickles code.

Only trainable parameters are saved (the frozen base of a LoRA policy is the model folder the run
started from). Loading reads the files on rank 0 and broadcasts (``broadcast_from_rank0``), so
only rank 0 needs to see ``path``. Restoring reproduces the next update exactly on CPU
(``tests/policy/test_fsdp_worker.py``).
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Protocol

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)



class PolicyState(Protocol):
    """What checkpointing reads and restores of one policy rank
    (:class:`funrl.policy.fsdp_worker.PolicyWorker`, which calls this module)."""

    cfg: Any  # PolicyConfig
    model: torch.nn.Module  # the FSDP2 root (CompletionLM)
    optim: torch.optim.Optimizer
    scheduler: Any  # LambdaLR
    rank: int
    world_size: int
    step: int
    device: torch.device

_ROOT = "llm."  # CompletionLM holds the (peft-wrapped) LLM as .llm
_ADAPTER = "default"  # peft's adapter name


def _file_key(worker: PolicyState, fqn: str) -> str:
    """State-dict key of the root module -> key in the saved file (peft or plain HF naming)."""
    key = fqn[len(_ROOT):]
    return key.replace(f".{_ADAPTER}", "") if worker.cfg.lora.enabled else key


def _model_file(worker: PolicyState, path: str) -> str:
    sub = ("adapter", "adapter_model.safetensors") if worker.cfg.lora.enabled else ("model", "model.safetensors")
    return os.path.join(path, *sub)


def _rng_state(worker: PolicyState) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if worker.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(worker.device)
    return state


def _write_trainable(worker: PolicyState, model_sd: dict, path: str) -> None:
    """Rank 0: the trainable tensors in peft's adapter format (LoRA) or as an HF folder's weights."""
    names = [n for n, p in worker.model.named_parameters() if p.requires_grad]
    tensors = {_file_key(worker, n): model_sd[n].contiguous() for n in names}  # [trainable only]
    file = _model_file(worker, path)
    os.makedirs(os.path.dirname(file), exist_ok=True)
    save_file(tensors, file, metadata={"format": "pt"})
    if worker.cfg.lora.enabled:
        worker.model.llm.peft_config[_ADAPTER].save_pretrained(os.path.dirname(file))
    else:
        worker.model.hf_model().config.save_pretrained(os.path.dirname(file))


def save_adapter(worker: PolicyState, path: str) -> None:
    """LoRA: write ``path/adapter`` (peft's ``adapter_config.json`` + ``adapter_model.safetensors``,
    loadable with ``PeftModel.from_pretrained(text_lm, path/adapter)``). Collective; rank 0 writes."""
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd = get_model_state_dict(worker.model, options=opts)  # full tensors on rank 0, {} elsewhere
    if worker.rank == 0:
        _write_trainable(worker, model_sd, path)
    dist.barrier()


def save_policy(worker: PolicyState, path: str) -> None:
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd = get_model_state_dict(worker.model, options=opts)  # full tensors on rank 0, {} elsewhere
    optim_sd = get_optimizer_state_dict(worker.model, worker.optim, options=opts)
    rngs = [None] * worker.world_size if worker.rank == 0 else None
    dist.gather_object(_rng_state(worker), rngs, dst=0)
    if worker.rank == 0:
        _write_trainable(worker, model_sd, path)
        torch.save(optim_sd, os.path.join(path, "optimizer.pt"))
        state = {"step": worker.step, "scheduler": worker.scheduler.state_dict(), "rng": rngs}
        torch.save(state, os.path.join(path, "policy_state.pt"))
    dist.barrier()


def _read_model(worker: PolicyState, path: str) -> dict:
    file = _model_file(worker, path)
    if not os.path.isfile(file):
        raise FileNotFoundError(f"policy checkpoint {path}: missing {file} (was it saved with policy.lora.enabled={not worker.cfg.lora.enabled}?)")
    saved = load_file(file)
    names = [n for n, p in worker.model.named_parameters() if p.requires_grad]
    wanted = {_file_key(worker, n): n for n in names}
    missing, extra = sorted(set(wanted) - set(saved)), sorted(set(saved) - set(wanted))
    if missing or extra:
        raise ValueError(
            f"policy checkpoint {file} does not match this policy's trainable parameters: missing {missing[:5]}, "
            f"unexpected {extra[:5]} (check policy.lora.* against the run that wrote it)"
        )
    return {wanted[k]: v for k, v in saved.items()}


def load_plain(file: str) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code. Both
    files funrl writes (optimizer state; step, scheduler state and RNG states) load this way; a
    file that would run code when unpickled is refused before anything in it runs."""
    try:
        return torch.load(file, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        raise CheckpointRefused(
            f"policy checkpoint file {file} holds more than tensors and plain values, so it was not "
            f"loaded (a file funrl writes never does; it may have been replaced). Resume from a "
            f"checkpoint you trust. Detail: {str(e).splitlines()[0][:200]}"
        ) from None


class CheckpointRefused(ValueError):
    """A checkpoint file that could run code when loaded."""


def load_policy(worker: PolicyState, path: str) -> None:
    configured = [{k: v for k, v in g.items() if k != "params"} for g in worker.optim.param_groups]
    model_sd, optim_sd, state = {}, {}, [None]
    if worker.rank == 0:
        model_sd = _read_model(worker, path)
        optim_sd = load_plain(os.path.join(path, "optimizer.pt"))
        state = [load_plain(os.path.join(path, "policy_state.pt"))]
    opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
    set_model_state_dict(worker.model, model_sd, options=opts)
    set_optimizer_state_dict(worker.model, worker.optim, optim_sd, options=opts)
    dist.broadcast_object_list(state, src=0)
    saved = state[0]
    if len(saved["rng"]) != worker.world_size:
        raise ValueError(
            f"policy checkpoint {path} was written by {len(saved['rng'])} ranks; policy.world_size is {worker.world_size}. "
            "Resume with the same world size (the RNG streams are per rank)"
        )
    worker.step = saved["step"]
    worker.scheduler.load_state_dict(saved["scheduler"])
    _keep_configured(worker, configured)
    rng = saved["rng"][worker.rank]
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and worker.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], worker.device)


def _keep_configured(worker: PolicyState, configured: list[dict]) -> None:
    """The checkpoint gives the optimizer's moments and step counts and the schedule's position;
    this run's config gives the hyperparameters. ``set_optimizer_state_dict`` and the scheduler's
    ``load_state_dict`` restore the saved lr, betas, eps, weight decay and base LR, so a changed
    ``policy.optim.*`` would otherwise be ignored while config.yaml records it. With an unchanged
    config this recomputes the same values (a resume stays exact)."""
    sched = worker.scheduler
    for group, conf in zip(worker.optim.param_groups, configured):
        group.update(conf)  # lr is set below; initial_lr is the configured base LR
    sched.base_lrs = [g["initial_lr"] for g in worker.optim.param_groups]
    lrs = [base * fn(sched.last_epoch) for base, fn in zip(sched.base_lrs, sched.lr_lambdas)]  # LambdaLR
    for group, lr in zip(worker.optim.param_groups, lrs):
        group["lr"] = lr
    sched._last_lr = lrs
