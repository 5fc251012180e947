"""The tiny AudioLLM fixture shared by the model tests (funrl.models.testing)."""

from __future__ import annotations

import pytest
import torch

from funrl.models.testing import tiny_model


@pytest.fixture()
def tiny():
    """``(model, tokenizer)`` in eval mode, seeded; one torch thread (the CPU is shared)."""
    torch.set_num_threads(1)
    return tiny_model(seed=0)
