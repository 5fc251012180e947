"""`funrl eval` figures: aggregation on given hypotheses worked out by hand, the bootstrap interval,
and the CLI end to end on a synthesized corpus with a model whose outputs are forced to be empty."""

from __future__ import annotations

import json
import math

import pytest
import torch

from funrl.eval.metrics import bootstrap_ci, compute_metrics, paired_bootstrap

# (reference utterance, hypothesis); units: CJK per character, Latin per word (funrl.rewards.text)
CASES = [
    ({"text": "turn on the light", "language": "en"}, "turn off the light"),  # 1 S / 4
    ({"text": "打开客厅的灯", "language": "zh"}, "打开客厅灯"),  # 1 D / 6
    ({"text": "把 PyTorch 服务器 重启", "language": "mixed"}, "把 PyTorch 服务器 重启 了"),  # 1 I / 7
    ({"text": "", "noise": True}, ""),  # silent on noise
    ({"text": "", "noise": True}, "thank you"),  # a hallucination
    ({"text": "call Ingrid tomorrow", "language": "en", "keywords": ["Ingrid"], "hotwords": ["Ingrid", "Okafor"]},
     "call Okafor tomorrow"),  # 1 S / 3; keyword FN (Ingrid) + FP (distractor Okafor)
    ({"text": "share this photo with Okafor", "language": "en", "keywords": ["Okafor"], "hotwords": ["Okafor"]},
     "share this photo with okafor"),  # 0 / 5; keyword TP (case-insensitive)
    ({"text": "明天给王芳打电话", "language": "zh"}, "call wang fang tomorrow"),  # 4 S + 4 D / 8; language mismatch
]


def test_hand_computed_figures():
    m = compute_metrics([h for _, h in CASES], [u for u, _ in CASES], n_boot=200, seed=0)
    assert (m["utterances"], m["speech_utterances"], m["noise_utterances"]) == (8, 6, 2)
    o = m["overall"]
    # errors 1 + 1 + 1 + 1 + 0 + 8 = 12 over units 4 + 6 + 7 + 3 + 5 + 8 = 33
    assert (o["substitutions"], o["deletions"], o["insertions"], o["units"]) == (6, 5, 1, 33)
    assert o["error_rate"] == pytest.approx(12 / 33)
    en, zh, mixed = (m["per_language"][k] for k in ("en", "zh", "mixed"))
    assert (en["metric"], en["error_rate"], en["utterances"]) == ("wer", pytest.approx(2 / 12), 3)  # (1+1+0)/(4+3+5)
    assert (zh["metric"], zh["error_rate"]) == ("cer", pytest.approx(9 / 14))  # (1+8)/(6+8)
    assert (mixed["metric"], mixed["error_rate"]) == ("mer", pytest.approx(1 / 7))
    assert m["hallucination_rate"] == 0.5  # 1 of 2 noise clips
    kw = m["keywords"]
    assert (kw["true_positives"], kw["false_positives"], kw["false_negatives"]) == (1, 1, 1)
    assert (kw["precision"], kw["recall"]) == (0.5, 0.5)
    assert m["language_mismatch_rate"] == pytest.approx(1 / 6)  # only the zh clip answered in English
    lo, hi = o["ci95"]
    assert lo <= o["error_rate"] <= hi and lo < hi


def test_bootstrap_interval_is_a_point_when_every_utterance_has_the_same_rate():
    import numpy as np

    errors, units = np.array([1.0, 2.0, 3.0]), np.array([4.0, 8.0, 12.0])  # each 25%
    assert bootstrap_ci(errors, units, 500, 0) == [0.25, 0.25]
    errors = np.array([0.0, 4.0])  # 0% and 50%: resampled corpora range from 0 to 0.5 exactly
    lo, hi = bootstrap_ci(errors, np.array([4.0, 8.0]), 2000, 1)
    assert lo == 0.0 and hi == 0.5
    assert bootstrap_ci(errors, units[:2], 100, 7) == bootstrap_ci(errors, units[:2], 100, 7)  # seeded


