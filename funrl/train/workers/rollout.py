"""Rollout role: G samples per prompt from prompt embeddings, through a rollout engine.

The engine is :class:`funrl.rollout.hf_engine.HFEngine` or
:class:`funrl.rollout.sglang_engine.SGLangEngine` (``rollout.engine``); both hold only the LLM
part of the model folder (``{model}/llm``). Completions are decoded here, next to the tokenizer,
so the reward pool receives text.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from funrl.rollout.config import RolloutConfig
from funrl.rollout.protocol import RolloutBatch, SamplingParams
from funrl.train.workers.base import Worker, prompt_tensors


def make_engine(cfg: RolloutConfig, llm_path: Path, device: str, seed: int = 0):
    if cfg.engine == "hf":
        from funrl.rollout.hf_engine import HFEngine

        return HFEngine(llm_path, device=device)
    if cfg.engine == "sglang":
        from funrl.rollout.sglang_engine import SGLangEngine

        return SGLangEngine(llm_path, cfg.sglang, seed=seed, bucket_bytes=cfg.bucket_bytes)
    raise ValueError(f"rollout.engine={cfg.engine!r}: expected 'hf' or 'sglang'")


class RolloutWorker(Worker):
    """``model_path``: the run's ``model.path``; the engine loads its text side as a plain
    causal-LM folder (:func:`funrl.models.families.text_lm_folder`), exported on this node into
    its scratch folder for ``run_name`` (:mod:`funrl.train.node_files`) when it is a family's."""

    def __init__(self, name: str, cfg: RolloutConfig, model_path: str, run_name: str = "funrl", device: str = "cpu",
                 torch_threads: int = 1, profile: bool = True, seed: int = 0):
        super().__init__(name, torch_threads, profile)
        from transformers import AutoConfig, AutoTokenizer

        from funrl.models.families import text_lm_folder
        from funrl.train.node_files import node_dir

        llm_path = text_lm_folder(model_path, node_dir(run_name))
        self.tokenizer = AutoTokenizer.from_pretrained(llm_path)
        self.engine = make_engine(cfg, llm_path, device, seed)
        self.device = device
        self.temperature = cfg.temperature
        eos = AutoConfig.from_pretrained(llm_path).eos_token_id  # the model's end-of-turn token(s)
        self.stop_ids = list(cfg.stop_token_ids) or ([eos] if isinstance(eos, int) else list(eos or []))
        if not self.stop_ids:
            self.stop_ids = [self.tokenizer.convert_tokens_to_ids("<|im_end|>")]

    def generate(self, prompt_embeds, n: int, sampling: SamplingParams, step: int, select: list[int] | None = None):
        """``n`` samples for each prompt (those at ``select`` only, when given); ``(batch, texts)``."""
        from funrl.rollout.generation import decode

        prompt_embeds = prompt_tensors(prompt_embeds)
        if select is not None:
            prompt_embeds = [prompt_embeds[i] for i in select]
        if not sampling.stop_token_ids:
            sampling.stop_token_ids = list(self.stop_ids)
        with self.rec.span("rollout", step=step, prompts=len(prompt_embeds)) as s:
            batch: RolloutBatch = self.engine.generate(prompt_embeds, n, sampling)
            s.args["tokens"] = batch.num_tokens
        return batch, decode(self.tokenizer, batch.token_ids)

    def generate_groups(self, prompt_embeds, n: int, sampling: SamplingParams, step: int,
                        select: list[int] | None = None):
        """:meth:`generate` handed back group by group as the engine finishes them (a Ray streaming
        generator: call with ``.options(num_returns="streaming")``): yields ``(prompts, batch,
        texts)``, ``prompts`` the step's prompt numbers (``select``'s, when given) of ``batch``'s
        rows, ``batch.prompt_index`` the same numbers. An engine without ``generate_groups``
        hands back the whole batch once, at the end."""
        from funrl.rollout.generation import GroupsDone, decode

        prompt_embeds = prompt_tensors(prompt_embeds)
        numbers = list(range(len(prompt_embeds))) if select is None else list(select)
        if select is not None:
            prompt_embeds = [prompt_embeds[i] for i in select]
        if not sampling.stop_token_ids:
            sampling.stop_token_ids = list(self.stop_ids)
        with self.rec.span("rollout", step=step, prompts=len(prompt_embeds)) as s:
            if hasattr(self.engine, "generate_groups"):
                parts = self.engine.generate_groups(prompt_embeds, n, sampling)
            else:
                batch = self.engine.generate(prompt_embeds, n, sampling)
                parts = [GroupsDone(list(range(len(prompt_embeds))), batch, -1)]
            tokens = 0
            for part in parts:
                b = part.batch
                b.prompt_index = [numbers[p] for p in b.prompt_index]
                tokens += b.num_tokens
                now = time.time()  # the moment the groups leave for the driver, in the trace
                self.rec.record("groups_done", now, now, step=step, groups=len(part.prompts), decode_step=part.step)
                yield [numbers[p] for p in part.prompts], b, decode(self.tokenizer, b.token_ids)
            s.args["tokens"] = tokens

    def update_weights(self, bucket, step: int | None = None, kind: str = "weights") -> int:
        """One bucket: a :class:`funrl.train.transport.ShmTable` (same node) or ``PackedTensors``.

        ``kind``: ``"weights"``, full tensors copied into the engine's parameters, or
        ``"adapter"``, LoRA parts the engine merges into its base (``engine.update_adapter``).
        The tensors are views into the sender's buffer: the engine copies them before returning.
        """
        if kind not in ("weights", "adapter"):
            raise ValueError(f"update_weights: kind must be 'weights' or 'adapter', got {kind!r}")
        named = bucket.tensors()
        with self.rec.span("weight_sync", step=step, tensors=len(named), kind=kind):
            (self.engine.update_adapter if kind == "adapter" else self.engine.update_weights)(named)
        return len(named)

    def sleep(self, step: int | None = None) -> dict | None:
        """Release the device (engine ``sleep``); returns what is still held (:meth:`memory`)."""
        with self.rec.span("sleep", step=step):
            self.engine.sleep()
        return self.memory(self.device)

    def wake(self, step: int | None = None) -> dict | None:
        with self.rec.span("wake", step=step):
            self.engine.wake()
        return self.memory(self.device)

    def memory(self, device) -> dict[str, int] | None:
        """The engine's own report when it has one (SGLang: its processes' device memory, or None
        where that cannot be measured), else this process's (:meth:`Worker.memory`)."""
        if hasattr(self.engine, "memory"):
            return self.engine.memory()
        return super().memory(device)

    def resident_tensors(self) -> list:
        """HF engine: its weights and the LoRA base copies it merges into (no KV cache outlives a call)."""
        model = getattr(self.engine, "model", None)
        if model is None:
            return []
        return [*model.parameters(), *model.buffers(), *getattr(self.engine, "_base", {}).values()]

    def score(self, embeds, completions: list[list[int]], prompt_index: list[int]) -> list[torch.Tensor]:
        """Log-probs of given completions under the engine's weights (HF engine; tests, debugging)."""
        from funrl.policy.teacher_forcing import completion_logprobs

        if not hasattr(self.engine, "model"):
            raise RuntimeError(f"score() needs the HF engine's in-process model; {type(self.engine).__name__} has none")
        weight = self.engine.model.get_input_embeddings().weight
        embeds = [e.to(weight.device, weight.dtype) for e in prompt_tensors(embeds)]
        with torch.inference_mode():
            lp, _, _ = completion_logprobs(self.engine.model, embeds, prompt_index, completions,
                                           temperature=self.temperature, shared=False)
        return [lp[i, : len(c)] for i, c in enumerate(completions)]

    def shutdown(self) -> None:
        if hasattr(self.engine, "shutdown"):
            self.engine.shutdown()
