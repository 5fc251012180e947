"""The SGLang rollout engine: SGLang's offline ``Engine`` behind funrl's rollout protocol.

Runs in the separate SGLang environment (``bash rollout/sglang_env.sh``), on GPU in production and
on CPU in the test suite. What it does with SGLang 0.5.23, and why:

- **Prompt embeddings.** ``Engine.generate`` takes no ``input_embeds``, so a
  ``GenerateReqInput(input_embeds=...)`` goes straight to the engine's tokenizer manager, the way
  ``Engine.generate`` itself forwards token ids. SGLang refuses embeddings with the radix cache on,
  so the engine always starts with ``disable_radix_cache=True``.
- **n samples, prompt-major.** Each prompt is repeated ``n`` times in the request (rows
  ``p0s0, p0s1, p1s0 …``) with ``n=1`` each, rather than SGLang's own ``n``: SGLang's parallel
  sampling sends an extra prefill-only request per prompt to warm a prefix cache that is disabled
  here. SGLang honours a sampling seed only in its deterministic-inference mode
  (``rollout.sglang.deterministic=true``; GPU attention backends only, not torch_native on CPU):
  there row ``i`` samples with ``seed + i`` so the ``n`` copies differ. Otherwise a ``seed`` is
  not applied, and the engine says so once in a warning.
- **Stops.** Besides ``stop_token_ids``, SGLang always stops on the model's own EOS (its config
  and tokenizer); ``ignore_eos`` would switch off both. The stop token is part of the completion
  and has a log-prob. ``finish_reason`` is ``"stop"`` or ``"length"``.
- **Log-probs.** SGLang's default sampler returns log softmax(logits / temperature) before top-p /
  top-k truncation (greedy: of the raw logits): the protocol's quantity.
- **Weight sync.** ``update_weights_from_tensor`` in buckets of ``rollout.bucket_mb`` (cast to the engine
  dtype first, so a bucket is what crosses the process boundary), inside ``begin_weight_update()``
  / ``end_weight_update()`` (required in 0.5.23), the KV cache flushed once at the end. If SGLang
  refuses the first bucket, or ``weight_sync="disk"``, the weights go through safetensors shards
  in a temporary folder and ``update_weights_from_disk`` instead. Tensors are copied out of the
  sender's shared-memory region first (they are views into it, valid only during the call).
- **LoRA: merged here, not SGLang's LoRA.** ``update_adapter`` takes the adapter only (A, B,
  scaling per layer), computes ``W0 + scaling * (B @ A)`` in this (the rollout actor's) process
  with the policy's formula (``funrl.rollout.lora_merge``; ``W0`` read once from the model folder,
  kept in host memory in its stored dtype) and pushes only those target weights with
  ``update_weights_from_tensor``. SGLang 0.5.23 can load an adapter from tensors
  (``load_lora_adapter_from_tensors`` with ``enable_lora``, a torch-native LoRA backend besides
  the Triton/CUDA ones), but then every decode step runs the LoRA matmuls, the engine's weights
  are no longer those the merged policy scores with, and requests must name the adapter; funrl
  keeps plain merged weights in SGLang instead. The merged path is logged once per engine.
- **sleep / wake** call ``release_memory_occupation`` / ``resume_memory_occupation`` on GPU only.
  On CPU both are logged no-ops: in 0.5.23 the scheduler dies on ``torch.cuda.synchronize()``
  there, and the engine's handler then kills the calling process tree.
- **CPU.** ``SGLANG_USE_CPU_ENGINE=1``, ``attention_backend="torch_native"``, no CUDA graphs, no
  server warm-up, a small KV cache, and ``OMP_NUM_THREADS=cpu_threads`` (1) for SGLang's processes
  (more OpenMP threads than free cores spin against each other, far slower on a shared 2-core
  machine). PyPI's sgl-kernel is a CUDA build, so where no NVIDIA driver
  is installed a stand-in ``libcuda.so.1`` (``funrl.rollout.cuda_stub``) is built and preloaded.

SGLang starts its scheduler with the ``spawn`` start method: a script that builds this engine
needs an ``if __name__ == "__main__":`` guard. ``shutdown()`` (SGLang's) kills every child
process of the calling process, not only SGLang's.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from funrl.rollout.config import SGLangConfig
from funrl.rollout.protocol import RolloutBatch, SamplingParams

log = logging.getLogger(__name__)

CPU_MAX_TOTAL_TOKENS = 8192  # KV-cache tokens on CPU when the config leaves it unset
_WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth")


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def engine_kwargs(model_path: str, cfg: SGLangConfig, seed: int = 0) -> dict[str, Any]:
    """The ``sglang.Engine`` keyword arguments for ``cfg`` (device resolved, CPU settings applied)."""
    device = _resolve_device(cfg.device)
    kw: dict[str, Any] = dict(
        model_path=str(model_path),
        device=device,
        dtype=cfg.dtype,
        disable_radix_cache=True,  # required for input_embeds
        skip_server_warmup=True,
        random_seed=seed,
        log_level=cfg.log_level,
    )
    if cfg.deterministic:
        kw["enable_deterministic_inference"] = True
    if cfg.context_length is not None:
        kw["context_length"] = cfg.context_length
    if cfg.max_total_tokens is not None:
        kw["max_total_tokens"] = cfg.max_total_tokens
    if device == "cpu":
        kw.update(attention_backend=cfg.attention_backend or "torch_native", disable_cuda_graph=True)
        kw.setdefault("max_total_tokens", CPU_MAX_TOTAL_TOKENS)
    else:
        kw.update(mem_fraction_static=cfg.mem_fraction, enable_memory_saver=cfg.enable_memory_saver)
        if cfg.attention_backend:
            kw["attention_backend"] = cfg.attention_backend
    kw.update(cfg.engine_kwargs)
    return kw


def start_sglang(kwargs: dict[str, Any], cpu_threads: int | None = None):
    """Start ``sglang.Engine(**kwargs)``; on CPU set the env var and the libcuda stand-in first.

    ``cpu_threads`` sets ``OMP_NUM_THREADS`` for SGLang's spawned processes only (restored after).
    """
    saved = os.environ.get("OMP_NUM_THREADS")
    if kwargs.get("device") == "cpu":
        os.environ["SGLANG_USE_CPU_ENGINE"] = "1"
        if cpu_threads:
            os.environ["OMP_NUM_THREADS"] = str(cpu_threads)
        from funrl.rollout.cuda_stub import ensure_cuda_stub

        ensure_cuda_stub()
    try:
        import sglang
    except ImportError as e:
        raise ImportError(
            f"sglang is not importable in this Python ({e}). The SGLang engine runs in its own "
            "environment: build it with `bash rollout/sglang_env.sh` and run under the python it prints"
        ) from None
    try:
        return sglang.Engine(**kwargs)
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved


def iter_buckets(named_tensors: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int,
                 dtype: torch.dtype | None = None) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Group ``(name, tensor)`` pairs into lists of at most ``bucket_bytes`` (a larger tensor alone).

    Floating-point tensors are cast to ``dtype`` (the engine's) first, so sizes are what is sent.
    """
    from funrl.policy.weights import buckets

    def cast() -> Iterator[tuple[str, torch.Tensor]]:
        for name, t in named_tensors:  # always a copy: t may be a view into the sender's shared memory
            t = t.detach()
            to = dtype if dtype is not None and t.is_floating_point() else t.dtype
            yield name, t.to(to, memory_format=torch.contiguous_format, copy=True)

    yield from buckets(cast(), bucket_bytes)


