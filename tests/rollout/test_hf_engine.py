"""The HF rollout engine: protocol shape, weight pushes (tied embeddings too), sleep/wake."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from funrl.rollout.hf_engine import HFEngine
from funrl.rollout.protocol import RolloutEngine, SamplingParams

EOS = 5


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=32, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, eos_token_id=EOS,
                      tie_word_embeddings=True)
    path = tmp_path_factory.mktemp("llm")
    Qwen3ForCausalLM(cfg).save_pretrained(path)
    return path


def prompts():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(4, 32, generator=g), torch.randn(6, 32, generator=g)]


def test_protocol_greedy_equals_argmax_of_full_forward(llm_dir):
    eng = HFEngine(llm_dir)
    assert isinstance(eng, RolloutEngine)
    p = prompts()
    out = eng.generate(p, 2, SamplingParams(temperature=0, max_new_tokens=3, stop_token_ids=(EOS,)))
    assert out.prompt_index == [0, 0, 1, 1]
    assert out.token_ids[0] == out.token_ids[1]  # greedy: both samples of a prompt agree
    # the first greedy token is the argmax of the prompt's last-position logits
    first = eng.logits(p[1][None])[0, -1].argmax().item()
    assert out.token_ids[2][0] == first


def test_update_weights_changes_outputs_and_survives_sleep(llm_dir):
    eng = HFEngine(llm_dir)
    p = prompts()[0][None]
    before = eng.logits(p)
    emb = eng.model.model.embed_tokens.weight.detach().clone()
    # push the embedding (tied to lm_head) under the lm_head alias, and a changed norm
    new_norm = torch.full_like(eng.model.model.norm.weight, 2.0)
    eng.update_weights([("lm_head.weight", emb * 3), ("model.norm.weight", new_norm)])
    after = eng.logits(p)
    assert not torch.allclose(before, after)
    storage = eng.model.model.norm.weight.data_ptr()
    eng.sleep()  # on CPU: nothing to free, the parameters are the only copy of the weights
    with pytest.raises(RuntimeError, match="asleep"):
        eng.generate([p[0]], 1, SamplingParams())
    eng.update_weights([("model.norm.weight", new_norm * 2)])  # a push while asleep lands too
    eng.wake()
    assert eng.model.model.norm.weight.data_ptr() == storage  # no second copy was made
    assert torch.equal(eng.model.model.norm.weight, new_norm * 2)
    eng.update_weights([("model.norm.weight", new_norm)])
    assert torch.equal(eng.logits(p), after)  # the pushed weights were kept across sleep
    assert torch.equal(eng.model.lm_head.weight, emb * 3)


def test_update_weights_rejects_unknown_names_and_shapes(llm_dir):
    eng = HFEngine(llm_dir)
    with pytest.raises(KeyError, match="model.nope"):
        eng.update_weights([("model.nope", torch.zeros(1))])
    with pytest.raises(ValueError, match=r"model.norm.weight has shape \(3,\)"):
        eng.update_weights([("model.norm.weight", torch.zeros(3))])
