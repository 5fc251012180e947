"""``hotwords.txt``: the rare terms plus sound-alike distractors that retrieval must tell apart."""

from __future__ import annotations

from funrl.data.synth.hotword_list import distractors, rare_terms
from funrl.hotwords import HotwordIndex


def test_distractors_are_deterministic_distinct_and_never_a_rare_term():
    a, b = distractors(1200, seed=0), distractors(1200, seed=0)
    assert a == b and len(a) == len(set(a)) == 1200
    assert not set(a) & set(rare_terms())
    assert distractors(1200, seed=1) != a
    assert sum(not t.isascii() for t in a) > 300  # both languages


def test_most_rare_terms_have_a_distractor_within_retrieval_distance():
    index = HotwordIndex(distractors(1200))
    confusable = [t for t in rare_terms() if index.search(t, 3)]
    assert len(confusable) >= 0.7 * len(rare_terms()), sorted(set(rare_terms()) - set(confusable))
    assert "Engrid" in [c.term for c in index.search("Ingrid", 5)]


def test_the_corpus_writes_its_hotword_list(small_corpus):
    lines = (small_corpus.out_dir / "hotwords.txt").read_text(encoding="utf-8").splitlines()
    terms = [t for t in lines if t and not t.startswith("#")]
    assert set(rare_terms()) <= set(terms) and len(terms) == len(rare_terms()) + 1200
    assert terms == sorted(terms)
