"""``funrl sft`` on a transformers family model (``model.path`` a family folder, or ``model.family``).

The same recipe as the funrl format (:mod:`funrl.sft.trainer`): CE on the assistant target through
:func:`funrl.policy.teacher_forcing.completion_logprobs` on the family's text LM
(:meth:`~funrl.models.families.base.FamilyAdapter.text_lm`, which shares the model's parameters),
plus ``ctc_weight`` x CTC from a head on the audio encoder output (:mod:`funrl.models.families.ctc`).
Prompts are the adapter's (the family's processor and merge), so SFT, rollout and eval see the
same prompt. Families: Fun-ASR-Nano and Qwen2-Audio.

Features: the family processor's output (input ids with the placeholders expanded, the feature
extractor's features) is computed once per utterance and kept in memory as the adapter's
time-major rows (:meth:`~funrl.models.families.base.FamilyAdapter.split_features`), then padded
per batch as the processor pads (ids on the left; features by the adapter's
:meth:`~funrl.models.families.base.FamilyAdapter.collate_features`: Fun-ASR-Nano's right-padded
to the longest clip, Qwen2-Audio's to its fixed window with the clip's own padding frames).
SpecAugment masks the valid frames only, in bands of the adapter's ``feature_bins`` mel bins
(Fun-ASR-Nano: 80, masked in each of its 7 stacked frames alike; Qwen2-Audio: its 128, or the
config's ``num_mel_bins``). A clip longer than the processor's window (Qwen2-Audio: 30 s) is
refused: the processor would cut its audio, and SFT would teach words the model never hears.

Parts (``sft.trainable``): ``encoder`` (``audio_tower``), ``adaptor`` (``multi_modal_projector``),
``llm`` (language model + LM head; with ``sft.lora.enabled`` only the LoRA weights), ``ctc``.
Checkpoints are the family's own folder (LoRA merged in) with ``ctc.safetensors`` beside it.

CTC: funrl's CTC head reads the encoder output the adapter's ``encode`` returns (``ctc_input_size``:
Fun-ASR-Nano's SAN-M encoder, Qwen2-Audio's pooled audio tower, before the projector). For a family
without one the loss is CE alone, whatever ``sft.ctc_weight`` says (its default is
0.3, so an error would refuse the plain command), the part ``ctc`` selects nothing, and the run's
log says so once; ``sft.trainable=[ctc]`` alone is refused (no parameters).
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from funrl.config import ConfigError

PARTS = ("encoder", "adaptor", "llm", "ctc")


@dataclass
class FamilyFeatureSet:
    utts: list  # [N] funrl.data.manifest.Utterance
    ids: list  # [N] long [L_i] prompt ids, audio placeholders expanded
    feats: list  # [N] float32 [T_i, F] the adapter's rows (split_features): valid frames first
    valid: list  # [N] int: valid frames of each row
    variants: dict = None  # sft.hotword_mix: mode -> [N] prompt ids with that hotword context
    stream: "FamilyFeatureSet | None" = None  # data.streaming: [N] streaming views (None: offline row)

    def __len__(self) -> int:
        return len(self.utts)

    @property
    def lengths(self) -> list[int]:
        return list(self.valid)


def read_utterances(manifest: str, log=print, max_duration: float | None = None) -> list:
    from funrl.data.config import filter_by_duration
    from funrl.data.manifest import load_manifest

    utts, dropped = filter_by_duration(load_manifest(manifest), max_duration)
    if dropped:
        log(f"features: left out {len(dropped)} utterances of {manifest} longer than data.max_duration={max_duration}s")
    if not utts:
        raise ValueError(f"{manifest}: the manifest has no utterances")
    return utts


def family_features(adapter, utts: Sequence[Any], log=print, name: str = "", contexts: dict | None = None
                    ) -> FamilyFeatureSet:
    """The processor's ids and features for every utterance, once. ``contexts``: mode -> (prompt
    config, [N] rows whose ``hotwords`` that mode shows): the prompt ids of each mode too
    (``sft.hotword_mix``)."""
    from funrl.data.audio import load_audio
    from funrl.streaming.training import cut_audio

    t0 = time.time()
    proc = adapter.processor
    rate = proc.feature_extractor.sampling_rate
    window, long = adapter.max_audio_seconds, []
    ids, feats, valid = [], [], []
    variants: dict[str, list] = {}
    for u in utts:
        row = u.to_dict() if hasattr(u, "to_dict") else u  # a streaming view is a dict
        wave = cut_audio(load_audio(row["audio"], rate), row, rate)
        if window is not None and len(wave) > window * rate:
            long.append((u, len(wave) / rate))
            continue
        x = proc(text=[adapter.full_prompt_text(row)], audio=[wave], sampling_rate=rate, return_tensors="pt")
        ids.append(x["input_ids"][0])
        for mode, (prompt, rows) in (contexts or {}).items():
            saved, adapter.prompt = adapter.prompt, prompt
            try:
                text = adapter.prompt_text(rows[len(ids) - 1])
            finally:
                adapter.prompt = saved
            variants.setdefault(mode, []).append(
                proc(text=[text], audio=[wave], sampling_rate=rate, return_tensors="pt")["input_ids"][0])
        (f, n), = adapter.split_features(x)
        feats.append(f)
        valid.append(n)
    if long:
        (u, sec), more = long[0], f" and {len(long) - 1} more" if len(long) > 1 else ""
        raise ConfigError(f"{name or 'manifest'}: clip {text_of(u, 'id')!r} lasts {sec:.1f} s{more}, longer than the "
                          f"{window:g} s audio window of {adapter.model_type}'s processor (it would cut the audio "
                          f"and SFT would teach words the model never hears); cut them, or leave them out "
                          f"(data.max_duration={window:g} does so for data.train_manifest)")
    log(f"features: {len(utts)} utterances{' from ' + name if name else ''} in {time.time() - t0:.1f}s")
    return FamilyFeatureSet(list(utts), ids, feats, valid, variants or None)


def text_of(u, key: str = "text"):
    """A field of a manifest :class:`~funrl.data.manifest.Utterance` or of a row dict (a streaming view)."""
    return u[key] if isinstance(u, dict) else getattr(u, key)


def collate(adapter, ids: Sequence[torch.Tensor], feats: Sequence[torch.Tensor], valid: Sequence[int]) -> dict:
    """A processor-style batch on the model's device: ids left-padded, features padded by the
    adapter (:meth:`~funrl.models.families.base.FamilyAdapter.collate_features`)."""
    pad = adapter.tokenizer.pad_token_id
    L = max(len(i) for i in ids)
    input_ids = torch.full((len(ids), L), pad, dtype=torch.long)
    attn = torch.zeros(len(ids), L, dtype=torch.long)
    for b, i in enumerate(ids):
        input_ids[b, L - len(i):], attn[b, L - len(i):] = i, 1
    return adapter.on_model({"input_ids": input_ids, "attention_mask": attn, **adapter.collate_features(feats, valid)})


def augment(x: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor, gen: torch.Generator, bins: int) -> torch.Tensor:
    """SpecAugment on ``x [B, T, k*bins]`` (``k`` stacked frames): viewed as ``[B, T*k, bins]``,
    so a band is masked in every stacked frame and a time span covers whole stacked rows."""
    from funrl.sft.data import spec_augment

    b, t, f = x.shape
    k = f // bins
    flat = spec_augment(x.reshape(b, t * k, bins), mask.sum(-1) * k, fill, gen)
    return flat.reshape(b, t, f)


def augment_rows(frames: Sequence[torch.Tensor], valid: Sequence[int], fill: torch.Tensor, gen: torch.Generator,
                 bins: int) -> list[torch.Tensor]:
    """:func:`augment` on the adapter's rows (``[T_i, F]``, the first ``valid[i]`` frames valid):
    only valid frames are masked; the rows' other frames (Qwen2-Audio's padding) stay as they are."""
    t = max(f.shape[0] for f in frames)
    x = torch.zeros(len(frames), t, frames[0].shape[1])
    mask = torch.zeros(len(frames), t, dtype=torch.long)
    for b, (f, n) in enumerate(zip(frames, valid)):
        x[b, : f.shape[0]], mask[b, :n] = f, 1
    x = augment(x, mask, fill, gen, bins)
    return [x[b, : f.shape[0]] for b, f in enumerate(frames)]


class FamilySft:
    """One family model under SFT: its adapter, text LM (LoRA-wrapped if asked), CTC head, parts."""

    def __init__(self, cfg, adapter, ctc_head, train: FamilyFeatureSet, dev: FamilyFeatureSet | None):
        self.cfg, self.adapter, self.ctc_head, self.train_set, self.dev = cfg, adapter, ctc_head, train, dev
        self.tok = adapter.tokenizer
        lm = adapter.text_lm()
        self.lora = bool(cfg.sft.lora.enabled)
        self.lm = cfg.sft.lora.wrap(lm) if self.lora else lm
        self.params = self._select(cfg.sft.trainable)
        self.bins = bins = adapter.feature_bins
        total = sum(f[:n].reshape(-1, bins).sum(0) for f, n in zip(train.feats, train.valid))  # [bins]
        count = sum(n * (f.shape[1] // bins) for f, n in zip(train.feats, train.valid))
        self.fill = total / count  # SpecAugment's fill: the mean of the valid frames

    @property
    def lengths(self) -> list[int]:
        return self.train_set.lengths

    # ------------------------------------------------------------------ parts

    def part(self, name: str) -> list[torch.nn.Module]:
        inner = self.adapter.model.model
        if name == "encoder":
            return [inner.audio_tower]
        if name == "adaptor":
            return [inner.multi_modal_projector]
        if name == "llm":
            return [self.lm]
        if name == "ctc":
            return [self.ctc_head] if self.ctc_head is not None else []
        raise ConfigError(f"sft.trainable: unknown part {name!r}; choose from {list(PARTS)}")

    def _select(self, trainable: Sequence[str]) -> list[torch.nn.Parameter]:
        bad = [p for p in trainable if p not in PARTS]
        if bad:
            raise ConfigError(f"sft.trainable: unknown part(s) {bad}; choose from {list(PARTS)}")
        for p in self.all_parameters():
            p.requires_grad = False
        for name in trainable:
            for mod in self.part(name):
                for n, p in mod.named_parameters():
                    p.requires_grad = not (name == "llm" and self.lora) or "lora_" in n
        params = [p for p in self.all_parameters() if p.requires_grad]
        if not params:
            raise ConfigError("sft.trainable selects no parameters; list at least one of encoder, adaptor, llm, ctc")
        return params

    def all_parameters(self) -> list[torch.nn.Parameter]:
        seen, out = set(), []
        mods = [self.adapter.model, self.lm] + ([self.ctc_head] if self.ctc_head is not None else [])
        for m in mods:
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def train(self, on: bool = True) -> None:
        for m in (self.adapter.model, self.lm, self.ctc_head):
            if m is not None:
                m.train(on)

    # ------------------------------------------------------------------ loss

    def batch(self, data: FamilyFeatureSet, idx: Sequence[int], gen: torch.Generator | None = None) -> dict:
        """Training batches (``gen`` given) draw each utterance's hotword context from
        ``sft.hotword_mix`` when the set has variants; evaluation uses the plain prompt."""
        return self.batch_and_texts(data, idx, gen)[0]

    def batch_and_texts(self, data: FamilyFeatureSet, idx: Sequence[int], gen: torch.Generator | None = None
                        ) -> tuple[dict, list[str], list[bool]]:
        """:meth:`batch`, the targets, and which items are streaming views (``data.streaming``: each
        training item is its view with probability ``p``)."""
        feats, valid = [data.feats[i] for i in idx], [data.valid[i] for i in idx]
        ids = [data.ids[i] for i in idx]
        texts = [text_of(data.utts[i]) for i in idx]
        if gen is not None and data.variants:
            modes = list(data.variants)
            w = torch.tensor([float(self.cfg.sft.hotword_mix[m]) for m in modes])
            pick = torch.multinomial(w, len(idx), replacement=True, generator=gen).tolist()
            ids = [data.variants[modes[k]][i] for k, i in zip(pick, idx)]
        streamed = [False] * len(idx)
        if gen is not None and data.stream is not None:
            p, st = float(self.cfg.data.streaming.p), data.stream
            draws = torch.rand(len(idx), generator=gen).tolist()
            for j, i in enumerate(idx):
                if draws[j] < p and st.ids[i] is not None:
                    feats[j], valid[j], ids[j], texts[j], streamed[j] = st.feats[i], st.valid[i], st.ids[i], text_of(st.utts[i]), True
        if gen is not None:
            feats = augment_rows(feats, valid, self.fill, gen, self.bins)
        return collate(self.adapter, ids, feats, valid), texts, streamed

    def loss(self, idx: Sequence[int], gen: torch.Generator | None, ctc_weight: float) -> tuple[torch.Tensor, dict]:
        """CE (+ ``ctc_weight`` x CTC) on the training utterances ``idx``; ``gen``: SpecAugment's RNG (None: off)."""
        inputs, texts, streamed = self.batch_and_texts(self.train_set, idx, gen)
        loss, m = family_loss(self, inputs, texts, ctc_weight, ctc_rows=[not s for s in streamed])
        if any(streamed):
            m["streaming_share"] = sum(streamed) / len(streamed)
        return loss, m

    # ------------------------------------------------------------------ eval and save

    def transcribe(self, data: FamilyFeatureSet, n: int, batch_size: int = 32, max_new_tokens: int = 64) -> list[str]:
        from funrl.rollout.generation import decode, generate
        from funrl.rollout.protocol import SamplingParams

        self.train(False)
        order = sorted(range(n), key=lambda i: data.valid[i])
        out: dict[int, str] = {}
        sp = SamplingParams(temperature=0, max_new_tokens=max_new_tokens, stop_token_ids=self.adapter.stop_token_ids)
        with torch.inference_mode():
            for s in range(0, n, batch_size):
                idx = order[s : s + batch_size]
                prompts = self.adapter.merge_audio(self.batch(data, idx))
                res = generate(self.lm, prompts, 1, sp, lean=False if self.lora else None)
                out.update(zip(idx, decode(self.tok, res.token_ids)))
        return [out[i] for i in range(n)]

    def evaluate(self, limit: int) -> dict:
        from funrl.eval.metrics import compute_metrics

        n = len(self.dev) if limit <= 0 else min(limit, len(self.dev))
        hyps = self.transcribe(self.dev, n)
        self.train(True)
        m = compute_metrics(hyps, self.dev.utts[:n], n_boot=0)
        return {"dev_error_rate": m["overall"]["error_rate"], "dev_hallucination_rate": m["hallucination_rate"],
                "dev_utterances": n, "dev_example": hyps[0] if hyps else ""}

    def save(self, folder: Path, dtype: str) -> None:
        """The family's own folder (LoRA merged into a copy), processor, and the CTC head beside it."""
        torch_dtype = getattr(torch, dtype)
        model = self.adapter.model
        if self.lora:
            model, lm = copy.deepcopy((self.adapter.model, self.lm))  # one deepcopy: the LM still shares the copy's modules
            lm.merge_and_unload()
        if torch_dtype != model.dtype:
            model = copy.deepcopy(model).to(torch_dtype) if model is self.adapter.model else model.to(torch_dtype)
        model.save_pretrained(str(folder))
        self.adapter.processor.save_pretrained(str(folder))
        if self.ctc_head is not None:
            self.ctc_head.save(folder, torch_dtype)


