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
                 prompt=None, cache_mib: float = 0.0, hotwords: str = "saved", hotword_list: str | None = None,
                 rag_k: int = 10, guide: str = "none", max_new_tokens: int = 64):
        limit_primitive_cache()  # before the first convolution (funrl.train.workers.heap)
        super().__init__(name, torch_threads, profile)
        from funrl.models.families import is_native, load_audio_llm

        self.home = torch.device(device)
        if hotwords != "saved" and prompt is not None:  # data.hotwords: the context the prompts carry
            import dataclasses

            prompt = dataclasses.replace(prompt, use_hotwords=hotwords != "none")
        self.audio_llm = load_audio_llm(model_path, None if is_native(model_path) else prompt, device=self.home)
        self.rag = None
        if hotwords == "rag":  # the report's hotword RAG: CTC first pass → retrieval → context
            from funrl.hotwords.rag import RagContext

            self.rag = RagContext(self.audio_llm, model_path, hotword_list, rag_k)
        self.guide, self.max_new_tokens, self.ctc = guide, max_new_tokens, None
        if guide == "ctc":  # algorithm.guide: the CTC head's transcript rides with the embeddings
            from funrl.models.families.ctc import load_ctc_head

            self.ctc = load_ctc_head(model_path)
            if self.ctc is None:
                raise ValueError(f"algorithm.guide=ctc: {model_path} has no CTC head (ctc.json, ctc.safetensors)")
            self.ctc = self.ctc.to(self.home).eval()
        self.guides: dict[str, tuple[list[int], str]] = {}  # row key -> guide, for the rows the cache holds
        self.model = self.audio_llm.model  # the whole torch module (moved off the device in sleep)
        self.model.eval().requires_grad_(False)
        self.cache = EmbedCache(int(cache_mib * (1 << 20)))

    @torch.inference_mode()
    def encode(self, samples: list[dict], step: int):
        """One ``[L_i, H]`` prompt embedding per sample, packed into one buffer for Ray
        (:class:`funrl.train.transport.PackedTensors`; :func:`funrl.train.workers.base.prompt_tensors`
        unpacks it)."""
        from funrl.train.transport import PackedTensors

        with self.rec.span("encode", step=step, prompts=len(samples)) as span:
            keys = [self.cache.key(s) for s in samples]
            found = [self.cache.get(k) for k in keys]
            todo = [i for i, e in enumerate(found) if e is None]
            if todo:
                rows = [samples[i] for i in todo]
                ctc_ids = None
                if self.rag is not None:  # hotwords retrieved for each row replace the manifest's (one encoder pass)
                    rows, new = self.rag.prompt_embeds(rows)
                    span.args["rag_terms"] = sum(len(r["hotwords"]) for r in rows)
                elif self.ctc is not None:  # the prompts and the CTC head's transcripts from one encoder pass
                    new, ctc_ids = self._embeds_and_ctc(rows)
                else:
                    new = self.audio_llm.prompt_embeds(rows)  # [misses] of [L_i, H]
                if self.guide != "none":
                    from funrl.train.guide import make_guides

                    ids, texts = make_guides(self.audio_llm.tokenizer, rows, self.guide, ctc_ids, self.max_new_tokens)
                    self.guides.update({keys[i]: g for i, g in zip(todo, zip(ids, texts))})
                for i, e in zip(todo, new):
                    found[i] = e.float()
                    self.cache.put(keys[i], found[i])
                del new  # the activations are gone too: their pages go back
            span.args.update(cache_hits=len(samples) - len(todo))
            named = [(str(i), e) for i, e in enumerate(found)]
            if self.guide != "none":
                from funrl.train.guide import guide_tensors

                got = [self.guides[k] for k in keys]
                named += guide_tensors([g[0] for g in got], [g[1] for g in got], self._end_id())
                if len(self.guides) > 2 * len(self.cache):  # kept only for the rows the cache still holds
                    self.guides = {k: g for k, g in self.guides.items() if k in self.cache.items}
            packed = PackedTensors.pack(named)
            del found
            release_free_heap()
            return packed

    def _embeds_and_ctc(self, rows: list[dict]) -> tuple[list[torch.Tensor], list[list[int]]]:
        """Prompt embeddings (as ``prompt_embeds``) and the CTC head's greedy token ids, one encoder pass."""
        from funrl.hotwords.ctc import ctc_greedy_decode

        a = self.audio_llm
        inputs = a.on_model(a.prompt_inputs(rows))
        audio, enc, lengths = a.encode(inputs)
        ids = ctc_greedy_decode(self.ctc(enc.float()), lengths, blank=self.ctc.blank)
        return a.merge_audio(inputs, audio), ids

    def _end_id(self) -> int:
        return self.audio_llm.tokenizer.convert_tokens_to_ids("<|im_end|>")

    def resident_tensors(self) -> list:
        return [*self.model.parameters(), *self.model.buffers(), *self.cache.values()]

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



class EmbedCache:
    """Prompt embeddings by manifest row, up to ``limit`` bytes, least recently used out first
    (``model.embed_cache_mib``; 0: off).

    Valid because the encoder and adaptor are frozen in GRPO and the audio is not augmented: a
    row's embedding is the same every epoch. The key is the whole row (id, audio path, reference,
    hotwords, language, ...), so anything that could change the prompt misses. An embedding is the
    one computed in the batch that first held the row; batching changes it only by float rounding
    (the families' tests hold batched and single clips to 1e-5)."""

    def __init__(self, limit: int):
        from collections import OrderedDict

        self.limit, self.used = limit, 0
        self.items: "OrderedDict[str, torch.Tensor]" = OrderedDict()

    @staticmethod
    def key(row: dict) -> str:
        import json

        return json.dumps({k: v for k, v in row.items() if k != "audio_bytes"}, sort_keys=True, default=str)

    def get(self, key: str):
        e = self.items.get(key)
        if e is not None:
            self.items.move_to_end(key)
        return e

    def put(self, key: str, e: torch.Tensor) -> None:
        size = e.numel() * e.element_size()
        if size > self.limit or key in self.items:
            return
        self.items[key] = e.clone()  # not a view into the batch it came from
        self.used += size
        while self.used > self.limit:
            _, old = self.items.popitem(last=False)
            self.used -= old.numel() * old.element_size()

    def values(self) -> list:
        return list(self.items.values())

    def __len__(self) -> int:
        return len(self.items)
