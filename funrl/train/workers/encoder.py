"""Encoder role: audio → fbank → encoder → adaptor → Fun-ASR prompt embeddings.

Encoder and adaptor are frozen during GRPO (the report's RL stage trains the LLM), so the prompt
embeddings computed here are the ones the policy trains on: they travel to the rollout and policy
actors by reference through the Ray object store and are never recomputed.
"""

from __future__ import annotations

import torch

from funrl.train.workers.base import Worker


class EncoderWorker(Worker):
    def __init__(self, name: str, model_path: str, device: str = "cpu", torch_threads: int = 1, profile: bool = True):
        super().__init__(name, torch_threads, profile)
        from funrl.data.audio import load_audio
        from funrl.data.features import FbankExtractor
        from funrl.models.io import load_pretrained

        self.model, self.tokenizer = load_pretrained(model_path)
        self.model.eval().requires_grad_(False)
        self.home = torch.device(device)
        self.fbank = FbankExtractor(num_mel_bins=self.model.cfg.encoder.num_mel_bins)
        self._load_audio = load_audio

    @torch.inference_mode()
    def encode(self, samples: list[dict], step: int):
        """One ``[L_i, H]`` prompt embedding per sample, packed into one buffer for Ray
        (:class:`funrl.train.transport.PackedTensors`; :func:`funrl.train.workers.base.prompt_tensors`
        unpacks it)."""
        from funrl.data.features import collate
        from funrl.models.prompt import build_prompt_embeds
        from funrl.train.transport import PackedTensors

        with self.rec.span("encode", step=step, prompts=len(samples)):
            feats = [self.fbank(self._load_audio(s["audio"])) for s in samples]
            x, lens = collate(feats)
            speech = self.model.encode_audio(x.to(self.home), lens.to(self.home))
            prompts = build_prompt_embeds(self.model, self.tokenizer, speech, samples)
            return PackedTensors.pack([(str(i), e.float()) for i, e in enumerate(prompts.embeds)])

    def audio_state(self) -> dict[str, torch.Tensor]:
        """The encoder/adaptor/CTC weights (tests check they never change during GRPO)."""
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items() if not k.startswith("llm.")}

    def sleep(self, step: int | None = None) -> None:
        """GPU: move the model to host memory and empty the cache. CPU: nothing to free."""
        with self.rec.span("sleep", step=step):
            if self.home.type == "cuda":
                self.model.to("cpu")
                torch.cuda.empty_cache()

    def wake(self, step: int | None = None) -> None:
        with self.rec.span("wake", step=step):
            if self.home.type == "cuda":
                self.model.to(self.home)