def family_loss(job: FamilySft, inputs: dict, texts: Sequence[str], ctc_weight: float,
                ctc_rows: Sequence[bool] | None = None) -> tuple[torch.Tensor, dict]:
    """``(loss, metrics)``: CE over target tokens (transcript + ``<|im_end|>``) via
    ``completion_logprobs`` on the text LM, plus ``ctc_weight`` x CTC (summed per utterance, mean
    over the rows in ``ctc_rows``, default all: a streaming view's target is not what its audio
    says from the start, so it has no CTC term)."""
    from funrl.models.prompt import target_ids
    from funrl.policy.teacher_forcing import completion_logprobs

    audio, enc, enc_len = job.adapter.encode(inputs)
    prompts = job.adapter.merge_audio(inputs, audio)
    tids = [target_ids(job.tok, t) for t in texts]
    lp, _, mask = completion_logprobs(job.lm, prompts, range(len(prompts)), tids, shared=False)  # [B, C]
    ce = -(lp * mask).sum() / mask.sum()
    metrics = {"ce": float(ce.detach()), "tokens": int(mask.sum())}
    loss = ce
    rows = [b for b in range(len(texts)) if ctc_rows is None or ctc_rows[b]]
    if ctc_weight > 0 and job.ctc_head is not None and rows:
        tgt = [tids[b][:-1] for b in rows]  # drop <|im_end|>
        flat = torch.tensor([t for ids in tgt for t in ids], dtype=torch.long)
        tlen = torch.tensor([len(ids) for ids in tgt], dtype=torch.long)
        sel = torch.tensor(rows, dtype=torch.long, device=enc.device)
        logp = job.ctc_head(enc.index_select(0, sel)).transpose(0, 1)  # [T, B', V+1]
        ctc = F.ctc_loss(logp, flat, enc_len.cpu()[sel.cpu()], tlen, blank=job.ctc_head.blank, reduction="sum",
                         zero_infinity=True) / len(rows)
        loss = ce + ctc_weight * ctc
        metrics["ctc"] = float(ctc.detach())
    metrics["loss"] = float(loss.detach())
    return loss, metrics


