"""A small synthetic corpus shared by the data tests (built once per session, ~1-2 s)."""

from __future__ import annotations

import pytest

from funrl.data.synth.corpus import synthesize_corpus

SMALL = {"n": 30, "seed": 7, "noise_frac": 0.2}


@pytest.fixture(scope="session")
def small_corpus_args():
    return dict(SMALL)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "c"
    return synthesize_corpus(out, **SMALL)
