"""Trained text-LM weights go back into the family model and out in the family's own format; funrl's
greedy transcripts equal the family model's own generate-and-decode."""

from __future__ import annotations

import pytest
import torch

NEW = 10


def own_transcripts(adapter, rows) -> list[str]:
    """The family's own ``generate`` and the processor's decode (special tokens dropped)."""
    inputs = adapter.prompt_inputs(rows)
    with torch.inference_mode():
        out = adapter.model.generate(**inputs, do_sample=False, max_new_tokens=NEW,
                                     eos_token_id=adapter.stop_token_ids, pad_token_id=adapter.tokenizer.pad_token_id)
    new = out[:, inputs["input_ids"].shape[1]:]
    return [t.strip() for t in adapter.processor.batch_decode(new, skip_special_tokens=True)]


def test_transcripts_equal_the_models_generate_and_decode(family, rows):
    ours = family.transcribe(rows, max_new_tokens=NEW)
    assert ours == own_transcripts(family, rows)
    assert all(ours) and ours[0] != ours[1]


def test_trained_text_lm_weights_export_in_the_family_format(family, rows, tmp_path):
    from funrl.models.families import load_family

    original = {n: t.detach().clone() for n, t in family.text_lm().state_dict().items()}
    trained = {n: t.clone() for n, t in original.items()}
    g = torch.Generator().manual_seed(0)
    for name in ("model.layers.0.mlp.down_proj.weight", "model.norm.weight"):
        trained[name] += 0.5 * torch.randn(trained[name].shape, generator=g)
    before = family.transcribe(rows, max_new_tokens=NEW)
    frozen = {n: p.detach().clone() for n, p in family.model.named_parameters() if "language_model" not in n}
    try:
        family.load_text_lm_weights(trained.items())
        after = family.transcribe(rows, max_new_tokens=NEW)
        family.save(tmp_path)
        for n, p in family.model.named_parameters():  # the audio side is untouched
            if n in frozen:
                assert torch.equal(p, frozen[n]), n
    finally:  # the fixture is shared by the session
        family.load_text_lm_weights(original.items())
    assert family.transcribe(rows, max_new_tokens=NEW) == before
    assert after != before  # the new weights took effect
    # the family's own class, from the exported folder, reproduces funrl's transcripts
    exported = load_family(tmp_path)
    assert own_transcripts(exported, rows) == after
    assert exported.transcribe(rows, max_new_tokens=NEW) == after


def test_unknown_or_misshapen_weights_are_refused(family):
    with pytest.raises(KeyError, match="does not have"):
        family.load_text_lm_weights([("model.encoder.weight", torch.zeros(1))])
    with pytest.raises(ValueError, match="has shape"):
        family.load_text_lm_weights([("model.norm.weight", torch.zeros(3))])


def test_funrl_eval_on_a_family_folder_equals_the_models_generate_and_decode(family, rows, tmp_path):
    """``funrl eval``'s transcripts (evaluate: manifest checks, batches by duration) are the family
    model's own generate-and-decode on the same rows."""
    import json

    from funrl.eval.cli import evaluate

    folder = tmp_path / "model"
    family.save(folder)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({**r, "id": f"u{i}"}, ensure_ascii=False) + "\n" for i, r in enumerate(rows)))
    report, out = evaluate(str(folder), str(manifest), batch_size=2, max_new_tokens=NEW, n_boot=10)
    assert [r["hypothesis"] for r in out] == own_transcripts(family, rows)
    assert report["overall"]["utterances"] == len(rows)
