"""A small synthetic corpus shared by the data tests (built once per session, ~1-2 s)."""

from __future__ import annotations

import pytest

from funrl.data.synth.corpus import synthesize_corpus

SMALL_N = 30
SMALL_SEED = 7


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "c"
    return synthesize_corpus(out, SMALL_N, seed=SMALL_SEED, noise_frac=0.2)
