"""The teacher-forcing layouts of funrl.policy.batch, worked by hand on a 2-prompt batch.

Prompt 0 has 2 embeddings and rows 0 (tokens [5, 6, 7]) and 2 (token [8]); prompt 1 has
3 embeddings and row 1 (tokens [9, 4]). Rows are deliberately not prompt-major.
"""

from __future__ import annotations

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from funrl.policy.teacher_forcing import build_inputs, build_shared_inputs

H = 4


def _batch():
    prompts = [torch.arange(2 * H, dtype=torch.float32).view(2, H), 100 + torch.arange(3 * H, dtype=torch.float32).view(3, H)]
    ids = [torch.tensor([5, 6, 7]), torch.tensor([9, 4]), torch.tensor([8])]
    embed = lambda y: y.float()[:, None].expand(-1, H) * 1000  # noqa: E731  token t -> a row of t*1000
    return prompts, [0, 1, 0], ids, embed


def test_shared_segments_by_hand():
    x = build_shared_inputs(*_batch())
    emb = x["inputs_embeds"][..., 0]  # the first feature identifies each input
    # segment 0 = [p0 (2); row 0's y[:-1] = 5, 6; row 2's y[:-1] = nothing]; segment 1 = [p1 (3); row 1's 9]
    assert emb.tolist() == [[0, 4, 5000, 6000], [100, 104, 108, 9000]]
    assert x["position_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]
    T, F = True, False
    assert x["attention_mask"][0, 0].tolist() == [  # prompt causal; row 0's block sees the prompt and itself
        [T, F, F, F],
        [T, T, F, F],
        [T, T, T, F],
        [T, T, T, T],
    ]
    assert x["attention_mask"].shape == (2, 1, 4, 4)
    # flattened [2*4] hidden index: row 0 predicts from p0's last (1), then its block (2, 3); row 1 from
    # p1's last (4+2) then its 9 (4+3); row 2 from p0's last only
    assert x["flat_positions"].tolist() == [[1, 2, 3], [6, 7, 0], [1, 0, 0]]
    assert x["labels"].tolist() == [[5, 6, 7], [9, 4, 0], [8, 0, 0]]
    assert x["mask"].tolist() == [[T, T, T], [T, T, F], [T, F, F]]


def test_sibling_blocks_do_not_see_each_other_and_padding_sees_itself():
    prompts = [torch.zeros(1, H), torch.zeros(4, H)]
    ids = [torch.tensor([1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7])]
    x = build_shared_inputs(prompts, [0, 0, 1], ids, lambda y: torch.zeros(len(y), H))
    T, F = True, False
    # segment 0: [p (1); row 0: 1; row 1: 3, 4], padded to segment 1's length 5 (p (4) + row 2's 6)
    assert x["attention_mask"][0, 0].tolist() == [
        [T, F, F, F, F],
        [T, T, F, F, F],
        [T, F, T, F, F],  # row 1's first token: the prompt and itself, not row 0's token
        [T, F, T, T, F],
        [F, F, F, F, T],  # padding
    ]
    assert x["position_ids"][0].tolist() == [0, 1, 1, 2, 0]  # each block restarts after the prompt
    assert x["flat_positions"].tolist() == [[0, 1, 0], [0, 2, 3], [5 + 3, 5 + 4, 0]]


def test_shared_and_per_row_layouts_give_the_same_logits():
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=8, max_position_embeddings=64)
    model = Qwen3ForCausalLM(cfg).eval()
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randn(n, 32, generator=g) for n in (3, 6)]
    ids = [torch.randint(0, 50, (n,), generator=g) for n in (4, 1, 5, 2, 0)]
    index = [0, 0, 1, 1, 0]
    emb = model.get_input_embeddings()
    with torch.no_grad():
        rows = build_inputs(prompts, index, ids, emb)
        h = model.model(inputs_embeds=rows["inputs_embeds"], attention_mask=rows["attention_mask"]).last_hidden_state
        want = h.gather(1, rows["positions"][..., None].expand(-1, -1, 32))  # [N, T, H]
        seg = build_shared_inputs(prompts, index, ids, emb)
        h = model.model(inputs_embeds=seg["inputs_embeds"], attention_mask=seg["attention_mask"],
                        position_ids=seg["position_ids"]).last_hidden_state
        got = h.reshape(-1, 32)[seg["flat_positions"]]
    mask = rows["mask"]
    assert torch.equal(mask, seg["mask"]) and torch.equal(rows["labels"], seg["labels"])
    torch.testing.assert_close(got[mask], want[mask], atol=1e-5, rtol=1e-5)