def hotword_contexts(cfg, adapter, path, utts: Sequence[Any], log=print) -> dict | None:
    """``sft.hotword_mix``: mode -> (prompt config, rows with that mode's hotwords), for
    :func:`family_features`. ``rag`` retrieves with the starting model's CTC head, once."""
    import dataclasses

    mix = {k: float(v) for k, v in (cfg.sft.hotword_mix or {}).items()}
    if not mix:
        return None
    bad = [k for k in mix if k not in ("none", "manifest", "rag")]
    if bad or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise ConfigError(f"sft.hotword_mix={mix}: keys none, manifest, rag with weights >= 0, not all 0")
    rows = [u.to_dict() for u in utts]
    on, off = dataclasses.replace(adapter.prompt, use_hotwords=True), dataclasses.replace(adapter.prompt, use_hotwords=False)
    out = {}
    for mode, w in mix.items():
        if w <= 0:
            continue
        if mode == "none":
            out[mode] = (off, rows)
        elif mode == "manifest":
            out[mode] = (on, rows)
        else:
            from funrl.errors import UserError
            from funrl.hotwords.rag import RagContext

            if not cfg.sft.hotword_list:
                raise ConfigError("sft.hotword_mix has rag: set sft.hotword_list=FILE (one term per line)")
            try:
                rag = RagContext(adapter, path, cfg.sft.hotword_list)
            except UserError as e:
                raise ConfigError(f"sft.hotword_mix has rag: {e}") from None
            t0, got = time.time(), []
            for s in range(0, len(rows), 32):
                got += rag(rows[s:s + 32])
            log(f"features: hotwords retrieved for {len(got)} utterances in {time.time() - t0:.1f}s "
                f"({sum(len(r['hotwords']) for r in got) / max(1, len(got)):.1f} terms each)")
            out[mode] = (on, got)
    return out


