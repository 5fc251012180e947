"""`funrl sft` on the transformers Qwen2-Audio family (a tiny random model with 4 s windows, the
synthesized corpus's clips being up to 3.6 s): cached features rebuild the processor's padded batch
exactly; the SFT loss equals the family model's own forward with labels on the target; SpecAugment
touches valid frames only; the loss falls on a fixed batch; through the real CLI, sft.trainable=[llm]
changes only the language model and its head, and the saved folders load in the family's own
class and processor and run under `funrl eval`; LoRA is merged into the save; funrl's CTC head reads
the pooled encoder output; a clip longer than the window is refused."""

from __future__ import annotations

import json

import pytest
import torch

from funrl.config import ConfigError, load_config
from tests.sft.steps import saved_weights as _weights, train_then_save


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from funrl.data.synth.corpus import synthesize_corpus

    out = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(out, n=30, seed=3)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from funrl.models.families.testing import build_qwen2_audio

    return build_qwen2_audio(tmp_path_factory.mktemp("qwen2_audio"), seed=0, seconds=4)


def _job(corpus, folder, tmp_path, overrides=(), log=lambda m: None):
    from funrl.sft.family import load_family_job

    torch.set_num_threads(1)
    cfg = load_config(None, [f"model.path={folder}", f"data.train_manifest={corpus}/train.jsonl",
                             f"sft.output_dir={tmp_path}", "sft.threads=1", "run.seed=0", *overrides])
    torch.manual_seed(0)
    return load_family_job(cfg, log=log)



IDX = [0, 1, 2, 3, 4]