def test_per_utterance_counts_are_the_speech_utterances_errors_and_units():
    utts = [dict(u, id=f"u{i}") for i, (u, _) in enumerate(CASES)]
    m = compute_metrics([h for _, h in CASES], utts, n_boot=10)
    assert m["per_utterance"] == [["u0", 1, 4], ["u1", 1, 6], ["u2", 1, 7], ["u5", 1, 3], ["u6", 0, 5], ["u7", 8, 8]]


def test_paired_bootstrap_against_a_slow_loop():
    import numpy as np

    units = np.array([4.0, 6.0, 7.0, 3.0, 5.0, 8.0])
    a, b = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 8.0]), np.array([0.0, 1.0, 2.0, 0.0, 0.0, 5.0])
    r = paired_bootstrap(a, b, units, n_boot=300, seed=3)
    assert r["difference"] == pytest.approx((8 - 12) / 33)  # B's errors 8, A's 12, over 33 units
    rng = np.random.default_rng(3)  # the same draws, one resample at a time
    draws = rng.integers(0, 6, size=(300, 6))
    deltas = [sum(b[i] - a[i] for i in row) / sum(units[i] for i in row) for row in draws]
    assert r["ci95"] == pytest.approx(list(np.percentile(deltas, [2.5, 97.5])))
    # B never worse on any utterance: no resample can make the difference positive
    better = paired_bootstrap(a, a - np.array([1.0, 0, 0, 1.0, 0, 3.0]), units, n_boot=300, seed=3)
    assert better["ci95"][1] <= 0 and better["difference"] == pytest.approx(-5 / 33)
    with pytest.raises(ValueError, match="5, 6 and 6 utterances"):
        paired_bootstrap(a[:5], b, units)


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="2 hypotheses for 1 utterances"):
        compute_metrics(["a", "b"], [{"text": "a"}])


@pytest.mark.slow
def test_funrl_eval_cli_with_a_model_forced_to_say_nothing(tmp_path, capsys):
    from funrl.cli import main
    from funrl.data.manifest import load_manifest
    from funrl.data.synth.corpus import synthesize_corpus
    from funrl.models.io import save_pretrained
    from funrl.models.testing import tiny_model
    from funrl.rewards.text import units

    torch.set_num_threads(1)
    synthesize_corpus(tmp_path / "c", n=12, seed=2, split_ratios=(0.0, 0.0, 1.0))
    model, tok = tiny_model()
    with torch.no_grad():
        model.llm.model.norm.weight.zero_()  # final hidden state 0 -> all logits 0 -> argmax is id 0,
    assert tok.convert_ids_to_tokens(0) == "<|endoftext|>"  # a special token: every transcript is ""
    save_pretrained(model, tok, tmp_path / "m")
    out = tmp_path / "report.json"
    rc = main(["eval", "--model", str(tmp_path / "m"), "--manifest", str(tmp_path / "c" / "test.jsonl"),
               "--output", str(out), "--max-new-tokens", "2", "--bootstrap", "50", "--threads", "1",
               "--hypotheses", str(tmp_path / "hyps.jsonl")])
    assert rc == 0
    r = json.loads(out.read_text())
    utts = load_manifest(tmp_path / "c" / "test.jsonl")
    speech = [u for u in utts if u.text]
    n_units = sum(len(units(u.text)) for u in speech)
    # every reference unit is deleted: error rate 1, hallucination 0, no keyword found, no language mismatch
    assert r["utterances"] == len(utts) and r["speech_utterances"] == len(speech)
    assert (r["overall"]["deletions"], r["overall"]["units"], r["overall"]["error_rate"]) == (n_units, n_units, 1.0)
    assert r["overall"]["ci95"] == [1.0, 1.0]
    assert r["noise_utterances"] == 0 or r["hallucination_rate"] == 0.0
    kw = r["keywords"]
    assert kw["true_positives"] == 0 and kw["false_positives"] == 0 and (kw["recall"] == 0.0 or math.isnan(kw["recall"]))
    assert r["language_mismatch_rate"] == 0.0  # an empty output is not a language mismatch (as in the reward)
    rows = [json.loads(line) for line in (tmp_path / "hyps.jsonl").read_text().splitlines()]
    assert [row["hypothesis"] for row in rows] == [""] * len(utts)