def streaming_features(cfg, adapter, train: FamilyFeatureSet, log=print) -> FamilyFeatureSet | None:
    """``data.streaming``: one streaming view per training utterance with word timings, its chunk
    drawn once (seeded by ``data.streaming.seed`` or ``run.seed``), with features of its own; a
    batch then takes an utterance's view with probability ``p`` (:meth:`FamilySft.batch_and_texts`).
    ``prefix: model``: the starting model's greedy decode of the audio up to the previous boundary."""
    import numpy as np

    from funrl.streaming.training import check_timed, n_chunks, streaming_view

    s = cfg.data.streaming
    if not s.enabled:
        return None
    rows = [u.to_dict() for u in train.utts]
    have = check_timed(train.utts, cfg.data.train_manifest, s, log)
    rng = np.random.default_rng([int(cfg.run.seed if s.seed is None else s.seed), 19])
    ks = {i: int(rng.integers(1, n_chunks(float(rows[i]["duration"]), s.chunk_s) + 1)) for i in have}
    prefixes = {}
    if s.prefix == "model":  # the starting model's own decode at the previous boundary, batched
        t0, todo = time.time(), [i for i in have if ks[i] > 1]
        for j in range(0, len(todo), 32):
            part = todo[j:j + 32]
            cut = [{**rows[i], "audio_end_s": (ks[i] - 1) * s.chunk_s} for i in part]
            prefixes.update(zip(part, adapter.transcribe(cut)))
        log(f"streaming: the starting model decoded {len(todo)} prefixes in {time.time() - t0:.1f}s")
    views = [streaming_view(rows[i], ks[i], s.chunk_s, adapter.tokenizer, int(s.rollback),
                            model_prefix=prefixes.get(i, "") if s.prefix == "model" else None) for i in have]
    feats = family_features(adapter, views, log, "streaming views")
    n = len(rows)
    full = FamilyFeatureSet([None] * n, [None] * n, [None] * n, [0] * n)
    for i, v, ids, f, k in zip(have, views, feats.ids, feats.feats, feats.valid):
        full.utts[i], full.ids[i], full.feats[i], full.valid[i] = v, ids, f, k
    return full