def test_cached_features_rebuild_the_processors_batch(corpus, folder, tmp_path):
    job = _job(corpus, folder, tmp_path)
    rows = [job.train_set.utts[i].to_dict() for i in IDX]
    cached = job.batch(job.train_set, IDX)
    direct = job.adapter.on_model(job.adapter.prompt_inputs(rows))  # the processor's own padded batch
    assert len(set(job.train_set.lengths[i] for i in IDX)) > 1  # clips of different lengths
    assert cached["input_features"].shape == direct["input_features"].shape == (5, 80, 400)
    for key in ("input_ids", "attention_mask", "input_features", "feature_attention_mask"):
        assert torch.equal(cached[key], direct[key]), key
    assert all(f.shape[0] < 400 for f in job.train_set.feats)  # only what padding needs is kept
    with torch.no_grad():
        for a, b in zip(job.adapter.merge_audio(cached), job.adapter.prompt_embeds(rows)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def _reference_loss(adapter, utts) -> torch.Tensor:
    """CE mean over every target token of the batch, from the family model's own forward (one
    clip at a time, so no padding), labels -100 except on transcript + <|im_end|>."""
    from funrl.data.audio import load_audio

    proc, tok = adapter.processor, adapter.tokenizer
    rate = proc.feature_extractor.sampling_rate
    total, count = torch.zeros(()), 0
    for u in utts:
        x = proc(text=[adapter.prompt_text(u.to_dict())], audio=[load_audio(u.audio, rate)], sampling_rate=rate,
                 return_tensors="pt")
        target = tok(u.text, add_special_tokens=False).input_ids + [tok.convert_tokens_to_ids("<|im_end|>")]
        ids = torch.cat([x["input_ids"], torch.tensor([target])], dim=1)
        labels = torch.full_like(ids, -100)
        labels[0, -len(target):] = torch.tensor(target)
        out = adapter.model(input_ids=ids, attention_mask=torch.ones_like(ids), input_features=x["input_features"],
                            feature_attention_mask=x["feature_attention_mask"], labels=labels)
        total, count = total + out.loss * len(target), count + len(target)
    return total / count


def test_loss_equals_the_family_forward(corpus, folder, tmp_path):
    job = _job(corpus, folder, tmp_path, ["sft.ctc_weight=0"])
    job.train(False)  # dropout off
    with torch.no_grad():
        loss, m = job.loss(IDX, None, 0.0)
        ref = _reference_loss(job.adapter, [job.train_set.utts[i] for i in IDX])
    assert m["tokens"] > 20 and "ctc" not in m
    torch.testing.assert_close(loss, ref, rtol=0, atol=1e-5)


def test_spec_augment_masks_only_valid_frames(corpus, folder, tmp_path):
    job = _job(corpus, folder, tmp_path)
    assert job.bins == job.adapter.processor.feature_extractor.feature_size == 80  # one 80-bin frame per row
    clean = job.batch(job.train_set, IDX)
    masked = job.batch(job.train_set, IDX, torch.Generator().manual_seed(1))
    valid = clean["feature_attention_mask"].bool()[:, None, :].expand_as(clean["input_features"])  # [B, F, T]
    diff = clean["input_features"] != masked["input_features"]
    assert diff.any() and not (diff & ~valid).any()
    assert torch.equal(clean["input_ids"], masked["input_ids"])


def test_the_ctc_head_reads_the_pooled_encoder_and_the_loss_falls(corpus, folder, tmp_path):
    """Qwen2-Audio gets funrl's CTC head on the pooled audio-tower output (no note, no refusal): the
    batched CTC term equals one clip at a time (no padding), CE and CTC fall on a fixed batch, and
    sft.trainable=[ctc] trains the head alone."""
    import torch.nn.functional as F

    from funrl.models.prompt import target_ids

    notes = []
    job = _job(corpus, folder, tmp_path, log=notes.append)  # the defaults: ctc_weight 0.3, trainable ... ctc
    assert job.ctc_head is not None and not any("no CTC head" in n for n in notes)
    assert job.ctc_head.proj.in_features == job.adapter.model.config.audio_config.d_model
    job.train(False)
    with torch.no_grad():
        loss, m = job.loss(IDX, None, 0.3)
        ref = torch.zeros(())
        for i in IDX:  # the slow reference: one clip at a time
            u = job.train_set.utts[i]
            _, enc, n = job.adapter.encode(job.adapter.on_model(job.adapter.prompt_inputs([u.to_dict()])))
            ids = target_ids(job.adapter.tokenizer, u.text)[:-1]
            ref = ref + F.ctc_loss(job.ctc_head(enc).transpose(0, 1), torch.tensor([ids]), n, torch.tensor([len(ids)]),
                                   blank=job.ctc_head.blank, reduction="sum", zero_infinity=True)
    assert m["ctc"] == pytest.approx(float(ref) / len(IDX), rel=1e-4)
    assert m["loss"] == pytest.approx(m["ce"] + 0.3 * m["ctc"], rel=1e-5)
    job.train()
    opt = torch.optim.AdamW(job.params, lr=5e-3)
    first = last = None
    for _ in range(25):
        loss, m = job.loss([0, 1, 2, 3], None, 0.3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first, last = first or m, m
    assert last["ce"] < 0.5 * first["ce"] and last["ctc"] < 0.8 * first["ctc"]
    head_only = _job(corpus, folder, tmp_path, ["sft.trainable=[ctc]"])
    assert {id(p) for p in head_only.params} == {id(p) for p in head_only.ctc_head.parameters()}


def test_a_saved_qwen2_audio_folder_serves_hotword_rag_and_its_check(corpus, folder, tmp_path):
    """The head is saved beside the family folder; RAG's first pass is its best path, and
    ``funrl eval --hotwords rag --rag-check ctc`` runs on it."""
    from funrl.data.manifest import load_manifest
    from funrl.eval.cli import evaluate
    from funrl.hotwords.ctc import ctc_greedy_decode
    from funrl.hotwords.rag import RagContext
    from funrl.models.families import load_audio_llm

    out = tmp_path / "saved"
    train_then_save(_job(corpus, folder, tmp_path), out, steps=2, ctc_weight=0.3)
    assert (out / "ctc.safetensors").is_file() and (out / "ctc.json").is_file()
    terms = tmp_path / "hotwords.txt"
    terms.write_text("Netflix\nIngrid\n张伟\n", encoding="utf-8")
    model = load_audio_llm(out)
    rag = RagContext(model, out, terms)
    rows = [u.to_dict() for u in load_manifest(corpus / "train.jsonl")][:3]
    got = rag.first_pass(rows)
    for row, hyp in zip(rows, got):  # one clip at a time
        _, enc, n = model.encode(model.on_model(model.prompt_inputs([row])))
        with torch.no_grad():
            (ids,) = ctc_greedy_decode(rag.head(enc.float()), n, blank=rag.head.blank)
        assert hyp == model.tokenizer.decode(ids, skip_special_tokens=True)
    report, _ = evaluate(str(out), str(corpus / "dev.jsonl"), batch_size=4, max_new_tokens=8, n_boot=0,
                         hotwords="rag", hotword_list=str(terms), rag_check="ctc")
    assert report["rag"]["check"] == "ctc" and report["rag"]["keywords"] >= 0


def test_cli_trains_only_the_llm_and_saves_the_family_folder(corpus, folder, tmp_path):
    from transformers import Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

    from funrl.cli import main

    run = tmp_path / "run"
    assert main(["sft", f"model.path={folder}", f"data.train_manifest={corpus}/train.jsonl",
                 f"data.eval_manifest={corpus}/dev.jsonl", f"sft.output_dir={run}", "sft.trainable=[llm]",
                 "sft.max_steps=6", "sft.eval_every=3", "sft.log_every=1", "sft.batch_size=32", "sft.lr=3e-3",
                 "sft.warmup_steps=1", "sft.spec_augment=false", "sft.threads=1"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["event"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 7))  # the whole training set each step
    assert train[-1]["loss"] < train[0]["loss"]
    before, after = _weights(folder), _weights(run / "last")
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    frozen = [k for k in before if k.startswith(("audio_tower.", "multi_modal_projector."))]  # saved names
    assert frozen and not changed & set(frozen)
    assert any(k.startswith("language_model.model.") for k in changed) and "language_model.lm_head.weight" in changed
    for name in ("last", "best"):  # the family's own class and processor load it
        model = Qwen2AudioForConditionalGeneration.from_pretrained(str(run / name))
        proc = Qwen2AudioProcessor.from_pretrained(str(run / name))
        assert model.config.text_config.vocab_size == len(proc.tokenizer)
    report, hyps = tmp_path / "report.json", tmp_path / "hyps.jsonl"
    assert main(["eval", "--model", str(run / "best"), "--manifest", f"{corpus}/dev.jsonl", "--output", str(report),
                 "--hypotheses", str(hyps), "--bootstrap", "10", "--threads", "1"]) == 0
    assert json.loads(report.read_text())["utterances"] == 3
    evals = [r for r in rows if r["event"] == "eval"]
    best = min(evals, key=lambda r: r["dev_error_rate"])  # the first lowest: what best/ holds
    assert json.loads(hyps.read_text().splitlines()[0])["hypothesis"] == best["dev_example"]


def test_lora_trains_only_adapters_and_saves_merged(corpus, folder, tmp_path):
    from transformers import Qwen2AudioForConditionalGeneration

    job = _job(corpus, folder, tmp_path, ["sft.trainable=[llm]", "sft.lora.enabled=true", "sft.lora.r=2"])
    names = {n for n, p in job.lm.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names)
    out = tmp_path / "saved"
    init, saved = _weights(folder), train_then_save(job, out, steps=2, ctc_weight=0.0)
    assert saved.keys() == init.keys()
    q = "language_model.model.layers.0.self_attn.q_proj.weight"  # Qwen2-Audio's saved (checkpoint) names
    assert not torch.equal(saved[q], init[q])  # the trained adapter is merged into the saved weights
    assert all(torch.equal(saved[k], init[k]) for k in init if not k.startswith("language_model."))
    Qwen2AudioForConditionalGeneration.from_pretrained(str(out))


def test_a_clip_longer_than_the_window_is_refused(corpus, tmp_path):
    from funrl.models.families.testing import build_qwen2_audio

    short = build_qwen2_audio(tmp_path / "m2", seconds=2)  # the corpus has clips of 2-3.6 s
    with pytest.raises(ConfigError, match=r"longer than the 2 s audio window of qwen2_audio.*data.max_duration=2"):
        _job(corpus, short, tmp_path)
    job = _job(corpus, short, tmp_path, ["data.max_duration=2"])
    assert 0 < len(job.train_set) < 24
