"""The SGLang engine, run for real on CPU against a plain transformers reference.

These tests need the SGLang environment (``bash rollout/sglang_env.sh``) and run as
``$SGLANG_PY -m pytest -q -m sglang tests/rollout``; the main env deselects them (see conftest).
One engine start (about 30 s) serves the whole module.

The reference is transformers' ``Qwen3ForCausalLM`` on the same folder in float32: greedy tokens
by step-by-step argmax of a full forward pass, log-probs by log_softmax of the full-forward logits
of prompt + completion. SGLang computes in bf16, so log-probs agree to ``LOGPROB_ATOL``, and greedy
tokens are compared up to the first step where the reference's top-2 logit margin is below
``TIE_MARGIN`` (where bf16 rounding may legitimately pick the other token).
"""

from __future__ import annotations

import math

import pytest
import torch

from funrl.rollout.config import SGLangConfig
from funrl.rollout.protocol import SamplingParams
from funrl.rollout.tiny_llm import make_tiny_qwen3

pytestmark = pytest.mark.sglang

LOGPROB_ATOL = 0.05  # bf16 engine vs float32 reference, per token
TIE_MARGIN = 0.05  # reference top-1 minus top-2 logit below which a greedy flip is a tie
PROMPTS = ["hello world the quick fox", "transcribe the audio", "one two three four five six seven"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_qwen3(tmp_path_factory.mktemp("tiny_qwen3"))


@pytest.fixture(scope="module")
def ref(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return tok, model


@pytest.fixture(scope="module")
def engine(model_dir):
    from funrl.rollout.sglang_engine import SGLangEngine

    cfg = SGLangConfig(device="cpu", max_total_tokens=2048, context_length=256, bucket_mb=0.02)
    eng = SGLangEngine(model_dir, cfg, seed=0)
    yield eng
    eng.shutdown()


def prompt_ids(tok) -> list[list[int]]:
    return [tok(p)["input_ids"] for p in PROMPTS]


def embeds_of(model, ids: list[list[int]]) -> list[torch.Tensor]:
    # bf16-representable rows of the embedding table: SGLang's own lookup yields the same values.
    with torch.no_grad():
        return [model.get_input_embeddings()(torch.tensor(i)).to(torch.bfloat16).float() for i in ids]


@torch.no_grad()
def ref_greedy(model, ids: list[int], steps: int, stop: set[int]) -> tuple[list[int], list[float]]:
    """Step-by-step argmax with a full forward each step; returns tokens and top-2 margins."""
    seq, out, margins = list(ids), [], []
    for _ in range(steps):
        logits = model(torch.tensor([seq])).logits[0, -1]
        top2 = torch.topk(logits, 2).values
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        margins.append(float(top2[0] - top2[1]))
        seq.append(nxt)
        if nxt in stop:
            break
    return out, margins


@torch.no_grad()
def ref_logprobs(model, ids: list[int], completion: list[int], temperature: float) -> list[float]:
    """log softmax(logits / T) of each completion token given its prefix (T=0: raw logits)."""
    logits = model(torch.tensor([ids + completion])).logits[0, len(ids) - 1 : -1]
    logp = torch.log_softmax(logits / (temperature or 1.0), dim=-1)
    return logp.gather(1, torch.tensor(completion)[:, None])[:, 0].tolist()


def assert_greedy_matches(got: list[int], want: list[int], margins: list[float]) -> int:
    """Equal up to the first near-tie of the reference; returns how many tokens were compared."""
    n = next((k for k, m in enumerate(margins) if m < TIE_MARGIN), len(want))
    assert got[:n] == want[:n], (got, want, margins)
    return n


def greedy(max_new_tokens=12, stop=()) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, stop_token_ids=tuple(stop))


def eos_of(tok) -> int:
    return tok.convert_tokens_to_ids("<|im_end|>")


def test_greedy_from_embeddings_equals_greedy_from_token_ids(engine, ref):
    tok, model = ref
    ids = prompt_ids(tok)
    batch = engine.generate(embeds_of(model, ids), n=1, sampling=greedy())
    by_ids = engine.engine.generate(
        input_ids=ids, sampling_params={"temperature": 0.0, "max_new_tokens": 12}, return_logprob=True
    )
    assert batch.prompt_index == [0, 1, 2]
    for row, out in enumerate(by_ids):
        assert batch.token_ids[row] == out["output_ids"]
        want_lp = [p[0] for p in out["meta_info"]["output_token_logprobs"]]
        assert batch.logprobs[row] == pytest.approx(want_lp, abs=1e-3)
    # Both agree with the float32 transformers reference, tokens and log-probs.
    compared = 0
    for row, i in enumerate(ids):
        want, margins = ref_greedy(model, i, 12, {eos_of(tok)})
        compared += assert_greedy_matches(batch.token_ids[row], want, margins)
        got = batch.token_ids[row]
        assert batch.logprobs[row] == pytest.approx(ref_logprobs(model, i, got, 0.0), abs=LOGPROB_ATOL)
    assert compared >= 18, "too few greedy tokens outside near-ties to compare"


def test_stop_token_ends_the_completion_and_is_kept(engine, ref):
    tok, model = ref
    ids = prompt_ids(tok)[:1]
    free = engine.generate(embeds_of(model, ids), n=1, sampling=greedy(max_new_tokens=10))
    assert free.finish_reasons == ["length"] and len(free.token_ids[0]) == 10
    # Stop on the 4th greedy token: the completion is cut right after its first occurrence.
    stop = free.token_ids[0][3]
    first = free.token_ids[0].index(stop)
    cut = engine.generate(embeds_of(model, ids), n=1, sampling=greedy(max_new_tokens=10, stop=[stop]))
    assert cut.token_ids[0] == free.token_ids[0][: first + 1]
    assert cut.finish_reasons == ["stop"]
    assert cut.logprobs[0] == pytest.approx(free.logprobs[0][: first + 1], abs=1e-4)


def test_group_samples_are_prompt_major_with_tempered_logprobs(engine, ref):
    tok, model = ref
    ids = prompt_ids(tok)[:2]
    eos = eos_of(tok)
    sp = SamplingParams(temperature=0.7, top_p=0.9, top_k=50, max_new_tokens=8, stop_token_ids=(eos,), seed=123)
    batch = engine.generate(embeds_of(model, ids), n=4, sampling=sp)
    assert len(batch) == 8 and batch.prompt_index == [0, 0, 0, 0, 1, 1, 1, 1]
    for row in range(8):
        toks, lps, reason = batch.token_ids[row], batch.logprobs[row], batch.finish_reasons[row]
        assert 1 <= len(toks) == len(lps) <= 8
        assert all(math.isfinite(x) and x <= 0.0 for x in lps)
        assert eos not in toks[:-1]  # generation ends at the first stop token
        assert reason == ("stop" if toks[-1] == eos else "length")
        if reason == "length":
            assert len(toks) == 8
        # Log-probs are log softmax(logits / T) before top-p / top-k, teacher-forced on the sample.
        prompt = ids[batch.prompt_index[row]]
        assert lps == pytest.approx(ref_logprobs(model, prompt, toks, 0.7), abs=LOGPROB_ATOL)
    # Rows of one group differ (seed + row), and the same seed reproduces the batch.
    assert len({tuple(t) for t in batch.token_ids[:4]}) > 1
    again = engine.generate(embeds_of(model, ids), n=4, sampling=sp)
    assert again.token_ids == batch.token_ids


def test_weight_push_matches_reference_and_disk_restores(engine, ref, model_dir):
    tok, model = ref
    ids = prompt_ids(tok)
    embeds = embeds_of(model, ids)
    before = engine.generate(embeds, n=1, sampling=greedy())
    original = {k: v.clone() for k, v in model.state_dict().items()}

    # A perturbed copy, rounded to bf16 so the reference holds exactly what the engine holds.
    g = torch.Generator().manual_seed(7)
    pushed = {k: (v + 0.5 * v.std() * torch.randn(v.shape, generator=g)).to(torch.bfloat16) for k, v in original.items()}
    engine.update_weights(pushed.items())  # bucket_mb=0.02: several update_weights_from_tensor calls
    model.load_state_dict({k: v.float() for k, v in pushed.items()})
    try:
        after = engine.generate(embeds, n=1, sampling=greedy())
        assert after.token_ids != before.token_ids  # the push changed the engine's model
        for row, i in enumerate(ids):
            want, margins = ref_greedy(model, i, 12, {eos_of(tok)})
            assert_greedy_matches(after.token_ids[row], want, margins)
            got = after.token_ids[row]
            assert after.logprobs[row] == pytest.approx(ref_logprobs(model, i, got, 0.0), abs=LOGPROB_ATOL)
    finally:
        model.load_state_dict(original)

    # The disk path (update_weights_from_disk on safetensors shards) brings the original back.
    engine.cfg.weight_sync = "disk"
    try:
        engine.update_weights(original.items())
    finally:
        engine.cfg.weight_sync = "tensor"
    restored = engine.generate(embeds, n=1, sampling=greedy())
    assert restored.token_ids == before.token_ids
    for a, b in zip(restored.logprobs, before.logprobs):
        assert a == pytest.approx(b, abs=1e-3)


def test_sleep_and_wake_are_noops_on_cpu_and_guard_generate(engine, ref):
    tok, model = ref
    embeds = embeds_of(model, prompt_ids(tok)[:1])
    before = engine.generate(embeds, n=1, sampling=greedy(max_new_tokens=4))
    engine.sleep()
    with pytest.raises(RuntimeError, match="asleep"):
        engine.generate(embeds, n=1, sampling=greedy(max_new_tokens=4))
    engine.wake()
    assert engine.generate(embeds, n=1, sampling=greedy(max_new_tokens=4)).token_ids == before.token_ids


def test_bad_embedding_shape_names_the_prompt(engine):
    with pytest.raises(ValueError, match=r"prompt_embeds\[1\]"):
        engine.generate([torch.zeros(3, engine.hidden_size), torch.zeros(3, engine.hidden_size + 1)], 1, greedy())
