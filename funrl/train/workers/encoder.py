"""Encoder role: audio → fbank → encoder → adaptor → Fun-ASR prompt embeddings.

Encoder and adaptor are frozen during GRPO (the report's RL stage trains the LLM), so the prompt
embeddings computed here are the ones the policy trains on: they travel to the rollout and policy
actors by reference through the Ray object store and are never recomputed.
"""

from __future__ import annotations

import torch

from funrl.train.workers.base import Worker
from funrl.train.workers.heap import limit_primitive_cache, release_free_heap


class EncoderWorker(Worker):
    """``prompt``: the run's ``model.prompt`` (a transformers family's wording; a funrl-format folder
    keeps the prompt it was saved with).

    Every call sees clips of new lengths, so each encode ends by handing the heap's free pages back
    (:func:`funrl.train.workers.heap.release_free_heap`): without it the actor's RSS grew by
    ~1.8 MiB a step on 3-29 s clips, heap holes glibc never returned. oneDNN's cache of
    primitives, one set per new input length, is kept small for the same reason."""

    def __init__(self, name: str, model_path: str, device: str = "cpu", torch_threads: int = 1, profile: bool = True,
                 prompt=None):
        limit_primitive_cache()  # before the first convolution (funrl.train.workers.heap)
        super().__init__(name, torch_threads, profile)
        from funrl.models.families import is_native, load_audio_llm

        self.home = torch.device(device)
        self.audio_llm = load_audio_llm(model_path, None if is_native(model_path) else prompt, device=self.home)
        self.model = self.audio_llm.model  # the whole torch module (moved off the device in sleep)
        self.model.eval().requires_grad_(False)

    @torch.inference_mode()
    def encode(self, samples: list[dict], step: int):
        """One ``[L_i, H]`` prompt embedding per sample, packed into one buffer for Ray
        (:class:`funrl.train.transport.PackedTensors`; :func:`funrl.train.workers.base.prompt_tensors`
        unpacks it)."""
        from funrl.train.transport import PackedTensors

        with self.rec.span("encode", step=step, prompts=len(samples)):
            embeds = self.audio_llm.prompt_embeds(samples)  # [B] of [L_i, H]
            packed = PackedTensors.pack([(str(i), e.float()) for i, e in enumerate(embeds)])
            del embeds  # the activations are gone too: their pages go back
            release_free_heap()
            return packed

    def audio_state(self) -> dict[str, torch.Tensor]:
        """The audio side's weights (encoder, adaptor, CTC head): tests check they never change in GRPO."""
        return self.audio_llm.audio_state()

    def sleep(self, step: int | None = None) -> dict | None:
        """GPU: move the model to host memory and empty the cache. CPU: nothing to free. Returns
        what is still held (:meth:`memory`)."""
        with self.rec.span("sleep", step=step):
            if self.home.type == "cuda":
                self.model.to("cpu")
                torch.cuda.empty_cache()
        return self.memory(self.home)

    def wake(self, step: int | None = None) -> dict | None:
        with self.rec.span("wake", step=step):
            if self.home.type == "cuda":
                self.model.to(self.home)
        return self.memory(self.home)

    def resident_tensors(self) -> list:
        return [*self.model.parameters(), *self.model.buffers()]