def load_family_job(cfg, log=print) -> FamilySft:
    """Build (``model.family``) or load (``model.path``) the family model, its CTC head and the
    features of the training and dev manifests."""
    from funrl.models.families import load_family
    from funrl.models.families.ctc import CtcHead, load_ctc_head
    from funrl.sft.family_build import build_family

    train_utts = read_utterances(cfg.data.require("train_manifest"), log, cfg.data.max_duration)
    path = cfg.model.path
    if not path:
        path = Path(cfg.sft.output_dir or Path(cfg.run.output_dir) / cfg.run.name) / "init"
        shutil.rmtree(path, ignore_errors=True)
        build_family(cfg.model, [u.text for u in train_utts], path)
    adapter = load_family(path, cfg.model.prompt)
    ctc = None
    if adapter.ctc_input_size is not None:
        ctc = load_ctc_head(path)
        if ctc is None and cfg.model.ctc:
            ctc = CtcHead(adapter.ctc_input_size, len(adapter.tokenizer))
    elif cfg.sft.ctc_weight > 0 or "ctc" in cfg.sft.trainable:
        log(f"model: funrl has no CTC head for {adapter.model_type}: the loss is CE alone "
            f"(sft.ctc_weight={cfg.sft.ctc_weight:g} unused) and the part 'ctc' selects nothing")
    n = sum(p.numel() for p in adapter.model.parameters()) + (sum(p.numel() for p in ctc.parameters()) if ctc else 0)
    log(f"model: {adapter.model_type} {'built' if not cfg.model.path else 'loaded from ' + str(path)}, "
        f"{n / 1e6:.2f}M parameters, vocabulary {len(adapter.tokenizer)}, CTC head {'yes' if ctc else 'no'}")
    train = family_features(adapter, train_utts, log, cfg.data.train_manifest, hotword_contexts(cfg, adapter, path,
                                                                                                 train_utts, log))
    train.stream = streaming_features(cfg, adapter, train, log)
    dev = None
    if cfg.data.eval_manifest:
        dev = family_features(adapter, read_utterances(cfg.data.eval_manifest, log), log, cfg.data.eval_manifest)
    return FamilySft(cfg, adapter, ctc, train, dev)
