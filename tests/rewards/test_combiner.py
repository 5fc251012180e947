"""RewardCombiner, the registry and plugin loading: sums, metrics and every bad-input message."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from funrl.config import load_config
from funrl.rewards import Component, RewardCombiner, RewardError, RewardSpec, RewardsConfig, build, builtins, register

REPO = Path(__file__).resolve().parents[2]
PLUGIN_FILE = REPO / "examples" / "plugins" / "my_rewards.py"


def combine(*components):
    return RewardCombiner([Component(name, w, fn) for name, w, fn in components])


def const(values):
    def fn(completions, *, references, samples, **kwargs):
        return list(values)

    return fn


def run(comb, n=3, **kwargs):
    return comb(["h"] * n, references=["r"] * n, samples=[{"id": f"u{i}"} for i in range(n)], **kwargs)


def test_total_components_and_metrics_hand_worked():
    comb = combine(("a", 1.0, const([1.0, 0.0, 0.5])), ("b", 2.0, const([None, -1.0, 0.25])))
    res = run(comb)
    # total: 1 + 0 | 0 + 2·(-1) | 0.5 + 2·0.25
    assert res.total == pytest.approx([1.0, -2.0, 1.0])
    assert res.components == {"a": [1.0, 0.0, 0.5], "b": [None, -1.0, 0.25]}
    m = res.metrics
    assert m["reward/a_mean"] == pytest.approx(0.5) and m["reward/a_applicable"] == 1.0
    assert m["reward/a_std"] == pytest.approx(math.sqrt((0.25 + 0.25 + 0) / 3))
    # b over its 2 applicable samples only: mean -0.375, std 0.625
    assert m["reward/b_mean"] == pytest.approx(-0.375) and m["reward/b_std"] == pytest.approx(0.625)
    assert m["reward/b_applicable"] == pytest.approx(2 / 3)
    assert m["reward/total_mean"] == pytest.approx(0.0) and m["reward/total_std"] == pytest.approx(math.sqrt(2))
    assert "wer" not in m  # neither component declares an error rate


def test_never_applicable_component_has_a_nan_mean():
    res = run(combine(("a", 1.0, const([None] * 3))))
    assert res.total == [0.0, 0.0, 0.0]
    assert math.isnan(res.metrics["reward/a_mean"]) and res.metrics["reward/a_applicable"] == 0.0


def test_extremes_only_on_request():
    from funrl.rewards.combiner import reward_stats

    comps, total = {"a": [None, -1.0, 0.25], "b": [None] * 3}, [1.0, -2.0, 1.0]
    assert not any(k.endswith(("_min", "_max")) for k in reward_stats(comps, total))  # the step's metrics
    m = reward_stats(comps, total, extremes=True)
    assert (m["reward/a_min"], m["reward/a_max"]) == (-1.0, 0.25)
    assert math.isnan(m["reward/b_min"]) and math.isnan(m["reward/b_max"])
    assert (m["reward/total_min"], m["reward/total_max"]) == (-2.0, 1.0)


def test_error_rate_comes_from_the_declaring_component_whatever_its_label():
    comb = RewardCombiner.from_config(RewardsConfig(components=[RewardSpec(name="accuracy", label="acc")]))
    assert comb.error_rates == {"wer": "acc"}
    res = comb(["the cat", "the cat sat"], references=["the cat sat"] * 2, samples=[{}, {}])
    # 1 − WER: 2/3 and 1 → mean 5/6 → wer 1/6
    assert res.metrics["wer"] == pytest.approx(1 / 6) and res.metrics["reward/acc_mean"] == pytest.approx(5 / 6)


def test_trainer_keywords_reach_the_reward():
    seen = {}

    def spy(completions, *, references, samples, group_ids, step, **kwargs):
        seen.update(group_ids=group_ids, step=step)
        return [0.0] * len(completions)

    run(combine(("spy", 1.0, spy)), group_ids=[0, 0, 1], step=7)
    assert seen == {"group_ids": [0, 0, 1], "step": 7}


def test_from_config_defaults_are_the_four_builtins():
    comb = RewardCombiner.from_config(load_config(None).rewards)
    assert comb.names == ["accuracy", "keywords", "hallucination", "language"]
    res = comb(["hello world"], references=["hello world"], samples=[{"language": "en", "keywords": ["world"]}])
    assert res.total == [2.0]  # 1 (accuracy) + 1 (keywords) + 0 + 0


# ----------------------------------------------------------------------------- plugins


def test_example_plugin_by_dotted_path(monkeypatch):
    import doctest
    import importlib

    monkeypatch.syspath_prepend(str(PLUGIN_FILE.parent))
    res = doctest.testmod(importlib.import_module("my_rewards"))
    assert res.failed == 0 and res.attempted > 0
    name, fn = build("my_rewards:no_digits", {"penalty": -0.25})
    assert name == "no_digits"
    assert fn(["21", "twenty one"], references=["twenty one"] * 2, samples=[{}] * 2) == [-0.25, 0.0]
    name, obj = build("my_rewards:StartsRight", {"n": 1}, label="first_word")
    assert name == "first_word" and obj(["Hi you"], references=["hi there"], samples=[{}]) == [1.0]


def test_example_plugin_by_file_path_from_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "rewards:\n  components:\n"
        "    - name: accuracy\n"
        f"    - name: {PLUGIN_FILE}:no_digits\n      weight: 2.0\n      kwargs: {{penalty: -1.0}}\n"
    )
    comb = RewardCombiner.from_config(load_config(cfg).rewards)
    assert comb.names == ["accuracy", "no_digits"]
    res = comb(["21"], references=["twenty one"], samples=[{}])
    # accuracy: "21" vs "twenty one": 1 sub + 1 del -> WER 1 -> 0; no_digits -1 · weight 2
    assert res.total == [-2.0]


def test_registry_rejects_a_duplicate_builtin_name():
    with pytest.raises(RewardError, match=r"built-in reward 'accuracy' is already registered by funrl\.rewards\.accuracy\.Accuracy"):
        register("accuracy")(type("Other", (), {}))
    assert sorted(builtins()) == ["accuracy", "hallucination", "keywords", "language"]


def test_unknown_builtin_lists_the_names():
    with pytest.raises(RewardError, match=r"unknown built-in reward 'acuracy'; built-ins are: accuracy, hallucination, keywords, language"):
        build("acuracy")


def test_bad_module_path():
    with pytest.raises(RewardError, match=r"reward plugin 'no_such_pkg\.mod:fn': cannot import module 'no_such_pkg\.mod' .*PYTHONPATH"):
        build("no_such_pkg.mod:fn")


def test_bad_file_path(tmp_path):
    with pytest.raises(RewardError, match=r"file 'nowhere/r\.py' not found \(relative paths are taken from the current directory"):
        build("nowhere/r.py:fn")


def test_missing_attribute_lists_callables():
    with pytest.raises(RewardError, match=r"has no attribute 'nope'; its callables are: .*StartsRight.*no_digits"):
        build(f"{PLUGIN_FILE}:nope")


def test_plugin_file_that_fails_to_import(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('boom at import')\n")
    with pytest.raises(RewardError, match=r"running '.*broken\.py' raised RuntimeError: boom at import"):
        build(f"{bad}:fn")


def test_unknown_kwargs_name_the_accepted_ones():
    with pytest.raises(RewardError, match=r"reward 'accuracy': unknown parameter\(s\) 'lower' in kwargs; it accepts: lowercase, punctuation, width, min_reward"):
        build("accuracy", {"lower": True})
    with pytest.raises(RewardError, match=r"reward 'keywords': Keywords\(\*\*\{'beta': 0\}\) raised ValueError: beta must be > 0"):
        build("keywords", {"beta": 0})


def test_duplicate_component_names():
    cfg = RewardsConfig(components=[RewardSpec(name="accuracy"), RewardSpec(name="accuracy", weight=0.5)])
    with pytest.raises(RewardError, match=r"reward components 0 and 1 are both named 'accuracy'; set `label`"):
        RewardCombiner.from_config(cfg)
    cfg.components[1].label = "accuracy_half"
    assert RewardCombiner.from_config(cfg).names == ["accuracy", "accuracy_half"]


# ----------------------------------------------------------------------------- bad outputs


def test_plugin_that_raises_names_the_sample():
    def picky(completions, *, references, samples, **kwargs):
        return [1.0 / (s["id"] != "u1") for s in samples]  # ZeroDivisionError on u1

    with pytest.raises(RewardError, match=r"reward 'picky' raised on sample 1 \(id 'u1'\): ZeroDivisionError: float division by zero") as e:
        run(combine(("picky", 1.0, picky)))
    assert (e.value.component, e.value.index) == ("picky", 1)


def test_plugin_that_raises_only_on_the_batch():
    def batch_only(completions, *, references, samples, **kwargs):
        if len(completions) > 1:
            raise RuntimeError("needs a single sample")
        return [0.0]

    with pytest.raises(RewardError, match=r"reward 'batch_only' raised on the batch of 3 \(no single sample raises alone, and leaving out any one does not stop it\): RuntimeError: needs a single sample") as e:
        run(combine(("batch_only", 1.0, batch_only)))
    assert e.value.index is None


def test_plugin_that_raises_on_one_sample_of_a_large_batch_is_found_by_bisection():
    calls = []

    def picky(completions, *, references, samples, group_ids, **kwargs):
        calls.append(len(completions))
        if any(s["id"] == "u11" for s in samples):
            raise KeyError("speaker")
        return [float(g) for g in group_ids]

    with pytest.raises(RewardError) as e:
        run(combine(("picky", 1.0, picky)), n=16, group_ids=list(range(16)))
    assert str(e.value) == "reward 'picky' raised on sample 11 (id 'u11'): KeyError: 'speaker'"
    assert e.value.index == 11
    assert len(calls) < 16  # halves, not one call per sample: 1 batch + 2 per level (4 levels)


def test_plugin_that_raises_only_in_company_names_the_sample_it_cannot_score():
    import statistics

    def zscore(completions, *, references, samples, **kwargs):
        """Batch-normalised length; a single sample has no stdev (a different error)."""
        sd = statistics.stdev(len(c) for c in completions)  # StatisticsError on 1 sample
        lens = [float(s.get("max_len", 10)) for s in samples]  # ValueError on "n/a"
        return [(len(c) - m) / sd for c, m in zip(completions, lens)]

    comb = combine(("zscore", 1.0, zscore))
    samples = [{"id": f"u{i}"} for i in range(4)]
    samples[2]["max_len"] = "n/a"
    with pytest.raises(RewardError) as e:
        comb(["a", "bb", "ccc", "dddd"], references=[""] * 4, samples=samples)
    assert str(e.value) == ("reward 'zscore' raised on the batch of 4 because of sample 2 (id 'u2') (the batch "
                            "scores without it): ValueError: could not convert string to float: 'n/a'")
    assert (e.value.component, e.value.index) == ("zscore", 2)


@pytest.mark.parametrize(
    "out, message",
    [
        ([1.0, 2.0], r"reward 'bad' returned 2 values for 3 completions; return one per completion"),
        ([1.0, float("nan"), 0.0], r"reward 'bad' returned nan for sample 1; rewards must be finite"),
        ([1.0, 0.0, float("-inf")], r"reward 'bad' returned -inf for sample 2; rewards must be finite"),
        ([1.0, "0.5", 0.0], r"reward 'bad' returned '0.5' \(str\) for sample 1; expected a float or None"),
        ([True, 0.0, 0.0], r"reward 'bad' returned True \(bool\) for sample 0; expected a float or None"),
        (0.5, r"reward 'bad' returned float; expected a list of 3 floats or None"),
    ],
)
def test_bad_outputs_are_errors_not_zeros(out, message):
    def bad(completions, *, references, samples, **kwargs):
        return out

    with pytest.raises(RewardError, match=message):
        run(combine(("bad", 1.0, bad)))


def test_misaligned_inputs():
    comb = combine(("a", 1.0, const([0.0])))
    with pytest.raises(RewardError, match="2 completions but 1 references and 2 samples"):
        comb(["a", "b"], references=["a"], samples=[{}, {}])


def test_total_is_a_reserved_name():
    with pytest.raises(RewardError, match="may not be named 'total'"):
        combine(("total", 1.0, const([0.0])))