class SGLangEngine:
    """A :class:`funrl.rollout.protocol.RolloutEngine` backed by ``sglang.Engine``.

    >>> engine = SGLangEngine("path/to/llm", SGLangConfig(device="cpu"))     # doctest: +SKIP
    >>> batch = engine.generate([embeds], n=4, sampling=SamplingParams())    # doctest: +SKIP
    """

    def __init__(self, model_path: str | os.PathLike, cfg: SGLangConfig | None = None, seed: int = 0,
                 bucket_bytes: int = 512 << 20):
        self.cfg = cfg or SGLangConfig()
        self.bucket_bytes = bucket_bytes  # rollout.bucket_mb
        if self.cfg.weight_sync not in ("tensor", "disk"):
            raise ValueError(f"rollout.sglang.weight_sync: expected 'tensor' or 'disk', got {self.cfg.weight_sync!r}")
        self.model_path = Path(model_path)
        if not (self.model_path / "config.json").is_file():
            raise FileNotFoundError(
                f"{self.model_path}: no config.json; the SGLang engine needs a Hugging Face causal-LM "
                "folder (config.json, weights, tokenizer), e.g. the `llm/` folder of a funrl model"
            )
        self.kwargs = engine_kwargs(str(self.model_path), self.cfg, seed)
        self.device = self.kwargs["device"]
        self.dtype = getattr(torch, self.cfg.dtype) if self.cfg.dtype != "auto" else None
        t0 = time.perf_counter()
        self.engine = start_sglang(self.kwargs, self.cfg.cpu_threads)
        self.start_s = time.perf_counter() - t0
        self.hidden_size = self.engine.tokenizer_manager.model_config.hidden_size
        self.asleep = False
        self._warned_seed = False
        log.info("SGLang engine on %s started in %.1f s (%s)", self.device, self.start_s, self.model_path)

    # ------------------------------------------------------------------------------ generation

    def _request_params(self, sampling: SamplingParams, row: int) -> dict[str, Any]:
        params: dict[str, Any] = dict(
            temperature=float(sampling.temperature),
            top_p=float(sampling.top_p),
            top_k=int(sampling.top_k),
            max_new_tokens=int(sampling.max_new_tokens),
        )
        if sampling.stop_token_ids:
            params["stop_token_ids"] = [int(t) for t in sampling.stop_token_ids]
        if sampling.seed is not None and self.cfg.deterministic:
            params["sampling_seed"] = int(sampling.seed) + row
        elif sampling.seed is not None and not self._warned_seed:
            # warnings, not logging: SGLang sets the process's log level to its own (error by default).
            warnings.warn(f"SGLangEngine: SamplingParams.seed={sampling.seed} is not applied: SGLang honours "
                          "seeds only with rollout.sglang.deterministic=true (GPU attention backends)",
                          RuntimeWarning, stacklevel=3)
            self._warned_seed = True
        return params

    def _check_embeds(self, prompt_embeds: list[torch.Tensor]) -> None:
        for i, e in enumerate(prompt_embeds):
            if e.dim() != 2 or e.shape[1] != self.hidden_size or e.shape[0] == 0:
                raise ValueError(
                    f"prompt_embeds[{i}]: expected a [L, {self.hidden_size}] tensor with L > 0 "
                    f"(the LLM's hidden size), got shape {tuple(e.shape)}"
                )

    def generate_raw(self, input_embeds: list[list[list[float]]], params: list[dict[str, Any]]) -> list[dict]:
        """One request through the tokenizer manager: SGLang's own output dicts, in input order."""
        from sglang.srt.managers.io_struct import GenerateReqInput

        obj = GenerateReqInput(input_embeds=input_embeds, sampling_params=params, return_logprob=True)
        gen = self.engine.tokenizer_manager.generate_request(obj, None)
        out = self.engine.loop.run_until_complete(gen.__anext__())
        return out if isinstance(out, list) else [out]

    def generate(self, prompt_embeds: list[torch.Tensor], n: int, sampling: SamplingParams) -> RolloutBatch:
        """``n`` completions per ``[L_i, H]`` prompt embedding, prompt-major, with log-probs."""
        if self.asleep:
            raise RuntimeError("SGLangEngine.generate called while asleep; call wake() first")
        if n < 1 or not prompt_embeds:
            raise ValueError(f"generate: expected n >= 1 and at least one prompt, got n={n}, {len(prompt_embeds)} prompts")
        self._check_embeds(prompt_embeds)
        t0 = time.perf_counter()
        lists = [e.detach().float().cpu().tolist() for e in prompt_embeds]
        prompt_index = [p for p in range(len(lists)) for _ in range(n)]
        embeds = [lists[p] for p in prompt_index]
        params = [self._request_params(sampling, row) for row in range(len(embeds))]
        outs = self.generate_raw(embeds, params)
        batch = self._to_batch(outs, prompt_index)
        batch.meta.update(engine="sglang", device=self.device, generate_s=time.perf_counter() - t0)
        return batch

    def generate_groups(self, prompt_embeds: list[torch.Tensor], n: int, sampling: SamplingParams):
        """:meth:`generate` as :class:`funrl.rollout.generation.GroupsDone` hand-backs
        (``rollout.reward_overlap_groups``): one request per prompt's group, all sent at once (SGLang's
        scheduler batches them as it batches one request's rows), each group handed back as soon as
        its request completes. Rows sample with the seeds :meth:`generate` gives them."""
        import asyncio

        from sglang.srt.managers.io_struct import GenerateReqInput

        from funrl.rollout.generation import GroupsDone

        if self.asleep:
            raise RuntimeError("SGLangEngine.generate_groups called while asleep; call wake() first")
        if n < 1 or not prompt_embeds:
            raise ValueError(f"generate: expected n >= 1 and at least one prompt, got n={n}, {len(prompt_embeds)} prompts")
        self._check_embeds(prompt_embeds)
        loop, manager = self.engine.loop, self.engine.tokenizer_manager

        async def group(p: int, embeds: list) -> tuple[int, list]:
            obj = GenerateReqInput(input_embeds=[embeds] * n, return_logprob=True,
                                   sampling_params=[self._request_params(sampling, p * n + j) for j in range(n)])
            out = await manager.generate_request(obj, None).__anext__()
            return p, out if isinstance(out, list) else [out]

        pending = {loop.create_task(group(p, e.detach().float().cpu().tolist())) for p, e in enumerate(prompt_embeds)}
        try:
            while pending:
                done, pending = loop.run_until_complete(asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED))
                got = sorted(t.result() for t in done)  # raises the first failed request's error
                prompts = [p for p, _ in got]
                batch = self._to_batch([o for _, outs in got for o in outs], [p for p in prompts for _ in range(n)])
                batch.meta.update(engine="sglang", device=self.device)
                yield GroupsDone(prompts, batch, -1)
        finally:  # an error, or a caller that stopped reading: no request left running
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    @staticmethod
    def _to_batch(outs: list[dict], prompt_index: list[int]) -> RolloutBatch:
        token_ids, logprobs, reasons = [], [], []
        for row, out in enumerate(outs):
            meta = out["meta_info"]
            pairs = meta["output_token_logprobs"]  # [(logprob, token_id, text-or-None), ...]
            ids = [int(p[1]) for p in pairs]
            if list(out.get("output_ids", ids)) != ids:
                raise RuntimeError(f"SGLang row {row}: output_ids and output_token_logprobs disagree")
            reason = (meta.get("finish_reason") or {}).get("type")
            if reason not in ("stop", "length"):
                raise RuntimeError(f"SGLang row {row}: unexpected finish_reason {meta.get('finish_reason')!r}")
            token_ids.append(ids)
            logprobs.append([float(p[0]) for p in pairs])
            reasons.append(reason)
        return RolloutBatch(token_ids, logprobs, reasons, prompt_index)

    # ------------------------------------------------------------------------------ weight sync

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load full HF-named LLM weights: bucketed in memory, or through disk (see module doc)."""
        t0 = time.perf_counter()
        buckets = iter_buckets(named_tensors, self.bucket_bytes, self.dtype)
        if self.cfg.weight_sync == "disk":
            self._update_from_disk(buckets)
        else:
            self._update_from_tensors(buckets)
        self.last_sync_s = time.perf_counter() - t0
        log.info("weight sync (%s) took %.2f s", self.cfg.weight_sync, self.last_sync_s)

    def update_adapter(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """LoRA parts (``{module}.lora_A/lora_B/lora_scaling``): merged here, pushed as full target weights."""
        if not getattr(self, "_adapter", None):
            from funrl.rollout.lora_merge import AdapterParts

            self._adapter, self._base = AdapterParts(), {}
            log.warning("SGLang engine: LoRA sync merges the adapter in the rollout actor and pushes only the "
                        "target weights with update_weights_from_tensor (SGLang's own LoRA is not used)")
        from funrl.rollout.lora_merge import lora_delta

        merged = []
        for prefix, parts in self._adapter.add(named_tensors):
            w0 = self._base_weight(f"{prefix}.weight")
            delta = lora_delta(parts, tuple(w0.shape), "cpu")  # [out, in]
            merged.append((f"{prefix}.weight", w0.to(delta.dtype) + delta))
        if merged:
            self.update_weights(merged)

    def _base_weight(self, name: str) -> torch.Tensor:
        """``name`` as stored in the model folder the engine loaded (read once, kept on the host)."""
        if name not in self._base:
            from safetensors import safe_open

            if not hasattr(self, "_where"):  # tensor name -> safetensors file, built once
                self._where = {}
                for f in sorted(self.model_path.glob("*.safetensors")):
                    with safe_open(str(f), framework="pt", device="cpu") as st:
                        self._where.update(dict.fromkeys(st.keys(), f))
            if name not in self._where:
                raise KeyError(f"update_adapter: {name} is in no *.safetensors file of {self.model_path}")
            with safe_open(str(self._where[name]), framework="pt", device="cpu") as st:
                self._base[name] = st.get_tensor(name)
        return self._base[name]

    def _update_from_tensors(self, buckets: Iterator[list[tuple[str, torch.Tensor]]]) -> None:
        first = next(buckets, None)
        if first is None:
            return
        self.engine.begin_weight_update()
        try:
            ok, msg = self.engine.update_weights_from_tensor(first, flush_cache=False)[:2]
            for bucket in buckets if ok else ():
                ok, msg = self.engine.update_weights_from_tensor(bucket, flush_cache=False)[:2]
                if not ok:
                    raise RuntimeError(
                        f"SGLang update_weights_from_tensor failed after earlier buckets loaded: {msg}. The "
                        "engine now holds mixed weights; push again, or set rollout.sglang.weight_sync=disk"
                    )
        finally:
            self.engine.end_weight_update()
        if not ok:  # refused from the start, nothing loaded: take the disk path for the whole push
            log.warning("update_weights_from_tensor refused the first bucket (%s); "
                        "falling back to update_weights_from_disk", msg)
            self._update_from_disk(itertools.chain([first], buckets))
            return
        self.engine.flush_cache()

    def _update_from_disk(self, buckets: Iterable[list[tuple[str, torch.Tensor]]]) -> None:
        from safetensors.torch import save_file

        folder = Path(tempfile.mkdtemp(prefix="funrl-sglang-weights-"))
        try:
            weight_map = {}
            for k, bucket in enumerate(buckets):
                shard = f"model-{k:05d}.safetensors"
                save_file({n: t.cpu() for n, t in bucket}, str(folder / shard))
                weight_map.update({n: shard for n, _ in bucket})
            (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
            for f in self.model_path.iterdir():  # config and tokenizer files beside the shards
                if f.is_file() and not f.name.endswith(_WEIGHT_FILES) and not f.name.endswith(".index.json"):
                    shutil.copy(f, folder / f.name)
            ok, msg = self.engine.update_weights_from_disk(str(folder))[:2]
            if not ok:
                raise RuntimeError(f"SGLang update_weights_from_disk({folder}) failed: {msg}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.engine.flush_cache()

    # ------------------------------------------------------------------------------ memory

    def sleep(self) -> None:
        """GPU: release weights and KV cache. CPU: a logged no-op (see module docstring)."""
        if self.device == "cpu":
            log.info("SGLangEngine.sleep: no-op on CPU (SGLang 0.5.23's release_memory_occupation "
                     "calls torch.cuda.synchronize() and kills the process tree without a GPU)")
        else:
            self.engine.release_memory_occupation()
        self.asleep = True

    def wake(self) -> None:
        if self.device == "cpu":
            log.info("SGLangEngine.wake: no-op on CPU (nothing was released)")
        else:
            self.engine.resume_memory_occupation()
        self.asleep = False

    def memory(self) -> dict[str, int] | None:
        """Device memory of SGLang's processes (its scheduler holds the weights and KV cache), as
        NVML sees it: ``{"allocated", "reserved"}`` both that figure. None on CPU (the weights
        live in the scheduler process, whose tensors this process cannot walk) or without NVML."""
        if self.device == "cpu":
            return None
        import psutil

        from funrl.train.ownership import nvml_bytes

        me = psutil.Process()
        used = nvml_bytes([me.pid, *(c.pid for c in me.children(recursive=True))])
        return None if used is None else {"allocated": used, "reserved": used}

    def shutdown(self) -> None:
        """Stop SGLang's processes (idempotent)."""
        if getattr(self, "engine", None) is not None:
            self.engine.shutdown()
            self.engine = None

    def __enter__(self) -> "SGLangEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
